"""A committee's spread at a structure, as the workflows report and store it.

With a committee calculator (:mod:`spinmultinet_ase.committee`), a workflow reports next to
each result the members' spread: the population standard deviation (``ddof=0``) over the
members. Structures written to extxyz carry it the way ASE keeps a per-structure and a
per-atom quantity: ``info["energy_std"]`` (eV) and ``arrays["forces_std"]`` (N, 3) eV/Å
(MD frames: ``info["energy_std"]`` and ``info["max_force_std"]``). Any other calculator has no
spread, and the workflows write what they wrote before; a spread a structure carries from an
earlier run (a committee's output read back) is dropped, since its calculator did not give it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from spinmultinet_ase.committee import MEMBER_ENERGIES, atom_force_spreads

# where a structure carries a spread: per-structure (info) and per-atom (arrays) keys
SPREAD_INFO = ("energy_std", "max_force_std")
SPREAD_ARRAYS = ("forces_std",)


@dataclass(frozen=True)
class Spread:
    """The members' spread at one structure."""

    energy_std: float  # eV, of the total energy
    forces_std: np.ndarray  # (N, 3) eV/Å, per component
    member_energies: np.ndarray  # (M,) eV, each member's total energy

    @property
    def max_force_std(self) -> float:
        """The largest per-atom force spread (eV/Å): :func:`atom_force_spreads`' maximum."""
        return float(atom_force_spreads(self.forces_std).max())


def is_committee(calc: Calculator | None) -> bool:
    """Whether ``calc`` is a committee: it gives the members' energies."""
    return MEMBER_ENERGIES in getattr(calc, "implemented_properties", ())


def spread_of(atoms: Atoms) -> Spread | None:
    """The spread of ``atoms.calc`` at ``atoms`` (computed if needed), or None when the
    calculator is not a committee."""
    calc = atoms.calc
    if not is_committee(calc):
        return None
    return Spread(
        energy_std=float(calc.get_property("energy_std", atoms)),
        forces_std=np.array(calc.get_property("forces_std", atoms)),
        member_energies=np.array(calc.get_property(MEMBER_ENERGIES, atoms)),
    )


def drop_spread(atoms: Atoms) -> None:
    """Remove any spread ``atoms`` carries (:data:`SPREAD_INFO`, :data:`SPREAD_ARRAYS`), e.g.
    one read from a committee run's output, which describes another calculator's results."""
    for key in SPREAD_INFO:
        atoms.info.pop(key, None)
    for key in SPREAD_ARRAYS:
        atoms.arrays.pop(key, None)


def store_spread(atoms: Atoms, spread: Spread | None) -> None:
    """Put ``spread`` into ``atoms`` for extxyz: ``info["energy_std"]`` and
    ``arrays["forces_std"]``, in place of any it carried (:func:`drop_spread`; None: none)."""
    drop_spread(atoms)
    if spread is None:
        return
    atoms.info["energy_std"] = spread.energy_std
    atoms.arrays["forces_std"] = spread.forces_std.copy()
