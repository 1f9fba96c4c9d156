"""Corundum sesquioxides M2O3 (R-3c): the 10-atom rhombohedral cell and its supercells.

The cell is built from literature structure parameters (hexagonal setting: a, c, metal 12c
``(0, 0, z)``, oxygen 18e ``(x, 0, 1/4)``) in one fixed orientation, the hexagonal frame:
the 3-fold axis along z, the hexagonal a axis (a 2-fold axis) along x. The four metals come
first, sorted by height along the 3-fold axis, so that an ordering of the 10-atom cell reads
along the axis: ``'udud'`` is + − + −.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import make_supercell
from ase.formula import Formula
from ase.spacegroup import crystal

from spinmultinet_ase.magnetism.sites import default_magnitude


@dataclass(frozen=True)
class CorundumParameters:
    """Hexagonal-setting structure of an R-3c sesquioxide.

    Attributes:
        a, c: hexagonal lattice parameters (Å).
        z_metal: metal 12c coordinate z.
        x_oxygen: oxygen 18e coordinate x.
        ground_state: the observed ordering of the four metals along the 3-fold axis.
        protocol_volume_strain: the volume of our GPAW PBE+U protocol's zero pressure in the
            ground state, relative to the X-ray cell (the convergence study's
            "<formula> <ground state> zero pressure" entry, data/convergence.json).
    """

    a: float
    c: float
    z_metal: float
    x_oxygen: float
    ground_state: str
    protocol_volume_strain: float


# Room-temperature X-ray structures (Finger and Hazen, J. Appl. Phys. 51, 5362 (1980)), ground
# states from neutron diffraction, zero-pressure volumes of our protocol (docs/corundum_data.md).
CORUNDUM_PARAMETERS: dict[str, CorundumParameters] = {
    "Cr2O3": CorundumParameters(4.9607, 13.599, 0.34748, 0.30592, "udud", 0.067),
    "Fe2O3": CorundumParameters(5.0355, 13.7471, 0.35534, 0.30592, "uddu", 0.055),
}

# The oxidation state of the metal, which sets the initial-moment guess (Cr³⁺ 3, Fe³⁺ 5 μB).
OXIDATION_STATE = 3

# Named supercells of the 10-atom cell (rows: new lattice vectors in the rhombohedral ones).
# The three classes of index-2 superlattices of a rhombohedral lattice, and the conventional
# hexagonal cell (index 3).
CORUNDUM_CELLS: dict[str, np.ndarray] = {
    "rh-10": np.eye(3, dtype=int),
    "rh211-20": np.diag([2, 1, 1]),
    "rh2x-20": np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]]),
    "rh110-20": np.array([[1, 1, 0], [-1, 1, 0], [0, 0, 1]]),
    "hex-30": np.array([[1, -1, 0], [0, 1, -1], [1, 1, 1]]),
}


def corundum_metal(formula: str) -> str:
    """The metal of a known corundum formula such as ``'Cr2O3'``, with a clear error otherwise."""
    if formula not in CORUNDUM_PARAMETERS:
        known = ", ".join(sorted(CORUNDUM_PARAMETERS))
        raise ValueError(f"unknown corundum oxide {formula!r}; known formulas: {known}")
    return next(symbol for symbol in Formula(formula).count() if symbol != "O")


def corundum_cell(formula: str, supercell: str = "rh-10", xray: bool = False) -> Atoms:
    """The ideal cell of ``formula`` in the hexagonal frame, all metal moments up.

    Args:
        formula: a key of :data:`CORUNDUM_PARAMETERS`.
        supercell: a key of :data:`CORUNDUM_CELLS`.
        xray: the X-ray cell itself; by default it is scaled uniformly to the protocol's
            zero-pressure volume (``protocol_volume_strain``).

    Returns:
        Metals first (in the 10-atom cell sorted by height along z), then oxygen; initial
        moments the metal's high-spin guess in its trivalent state, 0 on oxygen.
    """
    metal = corundum_metal(formula)
    if supercell not in CORUNDUM_CELLS:
        raise ValueError(f"unknown corundum cell {supercell!r}; known: {', '.join(CORUNDUM_CELLS)}")
    p = CORUNDUM_PARAMETERS[formula]
    scale = 1.0 if xray else (1.0 + p.protocol_volume_strain) ** (1 / 3)
    atoms = crystal(
        [metal, "O"],
        basis=[(0, 0, p.z_metal), (p.x_oxygen, 0, 0.25)],
        spacegroup=167,
        cellpar=[scale * p.a, scale * p.a, scale * p.c, 90, 90, 120],
        primitive_cell=True,
    )
    heights = atoms.positions[:, 2] % atoms.cell.array.sum(axis=0)[2]
    order = sorted(range(len(atoms)), key=lambda i: (atoms[i].symbol == "O", heights[i]))
    atoms = atoms[order]
    moments = [
        default_magnitude(metal, OXIDATION_STATE) if s == metal else 0.0 for s in atoms.symbols
    ]
    atoms.set_initial_magnetic_moments(moments)
    if supercell != "rh-10":
        atoms = make_supercell(atoms, CORUNDUM_CELLS[supercell])
    return atoms
