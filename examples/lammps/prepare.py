"""Write the example's inputs: the shipped model re-exported, and a 512-atom AFM-II NiO.

The shipped model file predates the ``energy_mask`` input the LAMMPS plugin needs, so its
weights are loaded into a fresh model and exported again (same weights, same metadata).
Run from this folder: ``python prepare.py``.
"""

from __future__ import annotations

import numpy as np

from spinmultinet_ase.export import (
    DTYPES,
    REQUIRED_METADATA,
    default_model_path,
    export_model,
    load_model,
)
from spinmultinet_ase.lammps import lammps_frame, write_spin_data
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.model import ModelConfig, SpinMultiNet

CONVENTIONAL = np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]])  # fcc primitive -> cubic cell


def reexport_shipped_model(path: str) -> None:
    shipped = load_model(default_model_path())
    model = SpinMultiNet(ModelConfig.from_dict(shipped.metadata["model_config"]))
    model.load_state_dict(shipped.module.state_dict())
    model.to(DTYPES[shipped.metadata["dtype"]]).eval()
    extra = {k: v for k, v in shipped.metadata.items() if k not in REQUIRED_METADATA}
    export_model(model, path, extra=extra)


def main() -> None:
    reexport_shipped_model("model.pt")
    atoms = rocksalt_ordered("NiO", "AFM-II", matrix=4 * CONVENTIONAL)  # 512 atoms, ±2 μB
    atoms.rattle(0.02, seed=0)
    write_spin_data("nio_afm2.data", lammps_frame(atoms), ["O", "Ni"])
    print(f"wrote model.pt and nio_afm2.data ({len(atoms)} atoms)")


if __name__ == "__main__":
    main()
