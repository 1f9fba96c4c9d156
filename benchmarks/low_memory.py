"""Peak memory and time of an inference call: the shipped file, its re-export with the
normal path, and its re-export with the low-memory path, in one run.

Each measurement runs in its own process (peak RSS is per process): NiO AFM-II, ``n`` times
the conventional cell's primitive-vector supercell matrix (``n = 4``: 512 atoms), rattled,
float32, one thread. Memory is the peak RSS of the first energy + forces + stress call above
the RSS after loading the model; wall and CPU time are the medians of the calls after it (CPU
time, of the one-thread process, is what to compare on a loaded machine).

    python benchmarks/low_memory.py --repeats 4 8 --calls 3 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "spinmultinet-mno-nio" / "model.pt"
NORMAL_PATH = 2**62  # an edge count no graph reaches: the low-memory path is never taken


def measure(model: str, repeat: int, calls: int, low_memory_edges: int | None) -> dict:
    """One process's measurement (see the module docstring)."""
    from spinmultinet_ase.calculator import SpinMultiNetCalculator
    from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered

    torch.set_num_threads(1)
    matrix = np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]])
    atoms = rocksalt_ordered("NiO", "AFM-II", matrix=repeat * matrix)
    atoms.rattle(0.02, seed=0)
    calc = SpinMultiNetCalculator(model, dtype="float32")
    if low_memory_edges is not None:
        calc.model.module.low_memory_edges = low_memory_edges
    atoms.calc = calc
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rng = np.random.default_rng(1)
    times, cpu_times = [], []
    for _ in range(calls):
        start, cpu_start = time.perf_counter(), time.process_time()
        atoms.get_forces()
        atoms.get_stress()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        if not times[1:]:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
    return {
        "atoms": len(atoms),
        "peak_kB_per_atom": (peak - before) / len(atoms),
        "peak_MB": (peak - before) / 1024,
        "seconds": float(np.median(times[1:] or times)),
        "cpu_seconds": float(np.median(cpu_times[1:] or cpu_times)),
        "energy": float(atoms.get_potential_energy()),
    }


def reexported(directory: Path) -> Path:
    """The shipped model rebuilt from its config and weights with this checkout's code."""
    from spinmultinet_ase.export import reexport_model

    path = directory / "model.pt"
    reexport_model(SHIPPED, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per size")
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "REPEAT", "EDGES"))
    args = parser.parse_args()
    if args.worker:
        model, repeat, edges = args.worker
        low = None if edges == "file" else int(edges)
        print(json.dumps(measure(model, int(repeat), args.calls, low)))
        return
    path = reexported(Path(tempfile.mkdtemp()))
    variants = {
        "shipped file": (SHIPPED, "file"),
        "re-export, normal path": (path, str(NORMAL_PATH)),
        "re-export, low-memory path": (path, "0"),
    }
    for repeat in args.repeats:
        results: dict[str, list[dict]] = {name: [] for name in variants}
        for _ in range(args.rounds):  # interleaved, so that load changes hit all alike
            for name, (model, edges) in variants.items():
                command = [sys.executable, __file__, "--calls", str(args.calls)]
                command += ["--worker", str(model), str(repeat), edges]
                run = subprocess.run(command, check=True, capture_output=True, text=True)
                results[name].append(json.loads(run.stdout))
                print(f"{name:>28}: {run.stdout.strip()}", flush=True)
        first = results["shipped file"]
        for name, runs in results.items():
            seconds = [r["seconds"] / f["seconds"] for r, f in zip(runs, first, strict=True)]
            cpu = [r["cpu_seconds"] / f["cpu_seconds"] for r, f in zip(runs, first, strict=True)]
            memory = [r["peak_MB"] / f["peak_MB"] for r, f in zip(runs, first, strict=True)]
            print(
                f"{runs[0]['atoms']} atoms, {name}: median of the rounds' ratios to the shipped "
                f"file: time {np.median(seconds):.3f}, CPU time {np.median(cpu):.3f}, "
                f"peak memory {np.median(memory):.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
