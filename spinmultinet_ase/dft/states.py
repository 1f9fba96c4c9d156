"""One DFT+U state for materials whose metal ions are orbitally degenerate (FeO, CoO).

High-spin Fe²⁺ (d⁶) and Co²⁺ (d⁷) in an oxygen octahedron put one and two minority-spin
electrons into the threefold t2g shell. DFT+U then has several self-consistent solutions:
a metal with the minority electrons spread over the t2g orbitals (what a start with the
crystal's symmetry keeps), and insulators with them in whole orbitals, which differ in the
orbitals they fill (``data/studies/feo_coo_states.md``). The labeller asks for one of them in
every frame: the minority electrons in the target orbitals about the frame's 3-fold axis
(FeO: a1g, CoO: the e_g' pair), the trigonal state of the AFM-II cell. Every run of these
materials starts with an orbital bias on those orbitals (``dft/orbital_bias.py``); frames that
land elsewhere are recognised (:func:`state_problem`) and rejected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# Minority-spin d electrons in the t2g shell of the metal ion, by reduced formula: the
# materials whose runs start with an orbital bias and whose state is checked.
MINORITY_T2G_ELECTRONS: dict[str, int] = {"FeO": 1, "CoO": 2}

# An accepted frame has a band gap of at least this (eV) ...
MIN_GAP_EV = 0.25
# ... and each metal's minority-spin d occupation eigenvalues near-integer: the n largest
# (n from MINORITY_T2G_ELECTRONS) at least FILLED, the next one at most EMPTY; and its target
# orbitals holding at least FILLED × n electrons.
FILLED = 0.8
EMPTY = 0.3


# Largest energy difference (eV per formula unit) between a frame and its ordering partner
# (the same geometry in another collinear ordering). Ordering energies of the rocksalt
# monoxides are tens of meV per formula unit; a run in another orbital state of FeO is
# about 1 eV per formula unit off.
MAX_PARTNER_DIFFERENCE_EV = 0.3


def needs_broken_symmetry(formula: str) -> bool:
    """Whether runs of the material with reduced formula ``formula`` follow this module's rule."""
    return formula in MINORITY_T2G_ELECTRONS


def band_gap(calc) -> float:
    """Lowest eigenvalue above the Fermi level minus the highest below, both spins (eV)."""
    fermi = calc.get_fermi_level()
    eigenvalues = np.concatenate(
        [
            calc.get_eigenvalues(kpt=k, spin=s)
            for s in range(calc.get_number_of_spins())
            for k in range(len(calc.get_ibz_k_points()))
        ]
    )
    return float(eigenvalues[eigenvalues > fermi].min() - eigenvalues[eigenvalues <= fermi].max())


def minority_d_occupations(calc, magmoms: np.ndarray) -> dict[int, np.ndarray]:
    """Per atom with a d shell under +U, the eigenvalues (descending) of its minority-spin d
    occupation matrix: the matrix GPAW's Hubbard term acts on, minority opposite to the
    atom's converged moment ``magmoms``."""
    from gpaw.hubbard import aoom

    dft = calc.dft
    density_matrices = dft.density.D_asii.gather(broadcast=True, copy=True)
    occupations = {}
    for a, setup in enumerate(dft.setups):
        if setup.hubbard_u is None:
            continue
        minority = 1 if magmoms[a] >= 0 else 0
        d_ii = np.asarray(density_matrices[a][minority])
        n_mm, _ = aoom(d_ii, 2, setup.l_j, setup.n_j, setup.N0_q, True)
        occupations[a] = np.sort(np.linalg.eigvalsh(n_mm))[::-1]
    return occupations


def state_problem(
    formula: str,
    gap: float,
    occupations: Mapping[int, np.ndarray],
    target_filling: Mapping[int, float],
) -> str:
    """Why a run of ``formula`` is not in the insulating target state ('' if ok).

    Args:
        formula: reduced formula, a key of :data:`MINORITY_T2G_ELECTRONS`.
        gap: band gap (eV), :func:`band_gap`.
        occupations: :func:`minority_d_occupations`.
        target_filling: per metal atom, the electrons in its target orbitals, Tr(P N) of the
            converged density (``orbital_bias.target_occupations``).
    """
    n = MINORITY_T2G_ELECTRONS[formula]
    problems = []
    if gap < MIN_GAP_EV:
        problems.append(f"band gap {gap:.2f} eV below {MIN_GAP_EV} eV")
    for atom, eigenvalues in occupations.items():
        if eigenvalues[n - 1] < FILLED or eigenvalues[n] > EMPTY:
            shown = ", ".join(f"{x:.2f}" for x in eigenvalues)
            problems.append(f"atom {atom} minority d occupations {shown} not {n} whole orbital(s)")
    for atom, filling in target_filling.items():
        if filling < FILLED * n:
            problems.append(f"atom {atom} target orbitals hold {filling:.2f} of {n} electrons")
    return "; ".join(problems)


def partner_problem(energy: float, partner_energy: float, formula_units: int) -> str:
    """Why a frame and its ordering partner cannot both be in one electronic state ('' if ok).

    Args:
        energy: DFT energy of the frame (eV).
        partner_energy: DFT energy of its partner, the same geometry in another ordering (eV).
        formula_units: formula units in the cell.
    """
    difference = abs(energy - partner_energy) / formula_units
    if difference > MAX_PARTNER_DIFFERENCE_EV:
        return (
            f"{difference:.2f} eV per formula unit from its ordering partner (more than "
            f"{MAX_PARTNER_DIFFERENCE_EV} eV: another electronic state)"
        )
    return ""


def higher_states(energies: Sequence[float], formula_units: int) -> dict[int, str]:
    """The frames of one geometry (a source and its ordering partners) in a higher electronic
    state than the lowest of them: index -> :func:`partner_problem` against the lowest frame.

    A DFT+U solution more than :data:`MAX_PARTNER_DIFFERENCE_EV` per formula unit above
    another of the same geometry is a metastable state, so the higher frames are the wrong ones.

    Args:
        energies: DFT energies of the frames, one or more (eV).
        formula_units: formula units in the cell (the same for all: one geometry).
    """
    lowest = min(energies)
    problems = {i: partner_problem(e, lowest, formula_units) for i, e in enumerate(energies)}
    return {i: problem for i, problem in problems.items() if problem}
