"""Write the example's inputs: the shipped model (copied to ``model.pt``) and an AFM-II NiO.

Run from this folder: ``python prepare.py`` (512 atoms: 4 × 4 × 4 cubic cells of 8 atoms), or
``python prepare.py --repeat 16`` for 32768 atoms.
"""

from __future__ import annotations

import argparse
import shutil

import numpy as np

from spinmultinet_ase.export import default_model_path
from spinmultinet_ase.lammps import lammps_frame, write_spin_data
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered

CONVENTIONAL = np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]])  # fcc primitive -> cubic cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=4, help="cubic cells along each axis")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, not {args.repeat}")
    shutil.copyfile(default_model_path(), "model.pt")
    atoms = rocksalt_ordered("NiO", "AFM-II", matrix=args.repeat * CONVENTIONAL)  # ±2 μB
    atoms.rattle(0.02, seed=0)
    write_spin_data("nio_afm2.data", lammps_frame(atoms), ["O", "Ni"])
    print(f"wrote model.pt and nio_afm2.data ({len(atoms)} atoms)")


if __name__ == "__main__":
    main()
