"""MD throughput of the example (512-atom AFM-II NiO, shipped model): ASE against LAMMPS.

Times energy + forces + stress per step with the ASE calculator (one thread), and the MD loop of
``in.nio_afm2`` (NVT, thermo every 5 steps, no dump) in LAMMPS on 1 and 2 MPI ranks, one
thread per rank. Run from this folder after ``python prepare.py``:
``python throughput.py [--steps 10] [--ranks 1 2]``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.lammps import build_plugin, find_lammps


def ase_seconds_per_step(steps: int) -> float:
    torch.set_num_threads(1)
    atoms = read_example_atoms()
    atoms.calc = SpinMultiNetCalculator("model.pt")
    atoms.get_forces()  # warm-up (TorchScript optimises on its first calls)
    atoms.rattle(1e-3)
    atoms.get_forces()
    start = time.perf_counter()
    for step in range(steps):
        atoms.rattle(1e-3, seed=step)
        atoms.get_forces()
        atoms.get_stress()
    return (time.perf_counter() - start) / steps


def read_example_atoms():
    """The example structure, rebuilt as prepare.py makes it (the data file has no symbols)."""
    from prepare import CONVENTIONAL

    from spinmultinet_ase.lammps import lammps_frame
    from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered

    atoms = rocksalt_ordered("NiO", "AFM-II", matrix=4 * CONVENTIONAL)
    atoms.rattle(0.02, seed=0)
    return lammps_frame(atoms)


def lammps_seconds_per_step(ranks: int, steps: int) -> float:
    lammps = find_lammps()
    plugin = build_plugin(lammps)
    script = Path("in.nio_afm2").read_text()
    script = re.sub(r"(?m)^dump .*$", "", script)
    script = re.sub(r"(?m)^run .*$", f"run 2\nrun {steps}", script)  # warm-up, then timed
    with tempfile.NamedTemporaryFile("w", suffix=".in", dir=".") as input_file:
        input_file.write(script)
        input_file.flush()
        command = [
            str(lammps.mpiexec),
            "-n",
            str(ranks),
            str(lammps.lmp),
            "-in",
            input_file.name,
            "-var",
            "plugin",
            str(plugin),
            "-log",
            "none",
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, check=True, env=lammps.environment()
        )
    loops = re.findall(r"Loop time of ([0-9.e+-]+) on \d+ procs for (\d+) steps", done.stdout)
    seconds, count = loops[-1]
    return float(seconds) / int(count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    atoms = 512
    per_step = ase_seconds_per_step(args.steps)
    print(f"ASE       : {per_step:8.3f} s/step  {atoms / per_step:8.1f} atom-steps/s")
    for ranks in args.ranks:
        per_step = lammps_seconds_per_step(ranks, args.steps)
        print(f"LAMMPS x{ranks} : {per_step:8.3f} s/step  {atoms / per_step:8.1f} atom-steps/s")


if __name__ == "__main__":
    main()
