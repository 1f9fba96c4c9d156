"""torch.profiler table of one SpinMultiNet energy + forces + stress call at the benchmark's
matched size: the operators (grouped by input shape) that take the most time.

    python benchmarks/profile_call.py --cells 8 --threads 2 --rows 20
"""

import argparse

import torch
from torch.profiler import profile
from worker import WARMUP_CALLS, nio_afm2, spinmultinet

PROPERTIES = ["energy", "forces", "stress"]

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--cells", type=int, default=8, help="conventional cells per side")
parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--rows", type=int, default=20)
args = parser.parse_args()

torch.set_num_threads(args.threads)
calc = spinmultinet(args.dtype)
atoms = nio_afm2(args.cells)
for _ in range(WARMUP_CALLS):
    atoms.positions += 1e-3
    calc.calculate(atoms, PROPERTIES)
with profile(record_shapes=True) as profiler:
    atoms.positions += 1e-3
    calc.calculate(atoms, PROPERTIES)
events = profiler.key_averages(group_by_input_shape=True)
total = sum(e.self_cpu_time_total for e in events)
print(f"{len(atoms)} atoms, {args.dtype}, {args.threads} threads: {total / 1e6:.2f} s profiled")
for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.rows]:
    share = 100 * e.self_cpu_time_total / total
    print(f"{share:5.1f} %  {e.count:4d}×  {e.key:24s} {str(e.input_shapes)[:70]}")
