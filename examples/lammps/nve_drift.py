"""NVE energy conservation of ``pair_style spinmultinet`` with the shipped model, against ASE.

A rattled AFM-II NiO supercell (moments fixed at their ±2 μB guesses: ``atom_style spin``
gives the model its input moments, and no spin dynamics runs) starts from Maxwell-Boltzmann
velocities and runs ``fix nve`` in LAMMPS on one MPI rank, and ASE's ``VelocityVerlet`` with the
ASE calculator from the same positions and velocities. Reported for each: the drift of the
total energy (slope of a straight-line fit, meV/atom/ps) and its largest excursion from the
start (meV/atom), and the difference between the two codes' total energies at the common steps
(at step 0 they must agree to 1e-6 eV/atom). Writes ``benchmarks/results/lammps_nve_drift.json``
of the checkout (atomically) with the machine and the command:
``python examples/lammps/nve_drift.py [--cells 2] [--steps 1000] [--ase-steps 500]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase import Atoms, units
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.export import default_model_path
from spinmultinet_ase.lammps import (
    LammpsInstall,
    build_plugin,
    find_lammps,
    input_head,
    lammps_frame,
    write_spin_data,
)
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.outputs import write_text_atomic
from spinmultinet_ase.provenance import machine

CONVENTIONAL = np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]])  # fcc primitive -> cubic cell
STEP0_TOLERANCE = 1e-6  # eV/atom, LAMMPS against ASE at the shared starting point
# Å/(ASE time unit) -> Å/ps (LAMMPS metal units)
VELOCITY_TO_METAL = 1000.0 * units.fs

RUN = """fix md all nve
timestep {timestep_ps!r}
thermo_style custom step temp pe ke etotal
thermo_modify format float %.12f
thermo {every}
run {steps}
"""


def starting_state(cells: int, temperature: float, seed: int) -> Atoms:
    """Rattled AFM-II NiO (``cells``³ cubic cells) in LAMMPS's frame, with velocities drawn at
    ``temperature`` K and no total momentum."""
    atoms = rocksalt_ordered("NiO", "AFM-II", matrix=cells * CONVENTIONAL)
    atoms.rattle(0.02, seed=seed)
    atoms = lammps_frame(atoms)
    thermalize_momenta(atoms, temperature, exact_temperature=True, rng=np.random.default_rng(seed))
    Stationary(atoms)
    return atoms


def write_data(path: Path, atoms: Atoms) -> None:
    """The LAMMPS data file of ``atoms`` with their velocities (Å/ps)."""
    write_spin_data(path, atoms, ["O", "Ni"])
    velocities = atoms.get_velocities() * VELOCITY_TO_METAL
    rows = (f"{i} {vx!r} {vy!r} {vz!r}" for i, (vx, vy, vz) in enumerate(velocities.tolist(), 1))
    with path.open("a") as data:
        data.write("\nVelocities\n\n" + "\n".join(rows) + "\n")


def run_lammps(
    lammps: LammpsInstall, atoms: Atoms, model: Path, steps: int, timestep_fs: float, every: int
) -> tuple[np.ndarray, np.ndarray, float, str]:
    """``fix nve`` on one rank: steps, total energies (eV), wall seconds and the input text."""
    plugin = build_plugin(lammps)
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "nio.data"
        write_data(data, atoms)
        text = input_head(data, plugin, model, ["O", "Ni"]) + RUN.format(
            timestep_ps=timestep_fs / 1000.0, every=every, steps=steps
        )
        start = time.perf_counter()
        output = lammps.run(text)
        seconds = time.perf_counter() - start
    table = output.split("Step ", 1)[1].split("Loop time", 1)[0]
    rows = np.array([[float(x) for x in line.split()] for line in table.splitlines()[1:] if line])
    return rows[:, 0].astype(int), rows[:, 4], seconds, text


def run_ase(
    atoms: Atoms, model: Path, steps: int, timestep_fs: float, every: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """VelocityVerlet with the ASE calculator: steps, total energies (eV), wall seconds."""
    atoms = atoms.copy()
    atoms.calc = SpinMultiNetCalculator(model)
    dynamics = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    recorded: list[tuple[int, float]] = []

    def record() -> None:
        recorded.append((dynamics.nsteps, atoms.get_total_energy()))

    dynamics.attach(record, interval=every)
    start = time.perf_counter()
    dynamics.run(steps)
    seconds = time.perf_counter() - start
    step, energy = np.array(recorded).T
    return step.astype(int), energy, seconds


def drift(times_ps: np.ndarray, energies_per_atom: np.ndarray) -> dict[str, float]:
    """Slope of a straight-line fit of the total energy per atom against time, and its largest
    distance from the starting value, both in meV/atom(/ps)."""
    slope = np.polyfit(times_ps, energies_per_atom, 1)[0]
    excursion = np.abs(energies_per_atom - energies_per_atom[0]).max()
    return {
        "drift_mev_per_atom_per_ps": 1000.0 * float(slope),
        "max_excursion_mev_per_atom": 1000.0 * float(excursion),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", type=int, default=2, help="cubic cells per edge (8 atoms)")
    parser.add_argument("--steps", type=int, default=1000, help="LAMMPS NVE steps")
    parser.add_argument("--ase-steps", type=int, default=500, help="ASE VelocityVerlet steps")
    parser.add_argument("--timestep-fs", type=float, default=1.0)
    parser.add_argument("--temperature", type=float, default=300.0, help="initial K")
    parser.add_argument("--every", type=int, default=5, help="steps between energy samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "benchmarks/results/lammps_nve_drift.json",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = default_model_path()
    atoms = starting_state(args.cells, args.temperature, args.seed)
    n = len(atoms)
    lammps = find_lammps()

    lmp_steps, lmp_energy, lmp_seconds, lammps_input = run_lammps(
        lammps, atoms, model, args.steps, args.timestep_fs, args.every
    )
    ase_steps, ase_energy, ase_seconds = run_ase(
        atoms, model, args.ase_steps, args.timestep_fs, args.every
    )
    common = min(len(lmp_steps), len(ase_steps))
    if not np.array_equal(lmp_steps[:common], ase_steps[:common]):
        raise RuntimeError("LAMMPS and ASE sampled different steps")
    difference = np.abs(lmp_energy[:common] - ase_energy[:common]) / n
    lammps_result = {
        "simulated_ps": args.steps * args.timestep_fs / 1000.0,
        "wall_seconds": lmp_seconds,
        **drift(lmp_steps * args.timestep_fs / 1000.0, lmp_energy / n),
        "steps": lmp_steps.tolist(),
        "total_energy_eV": lmp_energy.tolist(),
    }
    ase_result = {
        "simulated_ps": args.ase_steps * args.timestep_fs / 1000.0,
        "wall_seconds": ase_seconds,
        **drift(ase_steps * args.timestep_fs / 1000.0, ase_energy / n),
        "steps": ase_steps.tolist(),
        "total_energy_eV": ase_energy.tolist(),
    }
    result = {
        "info": {
            "command": shlex.join(["python", *sys.argv]),
            "machine": machine(),
            "threads": 1,
            "mpi_ranks": 1,
            "lammps": lammps.version,
            "torch": torch.__version__,
            "model": str(model),
            "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
            "system": f"AFM-II NiO, {n} atoms, rattled 0.02 Å, moments fixed at ±2 μB",
            "timestep_fs": args.timestep_fs,
            "initial_temperature_K": args.temperature,
            "lammps_input": lammps_input,
        },
        "lammps": lammps_result,
        "ase": ase_result,
        "lammps_minus_ase": {
            "step0_eV_per_atom": float(difference[0]),
            "max_eV_per_atom_first_steps": float(difference.max()),
            "compared_up_to_step": int(lmp_steps[common - 1]),
        },
    }
    write_text_atomic(args.output, json.dumps(result, indent=1) + "\n")
    for name, run in (("LAMMPS", lammps_result), ("ASE", ase_result)):
        print(
            f"{name:6}: {run['simulated_ps']:.3f} ps in {run['wall_seconds']:.0f} s, drift "
            f"{run['drift_mev_per_atom_per_ps']:+.4f} meV/atom/ps, max excursion "
            f"{run['max_excursion_mev_per_atom']:.4f} meV/atom"
        )
    print(
        f"|LAMMPS - ASE| total energy: {difference[0]:.2e} eV/atom at step 0, "
        f"{difference.max():.2e} eV/atom up to step {lmp_steps[common - 1]}; wrote {args.output}"
    )
    if difference[0] > STEP0_TOLERANCE:
        raise SystemExit(f"LAMMPS and ASE differ by more than {STEP0_TOLERANCE} eV/atom at step 0")


if __name__ == "__main__":
    main()
