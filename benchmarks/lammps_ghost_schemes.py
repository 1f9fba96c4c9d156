"""Time per MD step of pair_style spinmultinet: one rank against several, by ghost scheme.

For AFM-II NiO cells of the given sizes (cubic cells per edge: 4 -> 512 atoms, 8 -> 4096),
runs NVE with the shipped model (float32, one thread per rank) in LAMMPS on one rank (image
mode) and on several ranks with per-layer ghost exchange (the model re-exported with this
version, so it has its stage methods) and, for the sizes given to ``--whole``, with the
whole-model ghost scheme (the same file with ``stage_methods`` taken out of its metadata, as
in a file exported before the stage methods). The
runs of one size follow each other, so their ratios see the same machine load; the load average
is recorded, and each rank's CPU time per step (LAMMPS's "CPU use").

Usage: ``python benchmarks/lammps_ghost_schemes.py --edges 4 8 --steps 3 --whole 4
--output benchmarks/results/lammps_ghost_schemes.json``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spinmultinet_ase.export import METADATA_FILE, default_model_path, reexport_model
from spinmultinet_ase.lammps import (
    build_plugin,
    find_lammps,
    input_head,
    lammps_frame,
    seconds_per_step,
    write_spin_data,
)
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered

CONVENTIONAL = np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]])  # fcc primitive -> cubic cell
RUN = """velocity all create 300 4928459 mom yes rot yes
fix md all nve
timestep 0.002
thermo 5
run {warmup}
run {steps}
"""


def run(lammps, plugin: Path, model: Path, data: Path, ranks: int, steps: int, warmup: int):
    """Seconds per step of the timed run, the share of it a rank ran on a core (LAMMPS's "CPU
    use"), mean ghosts per rank, and the pair style's log line."""
    text = input_head(data, plugin, model, ["O", "Ni"]) + RUN.format(steps=steps, warmup=warmup)
    output = lammps.run(text, ranks)
    ghosts = re.findall(r"Nghost:\s+([0-9.e+-]+)", output)
    cpu_use = re.findall(r"([0-9.]+)% CPU use", output)
    scheme = [line for line in output.splitlines() if line.startswith("pair_style spinm")]
    return seconds_per_step(output), float(cpu_use[-1]) / 100, float(ghosts[-1]), scheme[-1]


def without_stages(source: Path, target: Path) -> None:
    """A copy of a model file whose metadata does not list its stage methods."""
    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(source), _extra_files=extra)
    metadata = json.loads(extra[METADATA_FILE])
    del metadata["stage_methods"]
    torch.jit.save(module, str(target), _extra_files={METADATA_FILE: json.dumps(metadata)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--edges", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument(
        "--whole", type=int, nargs="*", default=[], help="edges also run whole-model"
    )
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    lammps = find_lammps()
    plugin = build_plugin(lammps)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        staged, whole = Path(folder) / "staged.pt", Path(folder) / "whole.pt"
        reexport_model(default_model_path(), staged)
        without_stages(staged, whole)
        for edges in args.edges:
            atoms = rocksalt_ordered("NiO", "AFM-II", matrix=edges * CONVENTIONAL)
            atoms.rattle(0.02, seed=0)
            data = Path(folder) / f"nio_{len(atoms)}.data"
            write_spin_data(data, lammps_frame(atoms), ["O", "Ni"])
            runs = [("one rank", staged, 1), ("per-layer exchange", staged, args.ranks)]
            if edges in args.whole:
                runs.append(("whole-model ghosts", whole, args.ranks))
            for name, model, ranks in runs:
                load = os.getloadavg()[0]
                seconds, cpu_use, ghosts, scheme = run(
                    lammps, plugin, model, data, ranks, args.steps, args.warmup
                )
                row = dict(
                    atoms=len(atoms),
                    scheme=name,
                    ranks=ranks,
                    seconds_per_step=seconds,
                    cpu_seconds_per_step_per_rank=seconds * cpu_use,
                    ghosts_per_rank=ghosts,
                    load_before=load,
                    load_after=os.getloadavg()[0],
                    log=scheme,
                )
                print(json.dumps(row), flush=True)
                results.append(row)
    if args.output:
        record = dict(
            command="python benchmarks/lammps_ghost_schemes.py "
            + " ".join(
                f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in vars(args).items()
                if k not in ("output", "whole")
            )
            + (" --whole" if args.whole else ""),
            date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            machine=f"{platform.machine()}, {os.cpu_count()} cores",
            threads_per_rank=1,
            model="shipped spinmultinet-mno-nio, float32",
            results=results,
        )
        args.output.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
