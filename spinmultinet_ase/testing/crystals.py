"""Small magnetic crystals beyond rocksalt, from literature structure parameters, no moments set:
test inputs for the general (any-crystal) paths."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.spacegroup import crystal


def corundum() -> Atoms:
    """Cr2O3 (R-3c), the 10-atom rhombohedral cell."""
    return crystal(
        ["Cr", "O"],
        basis=[(0, 0, 0.3475), (0.3058, 0, 0.25)],
        spacegroup=167,
        cellpar=[4.96, 4.96, 13.59, 90, 90, 120],
        primitive_cell=True,
    )


def spinel() -> Atoms:
    """ZnCr2O4 (Fd-3m, origin choice 2), the 14-atom primitive cell."""
    return crystal(
        ["Zn", "Cr", "O"],
        basis=[(0.125, 0.125, 0.125), (0.5, 0.5, 0.5), (0.2625, 0.2625, 0.2625)],
        spacegroup=227,
        setting=2,
        cellpar=[8.33, 8.33, 8.33, 90, 90, 90],
        primitive_cell=True,
    )


def rutile() -> Atoms:
    """CrO2 (P4_2/mnm), 6 atoms."""
    return crystal(
        ["Cr", "O"],
        basis=[(0, 0, 0), (0.3, 0.3, 0)],
        spacegroup=136,
        cellpar=[4.42, 4.42, 2.92, 90, 90, 90],
    )


def perovskite() -> Atoms:
    """Cubic SrMnO3, 5 atoms."""
    return Atoms(
        "SrMnO3",
        scaled_positions=[[0, 0, 0], [0.5] * 3, [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        cell=3.85 * np.eye(3),
        pbc=True,
    )
