"""Time one SpinMultiNet call (energy + forces + stress) on 500-atom NiO, for a checkout.

Compares tensor-product variants across commits: pass the root of a checkout (e.g. a
``git worktree`` of an older commit) and, for checkouts that have it, ``radial_group_size``.

    python benchmarks/convolution_variants.py /path/to/checkout [GROUP_SIZE]
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, sys.argv[1])

import torch  # noqa: E402

from spinmultinet_ase.calculator import SpinMultiNetCalculator  # noqa: E402
from spinmultinet_ase.export import export_model  # noqa: E402
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered  # noqa: E402
from spinmultinet_ase.model import ModelConfig, SpinMultiNet  # noqa: E402

torch.set_num_threads(2)
extra = {"radial_group_size": int(sys.argv[2])} if len(sys.argv) > 2 else {}
config = ModelConfig(channels=32, spin_channels=16, lmax=2, num_layers=3, cutoff=5.0, **extra)
torch.manual_seed(0)
path = Path(tempfile.mkdtemp()) / "model.pt"
export_model(SpinMultiNet(config).to(torch.float32), path)
atoms = rocksalt_ordered("NiO", "AFM-II").repeat((5, 5, 5))
atoms.calc = SpinMultiNetCalculator(path)
atoms.get_forces()
times = []
for seed in range(3):
    atoms.rattle(0.01, seed=seed)
    start = time.perf_counter()
    atoms.get_forces()
    atoms.get_stress()
    times.append(time.perf_counter() - start)
print(f"{len(atoms)} atoms, {extra or 'e3nn uvu'}: {min(times):.3f} s per call")
