"""Forward + backward time of the edge convolution alone, whole versus in edge chunks.

python benchmarks/convolution_chunks.py
"""

import time

import torch
from e3nn import o3

from spinmultinet_ase.nn.convolution import EDGE_CHUNK, EdgeConvolution

torch.set_num_threads(2)
irreps = o3.Irreps("0e+1o+2e")
conv = EdgeConvolution(irreps, o3.Irreps.spherical_harmonics(2), irreps, 32, 8)
for atoms in (512, 4096):
    edges = atoms * 56  # rocksalt NiO within 5 Å
    x = torch.randn(atoms, 32, 9, requires_grad=True)
    edge_sh = torch.randn(edges, 9, requires_grad=True)
    weights = torch.randn(edges, conv.weight_numel, requires_grad=True)
    centre = torch.arange(atoms).repeat_interleave(56)
    neighbour = (centre + torch.randint(-60, 60, (edges,))) % atoms
    for chunk in (edges, EDGE_CHUNK):
        conv.edge_chunk = chunk

        inputs = (x, edge_sh, weights, centre, neighbour)
        for repeat in range(4):  # the first one warms up
            if repeat == 1:
                start = time.perf_counter()
            out = conv(*inputs)
            torch.autograd.grad(out.pow(2).sum(), list(inputs[:3]))
        per_atom = (time.perf_counter() - start) / 3 / atoms * 1e6
        print(f"{atoms} atoms, chunk {chunk}: {per_atom:.0f} µs/atom")
