"""Protocol convergence and the Pulay-stress calibration, measured.

For each material a rattled, strained cell in FM and a second ordering (the same geometry) is
computed at the protocol settings and with the cutoff or the k-point density changed one at
a time: the 4-atom cell in AFM-II for the rocksalt monoxides, the 10-atom cell in the ground
state for the corundum sesquioxides. Reported against the tighter setting of each axis: the
error of the energy difference of the two orderings (meV/atom), of forces (meV/Å) and of
stress (GPa). The corundum materials add the ordering energies of the ideal 10-atom cell at
two k-point densities and an orientation check.

Stress at a finite plane-wave cutoff carries a Pulay error that is isotropic and, per formula
unit, nearly independent of strain and spin order: ``σ(∞) - σ(E_cut) = p · n_fu / V · I``.
:func:`pulay_calibration` measures ``p`` per material from the same cell at the protocol
cutoff and at 1100 eV, so the protocol can use a cheaper cutoff and still give converged
stresses. All stresses here are raw (uncorrected) analytic GPAW stresses.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import niggli_reduce
from ase.stress import voigt_6_to_full_3x3_stress
from ase.units import GPa

from spinmultinet_ase.dft.corundum_structures import THREE_FOLD_AXIS, corundum_yardsticks
from spinmultinet_ase.dft.distortions import Distortion, distort
from spinmultinet_ase.dft.label import STATUS, STATUS_OK, label_structure
from spinmultinet_ase.dft.protocol import DEFAULT_PROTOCOL, DFTProtocol
from spinmultinet_ase.dft.structures import CELLS
from spinmultinet_ase.magnetism.corundum import CORUNDUM_PARAMETERS, corundum_cell
from spinmultinet_ase.magnetism.orderings import with_pattern
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.magnetism.yardsticks import formula_units, yardstick_table
from spinmultinet_ase.outputs import write_text_atomic

REFERENCE_CUTOFF = 1100.0
CUTOFF = DEFAULT_PROTOCOL.ecut_ev
FERMI_DIRAC = ("fermi-dirac", 0.05)
COLD = ("marzari-vanderbilt", 0.2)
Smearing = tuple[str, float]
# The materials of the study, in the order their runs are made; the orientation check was made
# on the first two only
MATERIALS = ("NiO", "MnO", "FeO", "CoO")
CORUNDUM_MATERIALS = ("Cr2O3", "Fe2O3")
ORIENTATION_MATERIALS = ("NiO", "MnO")
# (material, cutoff eV, k-point density Å, smearing), computed in this order; the k-point and
# smearing axes are taken at the protocol cutoff
SETTINGS: list[tuple[str, float, float, Smearing]] = (
    [
        ("NiO", 900.0, 2.0, FERMI_DIRAC),
        ("NiO", CUTOFF, 2.0, FERMI_DIRAC),
        ("NiO", REFERENCE_CUTOFF, 2.0, FERMI_DIRAC),
        ("MnO", CUTOFF, 2.0, FERMI_DIRAC),
        ("MnO", REFERENCE_CUTOFF, 2.0, FERMI_DIRAC),
        ("NiO", CUTOFF, 1.5, FERMI_DIRAC),
        ("NiO", CUTOFF, 2.5, FERMI_DIRAC),
        ("NiO", CUTOFF, 1.5, COLD),
        ("MnO", CUTOFF, 1.5, COLD),
        ("MnO", CUTOFF, 1.5, FERMI_DIRAC),
        ("MnO", CUTOFF, 3.0, FERMI_DIRAC),
        ("MnO", CUTOFF, 2.0, COLD),
        ("MnO", CUTOFF, 2.5, FERMI_DIRAC),
    ]
    + [
        # every later material: the Pulay calibration pair first, then the k-point axis
        (material, ecut, density, FERMI_DIRAC)
        for material in MATERIALS[2:]
        for ecut, density in ((CUTOFF, 2.0), (REFERENCE_CUTOFF, 2.0), (CUTOFF, 2.5), (CUTOFF, 3.0))
    ]
    + [
        # corundum: the Pulay calibration pair only (a rattled 10-atom frame costs ~10 4-atom ones);
        # its k-point axis is taken on the ideal cell (CORUNDUM_DENSITIES)
        (material, ecut, 2.0, FERMI_DIRAC)
        for material in CORUNDUM_MATERIALS
        for ecut in (CUTOFF, REFERENCE_CUTOFF)
    ]
)
# Corundum ordering energies: the ideal 10-atom cell in every enumerated ordering at the
# protocol's k-point density and a denser one
CORUNDUM_DENSITIES = (DEFAULT_PROTOCOL.kpoint_density, 3.5)
# Does a corundum frame's energy depend on its orientation? The ideal cell in its ground state
# as built (the canonical orientation), turned about the 3-fold axis as given, and turned and
# then put into the canonical orientation (spinmultinet_ase/dft/orientation.py)
CORUNDUM_ORIENTATION_CASES: list[tuple[float, bool]] = [(0.0, False), (30.0, False), (30.0, True)]
# The corundum entries are runs on the X-ray cells (corundum_cell(..., xray=True)): the ideal
# ground state also at this volume strain gives, with the ideal cell's own pressure, the
# protocol's zero-pressure volume (CorundumParameters.protocol_volume_strain)
CORUNDUM_VOLUME_STRAIN = 0.06
# the converged k-point/smearing setting each material's other settings are compared with
KPOINT_REFERENCE: dict[str, tuple[float, Smearing]] = {
    "NiO": (2.5, FERMI_DIRAC),
    "MnO": (3.0, FERMI_DIRAC),
    **{material: (3.0, FERMI_DIRAC) for material in MATERIALS[2:]},
    **{material: (CORUNDUM_DENSITIES[-1], FERMI_DIRAC) for material in CORUNDUM_MATERIALS},
}
# Do energies need a Pulay correction too? The FM test cell at another volume, at the protocol
# and the reference cutoff (k 2.0): measured, they do not (see summarise_pulay_energy)
PULAY_VOLUME_CHECK: list[tuple[str, float]] = [("NiO", -0.04)]
# The undistorted crystal in the two 4-atom cells at several k-point meshes, per formula unit:
# a mesh is converged when both cells give one FM energy and the ordering energies stop
# moving. FM MnO (half-metallic) across every setting; both materials' yardstick orderings
# (AFM-I against FM in afm1-4, AFM-II against FM in afm2-4) at the protocol's mesh and at 4.0
CROSS_CELLS = ("afm1-4", "afm2-4")
CROSS_CELL_SETTINGS: list[tuple[float, Smearing]] = [
    (1.5, COLD),
    (2.5, FERMI_DIRAC),
    (4.0, FERMI_DIRAC),
    (2.0, FERMI_DIRAC),
]
ORDERING_CELLS: list[tuple[str, str]] = [
    ("afm1-4", "FM"),
    ("afm1-4", "AFM-I"),
    ("afm2-4", "FM"),
    ("afm2-4", "AFM-II"),
]
ORDERING_DENSITIES = (2.5, 4.0)
# (material, ordering, cell, k-point density, smearing), computed in this order
CROSS_CELL_RUNS: list[tuple[str, str, str, float, Smearing]] = [
    ("MnO", "FM", cell, density, smearing)
    for density, smearing in CROSS_CELL_SETTINGS
    for cell in CROSS_CELLS
] + [
    (material, ordering, cell, density, FERMI_DIRAC)
    for material in MATERIALS
    for density in ORDERING_DENSITIES
    for cell, ordering in ORDERING_CELLS
]
# Does the energy depend on how the crystal is oriented? The undistorted FM crystal at the
# protocol settings in three cells, the 2-atom cell also turned 45° about z, each run as given
# and with its metal–oxygen bonds turned onto the axes (spinmultinet_ase/dft/orientation.py)
ORIENTATION_CASES: list[tuple[str, float]] = [
    ("prim-2", 0.0),
    ("prim-2", 45.0),
    ("afm1-4", 0.0),
    ("afm2-4", 0.0),
]


def setting_key(
    material: str, ecut: float, density: float, smearing: Smearing = FERMI_DIRAC
) -> str:
    key = f"{material} ecut={ecut:.0f} kdensity={density}"
    return key if smearing == FERMI_DIRAC else f"{key} smearing={smearing[0]}:{smearing[1]}"


def pulay_volume_key(material: str, ecut: float, volume_strain: float) -> str:
    return f"pulay-volume {material} ecut={ecut:.0f} volume_strain={volume_strain}"


def cross_cell_key(
    material: str, ordering: str, cell: str, density: float, smearing: Smearing = FERMI_DIRAC
) -> str:
    return (
        f"cross-cell {material} {ordering} {cell} "
        f"kdensity={density} smearing={smearing[0]}:{smearing[1]}"
    )


def corundum_ordering_key(material: str, ordering: str, density: float) -> str:
    return f"orderings {material} {ordering} rh-10 kdensity={density}"


def orientation_key(
    material: str, cell: str, turn_deg: float, aligned: bool, ordering: str = "FM"
) -> str:
    return f"orientation {material} {ordering} {cell} turn={turn_deg:g} aligned={aligned}"


def convergence_structures(material: str, volume_strain: float = 0.02) -> dict:
    """The test cell of ``material``: rattled, strained 4-atom AFM-II cell, as FM and AFM-II;
    for a corundum material the 10-atom cell (also strained along the 3-fold axis), as FM and
    its ground state."""
    rng = np.random.default_rng(7)
    if material in CORUNDUM_PARAMETERS:
        ground = CORUNDUM_PARAMETERS[material].ground_state
        distortion = Distortion(
            volume_strain=volume_strain,
            rhombohedral_strain=-0.01,
            rattle_angstrom=0.06,
            axis=THREE_FOLD_AXIS,
        )
        base = distort(corundum_cell(material, xray=True), distortion, rng)
        niggli_reduce(base)
        return {"FM": base, ground: with_pattern(base, ground)}
    distortion = Distortion(
        volume_strain=volume_strain, rhombohedral_strain=-0.01, rattle_angstrom=0.06
    )
    base = distort(rocksalt_ordered(material, "AFM-II", CELLS["afm2-4"]), distortion, rng)
    niggli_reduce(base)
    fm = base.copy()
    fm.set_initial_magnetic_moments(np.abs(base.get_initial_magnetic_moments()))
    return {"FM": fm, "AFM-II": base}


def _raw_protocol(ecut: float, density: float, smearing: Smearing):
    return dataclasses.replace(
        DEFAULT_PROTOCOL,
        ecut_ev=ecut,
        kpoint_density=density,
        smearing=smearing[0],
        smearing_ev=smearing[1],
        pulay_stress=None,
    )


def _label_checked(
    atoms: Atoms, protocol: DFTProtocol, log_dir: Path, key: str, suffix: str = ""
) -> Atoms:
    """One DFT run of the study, logged under a name made from its result key.

    Raises:
        RuntimeError: the run did not end in the state asked for (its status and log named):
            the study's comparisons need every setting in one state.
    """
    name = key.replace(" ", "_").replace("=", "").replace(":", "") + suffix
    txt = log_dir / f"{name}.txt"
    labelled = label_structure(atoms, protocol, txt)
    if labelled.info[STATUS] != STATUS_OK:
        raise RuntimeError(f"{key}{suffix}: {labelled.info[STATUS]} (GPAW log {txt})")
    return labelled


def _energy_per_formula_unit(labelled: Atoms) -> dict:
    """The result entry of a run: energy per formula unit and wall time."""
    energy = labelled.get_potential_energy() / formula_units(labelled)
    return {"energy_per_fu": energy, "wall_s": labelled.info["dft_wall_s"]}


def run_convergence_study(
    out: Path, log_dir: Path, materials: tuple[str, ...] | None = None
) -> dict:
    """Compute the settings and checks not yet in ``out`` (JSON), saving after each; returns
    the results.

    Args:
        materials: run only the entries of these materials (all when None), e.g. the corundum
            ones while a rocksalt entry still fails.
    """
    from gpaw.mpi import world

    def selected(material: str) -> bool:
        return materials is None or material in materials

    results = json.loads(out.read_text()) if out.exists() else {}

    def save(key: str, entry: dict) -> None:
        results[key] = entry
        if world.rank == 0:
            write_text_atomic(out, json.dumps(results, indent=1))
            print(key, "done", flush=True)

    for material, ecut, density, smearing in SETTINGS:
        key = setting_key(material, ecut, density, smearing)
        if key in results or not selected(material):
            continue
        entry = {}
        for name, atoms in convergence_structures(material).items():
            protocol = _raw_protocol(ecut, density, smearing)
            labelled = _label_checked(atoms, protocol, log_dir, f"convergence {key}", f"_{name}")
            entry[name] = {
                "energy": labelled.get_potential_energy(),
                "forces": labelled.get_forces().tolist(),
                "stress": labelled.get_stress().tolist(),
                "volume": labelled.get_volume(),
                "formula_units": formula_units(labelled),
                "wall_s": labelled.info["dft_wall_s"],
            }
        save(key, entry)
    for material, volume_strain in PULAY_VOLUME_CHECK:
        for ecut in (CUTOFF, REFERENCE_CUTOFF):
            key = pulay_volume_key(material, ecut, volume_strain)
            if key in results or not selected(material):
                continue
            atoms = convergence_structures(material, volume_strain)["FM"]
            labelled = _label_checked(atoms, _raw_protocol(ecut, 2.0, FERMI_DIRAC), log_dir, key)
            save(key, {"energy": labelled.get_potential_energy(), "volume": atoms.get_volume()})
    for material, ordering, cell, density, smearing in CROSS_CELL_RUNS:
        key = cross_cell_key(material, ordering, cell, density, smearing)
        if key in results or not selected(material):
            continue
        atoms = rocksalt_ordered(material, ordering, CELLS[cell])
        niggli_reduce(atoms)
        labelled = _label_checked(atoms, _raw_protocol(CUTOFF, density, smearing), log_dir, key)
        save(key, _energy_per_formula_unit(labelled))
    for material in ORIENTATION_MATERIALS:
        for aligned in (False, True):
            for cell, turn in ORIENTATION_CASES:
                key = orientation_key(material, cell, turn, aligned)
                if key in results or not selected(material):
                    continue
                atoms = rocksalt_ordered(material, "FM", CELLS[cell])
                atoms.rotate(turn, "z", rotate_cell=True)
                protocol = dataclasses.replace(DEFAULT_PROTOCOL, align_bonds=aligned)
                save(key, _energy_per_formula_unit(_label_checked(atoms, protocol, log_dir, key)))
    _run_corundum([m for m in CORUNDUM_MATERIALS if selected(m)], results, save, log_dir)
    return results


def _ideal_entry(labelled: Atoms) -> dict:
    """The result entry of a run on an ideal cell: energy per formula unit, raw pressure,
    volume and formula units."""
    return {
        **_energy_per_formula_unit(labelled),
        "pressure_gpa": -np.mean(labelled.get_stress()[:3]) / GPa,
        "volume": labelled.get_volume(),
        "formula_units": formula_units(labelled),
    }


def _run_corundum(
    materials: list[str], results: dict, save: Callable[[str, dict], None], log_dir: Path
) -> None:
    """The corundum entries not yet in ``results``, cheapest first: the orientation check,
    the ordering energies at the protocol's k-point density, the ground state at
    :data:`CORUNDUM_VOLUME_STRAIN`, then the denser k-point density."""
    protocol = _raw_protocol(CUTOFF, DEFAULT_PROTOCOL.kpoint_density, FERMI_DIRAC)
    runs = []
    for material in materials:
        ground = with_pattern(
            corundum_cell(material, xray=True), CORUNDUM_PARAMETERS[material].ground_state
        )
        for turn, aligned in CORUNDUM_ORIENTATION_CASES:
            atoms = ground.copy()
            atoms.rotate(turn, "z", rotate_cell=True)
            key = orientation_key(material, "rh-10", turn, aligned, ground.info["ordering"])
            runs.append((key, atoms, dataclasses.replace(protocol, align_bonds=aligned)))
    for material in materials:
        for atoms in corundum_yardsticks(material, xray=True):
            key = corundum_ordering_key(material, atoms.info["ordering"], protocol.kpoint_density)
            runs.append((key, atoms, protocol))
    for material in materials:
        ground = with_pattern(
            corundum_cell(material, xray=True), CORUNDUM_PARAMETERS[material].ground_state
        )
        expand = Distortion(volume_strain=CORUNDUM_VOLUME_STRAIN)
        strained = distort(ground, expand, np.random.default_rng(0))
        runs.append((corundum_volume_key(material), strained, protocol))
    for density in CORUNDUM_DENSITIES[1:]:
        for material in materials:
            for atoms in corundum_yardsticks(material, xray=True):
                key = corundum_ordering_key(material, atoms.info["ordering"], density)
                runs.append((key, atoms, _raw_protocol(CUTOFF, density, FERMI_DIRAC)))
    for key, atoms, run_protocol in runs:
        if key not in results:
            save(key, _ideal_entry(_label_checked(atoms, run_protocol, log_dir, key)))


def corundum_volume_key(material: str) -> str:
    ground = CORUNDUM_PARAMETERS[material].ground_state
    return f"zero-pressure {material} {ground} rh-10 volume_strain={CORUNDUM_VOLUME_STRAIN}"


def pulay_calibration(
    results: dict, material: str, ecut: float, orderings: tuple[str, ...] | None = None
) -> float | None:
    """``p`` (eV per formula unit) with ``σ(1100 eV) ≈ σ(ecut) + p n_fu / V``, averaged over
    ``orderings`` (default: both of the test cell); None if the runs are missing."""
    low = results.get(setting_key(material, ecut, 2.0))
    high = results.get(setting_key(material, REFERENCE_CUTOFF, 2.0))
    if low is None or high is None:
        return None
    values = []
    for ordering in orderings or tuple(low):
        offset = np.mean(np.array(high[ordering]["stress"][:3]) - low[ordering]["stress"][:3])
        values.append(offset * low[ordering]["volume"] / low[ordering]["formula_units"])
    return float(np.mean(values))


def _common_frame(entry: dict, reference: dict) -> np.ndarray:
    """Orthogonal Q taking ``entry``'s Cartesian frame to ``reference``'s.

    Runs made by different versions of the structure code may hold the same crystal in frames
    related by a rotation or inversion (Niggli reduction picks the orientation). Q is the
    orthogonal Procrustes fit of all force vectors (atom order is preserved). For runs in the
    same frame it is the identity up to ~1e-3, the part of the force error a rotation absorbs.
    """
    mine = np.concatenate([np.array(entry[o]["forces"]) for o in entry])
    theirs = np.concatenate([np.array(reference[o]["forces"]) for o in entry])
    u, _, vt = np.linalg.svd(theirs.T @ mine)
    return u @ vt


def _difference(
    entry: dict, reference: dict, pulay: float | None = None, stress_of: tuple[str, ...] = ()
) -> dict:
    q = _common_frame(entry, reference)
    first, second = entry  # FM and the other ordering
    n = len(entry[first]["forces"])
    d_order = (entry[first]["energy"] - entry[second]["energy"]) - (
        reference[first]["energy"] - reference[second]["energy"]
    )
    d_forces = max(
        np.abs(np.array(entry[o]["forces"]) @ q.T - reference[o]["forces"]).max() for o in entry
    )
    d_stress = 0.0
    for o in stress_of or tuple(entry):
        stress = voigt_6_to_full_3x3_stress(np.array(entry[o]["stress"]))
        if pulay is not None:
            stress += np.eye(3) * pulay * entry[o]["formula_units"] / entry[o]["volume"]
        expected = voigt_6_to_full_3x3_stress(np.array(reference[o]["stress"]))
        d_stress = max(d_stress, np.abs(q @ stress @ q.T - expected).max())
    d_total = max(abs(entry[o]["energy"] - reference[o]["energy"]) for o in entry)
    return {
        "ordering_energy_meV_per_atom": 1000 * abs(d_order) / n,
        "total_energy_meV_per_atom": 1000 * d_total / n,
        "forces_meV_per_A": 1000 * d_forces,
        "stress_GPa": d_stress / GPa,
        "wall_s": sum(entry[o]["wall_s"] for o in entry),
    }


def summarise(results: dict) -> dict:
    """Each setting against the tighter one along its axis; with the Pulay correction too."""
    table = {}
    for material, ecut, density, smearing in SETTINGS:
        key = setting_key(material, ecut, density, smearing)
        if key not in results:
            continue
        entry = results[key]
        cutoff_reference = setting_key(material, REFERENCE_CUTOFF, 2.0)
        kpoint_reference = setting_key(material, CUTOFF, *KPOINT_REFERENCE[material])
        if density == 2.0 and smearing == FERMI_DIRAC and key != cutoff_reference:
            if cutoff_reference in results:
                reference = results[cutoff_reference]
                table[f"{key} vs {cutoff_reference}"] = _difference(entry, reference)
                # out of sample: calibrated on FM, the stress error measured on the other ordering
                pulay = pulay_calibration(results, material, ecut, ("FM",))
                corrected = _difference(entry, reference, pulay, stress_of=tuple(entry)[1:])
                table[f"{key} + Pulay correction (from FM) vs {cutoff_reference}"] = corrected
        if ecut == CUTOFF and key != kpoint_reference and kpoint_reference in results:
            table[f"{key} vs {kpoint_reference}"] = _difference(entry, results[kpoint_reference])
    return table


def summarise_cross_cell(results: dict) -> dict:
    """Per material and k-point/smearing setting: the FM energy per formula unit in each cell,
    their difference, and each cell against the densest Fermi-Dirac mesh (meV/f.u.)."""
    table = {}
    for material in MATERIALS:
        reference = {
            cell: results.get(cross_cell_key(material, "FM", cell, 4.0)) for cell in CROSS_CELLS
        }
        for density, smearing in CROSS_CELL_SETTINGS:
            entries = [
                results.get(cross_cell_key(material, "FM", cell, density, smearing))
                for cell in CROSS_CELLS
            ]
            if None in entries:
                continue
            energies = [e["energy_per_fu"] for e in entries]
            row = {"cell_difference_meV_per_fu": 1000 * abs(energies[0] - energies[1])}
            for cell, energy in zip(CROSS_CELLS, energies, strict=True):
                if reference[cell] is not None:
                    row[f"{cell}_vs_k4.0_meV_per_fu"] = 1000 * (
                        energy - reference[cell]["energy_per_fu"]
                    )
            row["wall_s"] = sum(e["wall_s"] for e in entries)
            table[f"{material} FM kdensity={density} smearing={smearing[0]}:{smearing[1]}"] = row
    return table


def summarise_ordering_kpoints(results: dict) -> dict:
    """Per material and k-point density: the yardsticks' ordering energies (meV/f.u.), FM cell
    difference and J1 S², J2 S² (meV) of the undistorted crystal, computed as
    :func:`~spinmultinet_ase.magnetism.yardsticks.yardstick_table` computes them from the
    reference data."""
    table = {}
    for material in MATERIALS:
        for density in ORDERING_DENSITIES:
            frames = []
            for cell, ordering in ORDERING_CELLS:
                entry = results.get(cross_cell_key(material, ordering, cell, density))
                if entry is None:
                    break
                atoms = rocksalt_ordered(material, ordering, CELLS[cell])
                atoms.info.update(
                    yardstick=True,
                    material=material,
                    cell_name=cell,
                    ordering=ordering,
                    rhombohedral_strain=0.0,
                    energy_per_fu=entry["energy_per_fu"],
                    wall_s=entry["wall_s"],
                )
                frames.append(atoms)
            else:
                yardsticks = yardstick_table(
                    frames, energy=lambda a: a.info["energy_per_fu"] * (len(a) // 2)
                )[material]
                table[f"{material} kdensity={density}"] = {
                    **yardsticks["orderings_meV_per_fu"],
                    "fm_cell_difference_meV_per_fu": yardsticks["fm_cell_difference_meV_per_fu"],
                    "J1S2_meV": yardsticks["J1S2_meV"],
                    "J2S2_meV": yardsticks["J2S2_meV"],
                    "wall_s": sum(a.info["wall_s"] for a in frames),
                }
    return table


def yardstick_kpoint_errors(results: dict) -> dict[str, dict[str, float]]:
    """Per material and undistorted yardstick cell (``'<cell> <ordering>'``): the energy at the
    protocol's k-point density minus that at the densest one run, in meV per formula unit. An
    ordering seen in one kind of cell only is learned with that cell's error; FM, seen in
    every cell, with their average."""
    table: dict[str, dict[str, float]] = {}
    coarse, dense = ORDERING_DENSITIES[0], ORDERING_DENSITIES[-1]
    for material in MATERIALS:
        for cell, ordering in ORDERING_CELLS:
            at = [results.get(cross_cell_key(material, ordering, cell, k)) for k in (coarse, dense)]
            if None not in at:
                error = 1000 * (at[0]["energy_per_fu"] - at[1]["energy_per_fu"])
                table.setdefault(material, {})[f"{cell} {ordering}"] = error
    return table


def summarise_orientation(results: dict) -> dict:
    """Per material and cell: the FM energy per formula unit against the unturned 2-atom cell
    (meV/f.u.), run as given and bond-aligned."""
    table = {}
    for material in ORIENTATION_MATERIALS:
        reference = results.get(orientation_key(material, "prim-2", 0.0, False))
        if reference is None:
            continue
        for cell, turn in ORIENTATION_CASES[1:]:
            row = {}
            for aligned in (False, True):
                entry = results.get(orientation_key(material, cell, turn, aligned))
                if entry is not None:
                    difference = entry["energy_per_fu"] - reference["energy_per_fu"]
                    row["aligned" if aligned else "as given"] = 1000 * difference
            table[f"{material} {cell} turned {turn:g}°"] = row
    return table


def summarise_pulay_energy(results: dict) -> dict:
    """How much the energy difference between two volumes of the FM test cell at the protocol
    cutoff misses the reference cutoff's (meV/atom): as computed, and with the energy term
    ``p n_fu ln(V_b / V_a)`` that would follow if the analytic stress were the volume
    derivative of the fixed-cutoff energy. It is not (GPAW's stress is taken at a fixed
    number of plane waves), so only the stress is corrected."""
    table = {}
    for material, volume_strain in PULAY_VOLUME_CHECK:
        a = results.get(setting_key(material, CUTOFF, 2.0), {}).get("FM")
        b = results.get(setting_key(material, REFERENCE_CUTOFF, 2.0), {}).get("FM")
        c = results.get(pulay_volume_key(material, CUTOFF, volume_strain))
        d = results.get(pulay_volume_key(material, REFERENCE_CUTOFF, volume_strain))
        p = pulay_calibration(results, material, CUTOFF)
        if None in (a, b, c, d, p):
            continue
        atoms = 2 * a["formula_units"]
        measured = (d["energy"] - c["energy"]) - (b["energy"] - a["energy"])
        predicted = p * a["formula_units"] * np.log(c["volume"] / a["volume"])
        table[f"{material} volume strain 0.02 -> {volume_strain}"] = {
            "fixed_cutoff_error_meV_per_atom": 1000 * measured / atoms,
            "with_ln_volume_term_error_meV_per_atom": 1000 * (measured - predicted) / atoms,
        }
    return table


def summarise_corundum(results: dict) -> dict:
    """Per corundum material: the ordering energies of the ideal 10-atom cell (meV per formula
    unit, against FM) at each k-point density and their change to the densest, the energy of
    the ground state turned about the 3-fold axis against the canonical orientation
    (meV/f.u.), and the Pulay calibration ``p`` (eV per formula unit)."""
    table = {}
    for material in CORUNDUM_MATERIALS:
        orderings = [a.info["ordering"] for a in corundum_yardsticks(material)]
        energies = {}
        for density in CORUNDUM_DENSITIES:
            entries = [results.get(corundum_ordering_key(material, o, density)) for o in orderings]
            if None in entries:
                continue
            fm = entries[0]["energy_per_fu"]
            energies[density] = {
                o: 1000 * (e["energy_per_fu"] - fm) for o, e in zip(orderings, entries, strict=True)
            }
            table[f"{material} orderings kdensity={density}"] = {
                **energies[density],
                "wall_s": sum(e["wall_s"] for e in entries),
            }
        dense = CORUNDUM_DENSITIES[-1]
        for density in set(energies) - {dense}:
            if dense in energies:
                table[f"{material} orderings kdensity={density} - kdensity={dense}"] = {
                    o: energies[density][o] - energies[dense][o] for o in orderings
                }
        ground = CORUNDUM_PARAMETERS[material].ground_state
        canonical = results.get(orientation_key(material, "rh-10", 0.0, False, ground))
        for turn, aligned in CORUNDUM_ORIENTATION_CASES[1:]:
            entry = results.get(orientation_key(material, "rh-10", turn, aligned, ground))
            if canonical is not None and entry is not None:
                shown = "canonical orientation" if aligned else "as given"
                difference = entry["energy_per_fu"] - canonical["energy_per_fu"]
                table[f"{material} {ground} turned {turn:g}° about z, {shown}"] = {
                    "meV_per_fu": 1000 * difference
                }
        pulay = pulay_calibration(results, material, CUTOFF)
        if pulay is not None:
            table[f"{material} Pulay stress calibration at {CUTOFF:.0f} eV"] = {"eV_per_fu": pulay}
        ideal = results.get(corundum_ordering_key(material, ground, CORUNDUM_DENSITIES[0]))
        expanded = results.get(corundum_volume_key(material))
        if ideal is not None and expanded is not None:
            pressures = [
                e["pressure_gpa"] - (pulay or 0.0) * e["formula_units"] / e["volume"] / GPa
                for e in (ideal, expanded)
            ]
            slope = (pressures[1] - pressures[0]) / CORUNDUM_VOLUME_STRAIN
            table[f"{material} {ground} zero pressure"] = {
                "pressure_gpa": pressures,
                "volume_strain": [0.0, CORUNDUM_VOLUME_STRAIN],
                "pulay_corrected": pulay is not None,
                "zero_pressure_volume_strain": -pressures[0] / slope,
            }
    return table
