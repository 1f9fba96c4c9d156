"""Time per atom of energy + forces + stress calls, all edges in one pass versus in chunks.

Each layer of SpinMultiNet runs its radial MLP and edge convolution over chunks of
``EDGE_CHUNK`` edges so that per-edge tensors stay in cache; this measures what that buys
at the benchmark's matched size (float32, 2 threads, NiO AFM-II supercells):

    python benchmarks/edge_chunks.py
"""

import tempfile
from pathlib import Path

import torch
from worker import nio_afm2, spinmultinet_model, time_calls

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.export import export_model
from spinmultinet_ase.nn.interaction import EDGE_CHUNK

ONE_PASS = 2**62

torch.set_num_threads(2)
for chunk in (ONE_PASS, EDGE_CHUNK):
    model = spinmultinet_model()
    for layer in model.layers:
        layer.edge_chunk = chunk
    path = Path(tempfile.mkdtemp()) / "model.pt"
    export_model(model, path)
    calc = SpinMultiNetCalculator(path, dtype="float32")
    label = "one pass" if chunk == ONE_PASS else f"chunks of {chunk}"
    for cells in (4, 6, 8):
        atoms = nio_afm2(cells)
        seconds = time_calls(calc, atoms, repeats=5)
        print(f"{label:>16}: {len(atoms):5d} atoms {1e3 * seconds / len(atoms):.2f} ms/atom")
