"""Write the example's inputs: the shipped model (copied to ``model.pt``), a 512-atom AFM-II NiO.

Run from this folder: ``python prepare.py``.
"""

from __future__ import annotations

import shutil

import numpy as np

from spinmultinet_ase.export import default_model_path
from spinmultinet_ase.lammps import lammps_frame, write_spin_data
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered

CONVENTIONAL = np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]])  # fcc primitive -> cubic cell


def main() -> None:
    shutil.copyfile(default_model_path(), "model.pt")
    atoms = rocksalt_ordered("NiO", "AFM-II", matrix=4 * CONVENTIONAL)  # 512 atoms, ±2 μB
    atoms.rattle(0.02, seed=0)
    write_spin_data("nio_afm2.data", lammps_frame(atoms), ["O", "Ni"])
    print(f"wrote model.pt and nio_afm2.data ({len(atoms)} atoms)")


if __name__ == "__main__":
    main()
