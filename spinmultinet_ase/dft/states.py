"""One DFT+U state for materials whose metal ions are orbitally degenerate (FeO, CoO).

High-spin Fe²⁺ (d⁶) and Co²⁺ (d⁷) in an oxygen octahedron put one and two minority-spin
electrons into the threefold t2g shell. DFT+U then has several self-consistent solutions:
a metal with the minority electrons spread over the t2g orbitals (what a start with the
crystal's symmetry keeps), and insulators with them in whole orbitals, which differ in the
orbitals they fill (``data/studies/feo_coo_states.md``). Every run of these materials starts
with an orbital bias on the target orbitals about the frame's 3-fold axis (FeO: a1g, CoO: the
e_g' pair; ``dft/orbital_bias.py``), and :func:`state_problem` judges where it landed, by the
material's rule in :data:`STATE_RULES`: CoO must be the insulator with its two electrons in the
e_g' target pair; FeO, whose single electron turns within t2g once a rattle removes the 3-fold
axis, must be an insulator with one whole minority orbital per Fe, whichever orbital that is.
Frames that fail are rejected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# An accepted frame has a band gap of at least this (eV) ...
MIN_GAP_EV = 0.25
# ... and each metal's minority-spin d occupation eigenvalues near-integer: the n largest
# (n: the rule's minority t2g electrons) at least the rule's ``filled``, the next one at most
# EMPTY; where the rule checks the target, its target orbitals hold at least FILLED × n
# electrons. FILLED is also the filling at which the orbital bias is released.
FILLED = 0.8
EMPTY = 0.3
# The ``filled`` of a rule without the target check: the minority electron's orbital keeps at
# least this of its electron. A whole orbital loses only what covalency with O 2p takes from
# it (a few hundredths); an electron shared between orbitals leaves each at most about half.
WHOLE = 0.9


@dataclass(frozen=True)
class StateRule:
    """The electronic state the labeller accepts for one material.

    Attributes:
        electrons: minority-spin d electrons of the metal ion in the t2g shell (n).
        filled: least occupation eigenvalue of each of the n filled minority orbitals.
        target: whether the n electrons must be in the bias's target orbitals
            (``orbital_bias.trigonal_projector``), or may fill any n whole orbitals.
    """

    electrons: int
    filled: float
    target: bool


# The materials whose runs start with an orbital bias and whose state is checked, by reduced
# formula (data/studies/feo_coo_states.md, "The rule for FeO", "The rule").
STATE_RULES: dict[str, StateRule] = {
    "FeO": StateRule(electrons=1, filled=WHOLE, target=False),
    "CoO": StateRule(electrons=2, filled=FILLED, target=True),
}


# Largest energy difference (eV per formula unit) between a frame and its ordering partner
# (the same geometry in another collinear ordering). Ordering energies of the rocksalt
# monoxides are tens of meV per formula unit; a run in another orbital state of FeO is
# about 1 eV per formula unit off.
MAX_PARTNER_DIFFERENCE_EV = 0.3


def needs_broken_symmetry(formula: str) -> bool:
    """Whether runs of the material with reduced formula ``formula`` follow this module's rule."""
    return formula in STATE_RULES


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
    """Per atom with a d shell under +U, its minority-spin d occupation matrix (5, 5): the
    matrix GPAW's Hubbard term acts on, in GPAW's real l = 2 harmonics, minority opposite to
    the atom's converged moment ``magmoms``."""
    from gpaw.hubbard import aoom

    dft = calc.dft
    density_matrices = dft.density.D_asii.gather(broadcast=True, copy=True)
    occupations = {}
    for a, setup in enumerate(dft.setups):
        if setup.hubbard_u is None:
            continue
        minority = 1 if magmoms[a] >= 0 else 0
        d_ii = np.asarray(density_matrices[a][minority]).real
        occupations[a], _ = aoom(d_ii, 2, setup.l_j, setup.n_j, setup.N0_q, True)
    return occupations


def occupation_eigenvalues(n_mm: np.ndarray) -> np.ndarray:
    """Eigenvalues (descending) of the occupation matrix ``n_mm``: the occupations of its
    natural orbitals, the same in any basis of the d shell."""
    return np.sort(np.linalg.eigvalsh(np.asarray(n_mm, dtype=float)))[::-1]


def state_problem(
    formula: str,
    gap: float,
    occupations: Mapping[int, np.ndarray],
    target_filling: Mapping[int, float],
) -> str:
    """Why a run of ``formula`` is not in the state its rule accepts ('' if ok).

    The rule (:data:`STATE_RULES`) asks for a band gap of at least :data:`MIN_GAP_EV`, n whole
    minority orbitals per metal (the n largest eigenvalues of its minority d occupation matrix
    at least the rule's ``filled``, the next at most :data:`EMPTY`: invariant under any
    rotation of the d orbitals), and, where the rule says so, those electrons in the target
    orbitals (at least :data:`FILLED` × n).

    Args:
        formula: reduced formula, a key of :data:`STATE_RULES`.
        gap: band gap (eV), :func:`band_gap`.
        occupations: per metal atom, its minority d occupation matrix (5, 5),
            :func:`minority_d_occupations`.
        target_filling: per metal atom, the electrons in its target orbitals, Tr(P N) of the
            converged density (``orbital_bias.target_occupations``); not judged where the
            rule has no target check.
    """
    rule = STATE_RULES[formula]
    n = rule.electrons
    problems = []
    if gap < MIN_GAP_EV:
        problems.append(f"band gap {gap:.2f} eV below {MIN_GAP_EV} eV")
    for atom, n_mm in occupations.items():
        eigenvalues = occupation_eigenvalues(n_mm)
        if eigenvalues[n - 1] < rule.filled or eigenvalues[n] > EMPTY:
            shown = ", ".join(f"{x:.2f}" for x in eigenvalues)
            problems.append(f"atom {atom} minority d occupations {shown} not {n} whole orbital(s)")
    if rule.target:
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
