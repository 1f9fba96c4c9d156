"""Which atoms are magnetic: the moments the user set, an explicit list, or default guesses.

A magnetic site is an atom with a nonzero initial moment (``initial_magmoms``), or one of an
explicit list of indices. The tables below are *guesses* of initial-moment magnitudes (μB):
the spin-only high-spin moment ``2S`` (the number of unpaired d or f electrons) of an ion in a
common oxidation state. They fill in moments a user has not set and never decide on their own
which atoms are magnetic once moments are given. Many 4d ions are low-spin in practice: pass
their magnitudes explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from ase import Atoms

# Initial-moment guess (μB) per element: the high-spin moment of its most common ion. Mn, Fe,
# Co and Ni are the divalent ions of the rocksalt oxides (the guesses of the reference data).
DEFAULT_MOMENT_MAGNITUDES: dict[str, float] = {
    # 3d: Ti3+ d1, V3+ d2, Cr3+ d3, Mn2+ d5, Fe2+ d6, Co2+ d7, Ni2+ d8, Cu2+ d9
    "Ti": 1.0, "V": 2.0, "Cr": 3.0, "Mn": 5.0, "Fe": 4.0, "Co": 3.0, "Ni": 2.0, "Cu": 1.0,
    # 4d: Nb4+ d1, Mo3+ d3, Tc4+ d3, Ru3+ d5, Rh3+ d6, Pd2+ d8, Ag2+ d9
    "Nb": 1.0, "Mo": 3.0, "Tc": 3.0, "Ru": 5.0, "Rh": 4.0, "Pd": 2.0, "Ag": 1.0,
    # 4f: trivalent ions f1 (Ce) to f13 (Yb); Eu2+ f7
    "Ce": 1.0, "Pr": 2.0, "Nd": 3.0, "Pm": 4.0, "Sm": 5.0, "Eu": 7.0, "Gd": 7.0,
    "Tb": 6.0, "Dy": 5.0, "Ho": 4.0, "Er": 3.0, "Tm": 2.0, "Yb": 1.0,
}  # fmt: skip

# High-spin moments (μB) of other common oxidation states, where they differ from the above.
OXIDATION_STATE_MOMENTS: dict[tuple[str, int], float] = {
    ("Ti", 2): 2.0, ("V", 4): 1.0, ("V", 2): 3.0, ("Cr", 2): 4.0, ("Cr", 4): 2.0,
    ("Mn", 3): 4.0, ("Mn", 4): 3.0, ("Fe", 3): 5.0, ("Fe", 4): 4.0, ("Co", 3): 4.0,
    ("Co", 4): 5.0, ("Ni", 3): 3.0, ("Mo", 4): 2.0, ("Mo", 5): 1.0, ("Ru", 4): 4.0,
    ("Eu", 3): 6.0, ("Sm", 2): 6.0, ("Yb", 2): 0.0, ("Ce", 4): 0.0, ("Tb", 4): 7.0,
}  # fmt: skip

# Moments below this (μB) count as zero: the atom is not a magnetic site.
MOMENT_THRESHOLD = 1e-6
# Unit moment directions whose dot product is within this of 1 count as parallel.
PARALLEL_TOLERANCE = 1e-9


def default_magnitude(symbol: str, oxidation_state: int | None = None) -> float:
    """Guess of the initial-moment magnitude (μB) of an element, 0 for one not in the tables."""
    if oxidation_state is not None and (symbol, oxidation_state) in OXIDATION_STATE_MOMENTS:
        return OXIDATION_STATE_MOMENTS[(symbol, oxidation_state)]
    return DEFAULT_MOMENT_MAGNITUDES.get(symbol, 0.0)


def guessed_moments(atoms: Atoms, magnitudes: Mapping[str, float] | None = None) -> np.ndarray:
    """Initial moments (μB) of ``atoms``: the ones set, else guesses per element, all parallel.

    Moments already set (any nonzero ``initial_magmoms``) are kept as they are; ``magnitudes``
    then rescales the sites of the elements it names, keeping each sign. Otherwise every atom
    gets the magnitude of its element from ``magnitudes``, else
    :data:`DEFAULT_MOMENT_MAGNITUDES`, else 0 (``magnitudes`` can set an element to 0).
    """
    magnitudes = dict(magnitudes or {})
    symbols = atoms.get_chemical_symbols()
    moments = atoms.get_initial_magnetic_moments()
    if moments.ndim != 1:
        raise ValueError("collinear orderings need scalar initial moments, got vectors")
    if np.any(np.abs(moments) > MOMENT_THRESHOLD):
        signs = np.sign(moments)
        return np.array(
            [
                s * magnitudes[el] if el in magnitudes and s != 0 else m
                for el, s, m in zip(symbols, signs, moments, strict=True)
            ]
        )
    return np.array([magnitudes.get(el, default_magnitude(el)) for el in symbols])


def magnetic_sites(atoms: Atoms, indices: Sequence[int] | None = None) -> np.ndarray:
    """Indices of the magnetic sites: ``indices`` if given, else atoms with a nonzero moment.

    Raises:
        ValueError: no magnetic site, or an index outside the structure.
    """
    if indices is not None:
        sites = np.unique(np.asarray(indices, dtype=int))
        if sites.size and (sites.min() < 0 or sites.max() >= len(atoms)):
            raise ValueError(f"magnetic site indices must lie in 0..{len(atoms) - 1}")
    else:
        moments = atoms.get_initial_magnetic_moments()
        norms = np.abs(moments) if moments.ndim == 1 else np.linalg.norm(moments, axis=1)
        sites = np.flatnonzero(norms > MOMENT_THRESHOLD)
    if sites.size == 0:
        raise ValueError(
            f"no magnetic site in {atoms.get_chemical_formula()}: set initial moments on the "
            "magnetic atoms (or moment magnitudes per element, e.g. Cr=3)"
        )
    return sites


def is_ferromagnetic(atoms: Atoms) -> bool:
    """Whether the initial moments of all magnetic sites are parallel: one sign (collinear,
    ``(N,)``) or one direction (non-collinear, ``(N, 3)``), whatever their sizes.

    Raises:
        ValueError: no magnetic site.
    """
    moments = atoms.get_initial_magnetic_moments()[magnetic_sites(atoms)]
    if moments.ndim == 1:
        return bool(np.all(np.sign(moments) == np.sign(moments[0])))
    directions = moments / np.linalg.norm(moments, axis=1, keepdims=True)
    return bool(np.all(directions @ directions[0] > 1 - PARALLEL_TOLERANCE))


def site_types(atoms: Atoms) -> list[int]:
    """Symmetry types for spglib: element and moment magnitude (the sign does not count)."""
    moments = atoms.get_initial_magnetic_moments()
    norms = np.abs(moments) if moments.ndim == 1 else np.linalg.norm(moments, axis=1)
    kinds: dict[tuple[int, float], int] = {}
    return [
        kinds.setdefault((int(number), round(float(norm), 3)), len(kinds))
        for number, norm in zip(atoms.numbers, norms, strict=True)
    ]
