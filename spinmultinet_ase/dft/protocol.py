"""The one DFT protocol used for all reference data (GPAW, spin-polarised PBE+U).

Every value lives here and is recorded in the ``info`` of each labelled frame. Change a
value only together with a measured convergence table (see ``data/README.md``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

# Dudarev U (eV) on the metal d shell: the Materials Project values for oxides.
HUBBARD_U_EV: dict[str, float] = {"Cr": 3.7, "Mn": 3.9, "Fe": 5.3, "Co": 3.32, "Ni": 6.2}


# Pulay-stress calibration at 700 eV (eV per formula unit), measured by
# spinmultinet_ase/reference/convergence.py (data/convergence.json): the mean over FM and AFM-II of
# (σ(1100 eV) − σ(700 eV)) · V / n_fu on a strained, rattled 4-atom cell (FeO, CoO: run from the
# orbital-bias start of the labeller). Calibrated on FM alone, it leaves 0.001 (NiO) and
# 0.002 GPa (MnO) error on AFM-II against 1100 eV. Corundum oxides: the mean over FM and the
# ground state of a strained, rattled 10-atom cell (docs/corundum_data.md).
PULAY_STRESS_700EV: dict[str, float] = {
    "MnO": -0.12081,
    "NiO": -0.12133,
    "CoO": -0.12733,
    "FeO": -0.23774,
    "Cr2O3": -0.50757,
    "Fe2O3": -0.55980,
}


@dataclass(frozen=True)
class DFTProtocol:
    """Settings of a GPAW plane-wave PBE+U run.

    Attributes:
        xc: exchange-correlation functional.
        ecut_ev: plane-wave cutoff (eV).
        kpoint_density: k-points per Å⁻¹ (ASE ``kpts={'density': ...}``), Γ-centred, even.
            2.5 because FM MnO is half-metallic: at 2.0 its energy per formula unit differs by
            5.3 meV between two 4-atom cells of the same crystal (one of them 5.8 meV from the
            4.0 mesh); at 2.5 by 0.14 meV (0.44 and 0.59 meV from 4.0). Insulating NiO and
            MnO change by ≤ 0.02 meV/atom in ordering energies from 2.0 to 2.5 or 3.0. See
            ``data/convergence.json``.
        smearing: occupation smearing, a GPAW occupations name ("fermi-dirac",
            "marzari-vanderbilt").
        smearing_ev: smearing width (eV).
        hubbard_u_ev: Dudarev U (eV) per element on its d shell.
        energy_convergence_ev: SCF energy criterion (eV per valence electron).
        density_convergence: SCF density criterion.
        max_scf_iterations: SCF iteration limit; more is a failed run.
        align_bonds: run GPAW on the structure turned into the canonical orientation of its
            family (rocksalt: metal–oxygen bonds along x, y, z; corundum: bonds fitted to the
            reference cell's; forces and stress turned back), because GPAW's energy of an
            anisotropic d shell depends on the crystal's orientation: 10 meV per NiO formula
            unit between two orientations of one crystal
            (``spinmultinet_ase/dft/orientation.py``).
        pulay_stress: Pulay-stress calibration ``p`` (eV per formula unit) per reduced
            formula at ``ecut_ev``: ``p · n_fu / V`` is added to each normal stress component
            (``spinmultinet_ase/reference/convergence.py`` measures it). None: raw analytic stress
            (for calibration runs only).
    """

    xc: str = "PBE"
    ecut_ev: float = 700.0
    kpoint_density: float = 2.5
    smearing: str = "fermi-dirac"
    smearing_ev: float = 0.05
    hubbard_u_ev: dict[str, float] = field(default_factory=lambda: dict(HUBBARD_U_EV))
    energy_convergence_ev: float = 1e-5
    density_convergence: float = 1e-4
    max_scf_iterations: int = 300
    align_bonds: bool = True
    pulay_stress: dict[str, float] | None = field(default_factory=lambda: dict(PULAY_STRESS_700EV))

    def setups(self, symbols: set[str]) -> dict[str, str]:
        """GPAW ``setups`` giving U on the d shell of each element present."""
        return {s: f":d,{self.hubbard_u_ev[s]}" for s in sorted(symbols) if s in self.hubbard_u_ev}

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def pulay_stress_correction(self, formula: str, formula_units: int, volume: float) -> float:
        """The isotropic stress (eV/Å³) to add to the analytic stress of a structure.

        Only the stress needs it: GPAW's analytic stress is the derivative at a fixed number
        of plane waves, which carries the Pulay error, while energies at a fixed cutoff vary
        with volume like converged ones (measured: ``summarise_pulay_energy`` in
        ``spinmultinet_ase/reference/convergence.py``).

        Raises:
            ValueError: the protocol corrects stresses but has no calibration for ``formula``.
        """
        if self.pulay_stress is None:
            return 0.0
        if formula not in self.pulay_stress:
            raise ValueError(
                f"no Pulay-stress calibration for {formula} at {self.ecut_ev:.0f} eV; measure "
                "it with spinmultinet_ase.reference.convergence and add it to the protocol"
            )
        return self.pulay_stress[formula] * formula_units / volume


DEFAULT_PROTOCOL = DFTProtocol()
