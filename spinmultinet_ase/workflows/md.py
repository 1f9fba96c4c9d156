"""Molecular dynamics with ASE: NVE (velocity Verlet), NVT (Langevin), NPT (MTK).

The spin input stays fixed during the run (it is the user's initial guess); the predicted
moments are written to the trajectory with every frame. With a committee calculator each
frame's info also carries the members' spread (:mod:`~spinmultinet_ase.workflows.spread`):
``energy_std`` (eV) and ``max_force_std``, the largest per-atom force spread (eV/Å); the log
gets them as two more columns and the time series as two more lists. A spread that grows
during a run says the run has left the structures the members agree on.

One run's outputs are a set: the log, the trajectory and, in a summary folder, ``md.json``
(the summary with its time series) and ``md.png`` (:func:`plot_md`). The log and the trajectory
are written as the run goes, to ``NAME.partial.SUFFIX`` beside their final names
(``md.partial.log``, ``md.partial.traj``). When the run ends, every file of the previous set
is removed, the two partial files are renamed into place
(:func:`~spinmultinet_ase.outputs.partial_paths`) and the summary is written last, each file
atomically. A set is never mixed with a previous run's: a kill at any instant leaves the
previous set (or part of it) or part of the new one, and an ``md.json`` is there only beside
its own run's log and trajectory. A run that is interrupted (Ctrl-C, an error, a kill) before
it ends leaves the previous set untouched and its own frames so far, each complete, under the
partial names, to look at or throw away.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.io.trajectory import Trajectory
from ase.md.langevin import Langevin
from ase.md.logger import MDLogger
from ase.md.nose_hoover_chain import IsotropicMTKNPT
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet
from tqdm import tqdm

from spinmultinet_ase.data.graph import require_periodic
from spinmultinet_ase.outputs import atomic_path, partial_paths, write_text_atomic
from spinmultinet_ase.workflows.inputs import check_count, check_number
from spinmultinet_ase.workflows.spread import drop_spread, is_committee, spread_of

ENSEMBLES = ("nve", "nvt", "npt")
# The summary files of a run, in its summary folder (module docstring)
SUMMARY_FILES = ("md.json", "md.png")


@dataclass
class MDTrace:
    """A run sampled every ``interval`` steps: time (ps), energies per atom (eV), T (K), V (Å³)."""

    time_ps: list[float] = field(default_factory=list)
    total_energy_per_atom: list[float] = field(default_factory=list)
    potential_energy_per_atom: list[float] = field(default_factory=list)
    temperature_K: list[float] = field(default_factory=list)
    volume: list[float] = field(default_factory=list)
    # a committee's spread (None for one model): energy_std per atom (eV), max_force_std (eV/Å)
    energy_std_per_atom: list[float] | None = None
    max_force_std: list[float] | None = None


@dataclass
class MDSummary:
    """What a run did: energies in eV, drift in meV/atom/ps, temperature in K."""

    ensemble: str
    steps: int
    time_ps: float
    mean_temperature_K: float
    total_energy_start: float
    total_energy_end: float
    energy_drift_meV_per_atom_per_ps: float
    final_volume: float
    trace: MDTrace


class SpreadLogger(MDLogger):
    """ASE's MD log with a committee's spread as two more columns: the energy's (eV) and the
    largest per-atom force spread (eV/Å)."""

    def __init__(self, dyn, atoms: Atoms, logfile: TextIO) -> None:
        super().__init__(dyn, atoms, logfile, header=False)
        self.hdr += f" {'σE[eV]':>9} {'σFmax[eV/Å]':>12}"
        self.fmt = self.fmt.removesuffix("\n") + " %9.4f %12.4f\n"
        self.logfile.write(self.hdr + "\n")

    def __call__(self) -> None:
        epot = self.atoms.get_potential_energy()
        ekin = self.atoms.get_kinetic_energy()
        spread = spread_of(self.atoms)
        time = self.dyn.get_time() / (1000 * units.fs)
        row = (time, epot + ekin, epot, ekin, self.atoms.get_temperature())
        self.logfile.write(self.fmt % (*row, spread.energy_std, spread.max_force_std))
        self.logfile.flush()


def check_md_options(
    ensemble: str = "nve",
    temperature_K: float = 300.0,
    steps: int = 1000,
    timestep_fs: float = 1.0,
    friction_per_fs: float = 0.01,
    pressure_GPa: float = 0.0,
    interval: int = 10,
    seed: int = 0,
) -> None:
    """Check the options of :func:`run_md` (which calls this first) before any work.

    Raises:
        ValueError: one line naming the first option out of its physical range.
    """
    if ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {ENSEMBLES}, got {ensemble!r}")
    # the MTK barostat-thermostat divides by kT
    check_number(temperature_K, "the temperature (K)", 0.0, above=ensemble == "npt")
    check_count(steps, "the number of MD steps")
    check_number(timestep_fs, "the time step (fs)", 0.0, above=True)
    check_number(friction_per_fs, "the Langevin friction (1/fs)", 0.0, above=True)
    if check_number(pressure_GPa, "the pressure (GPa)") and ensemble != "npt":
        raise ValueError("a pressure acts only in NPT; use the npt ensemble or drop the pressure")
    check_count(interval, "the sampling interval (steps)")
    check_count(seed, "the seed", 0)
    if steps < interval:
        raise ValueError(
            f"{steps} steps sampled every {interval} give one sample, not enough for an energy "
            "drift; run at least as many steps as the interval, or sample more often"
        )


def run_md(
    atoms: Atoms,
    calc: Calculator,
    ensemble: str = "nve",
    temperature_K: float = 300.0,
    steps: int = 1000,
    timestep_fs: float = 1.0,
    friction_per_fs: float = 0.01,
    pressure_GPa: float = 0.0,
    trajectory: str | None = None,
    logfile: str | None = None,
    interval: int = 10,
    seed: int = 0,
    progress: bool = True,
    summary_dir: str | Path | None = None,
) -> MDSummary:
    """Run MD on ``atoms`` (changed in place) from Maxwell-Boltzmann velocities.

    ``trajectory`` and ``logfile`` (file paths, each optional) get a frame and a line every
    ``interval`` steps, and ``summary_dir`` (optional) the summary files
    :data:`SUMMARY_FILES`; they replace the previous run's set only when the run ends, and an
    interrupted run leaves its frames so far in ``NAME.partial.SUFFIX`` (module docstring).

    The drift is the slope of a straight-line fit of the total energy per atom against time
    (at least two samples: ``steps >= interval``); it measures integration error in NVE and is
    reported (not meaningful) for NVT/NPT.

    Raises:
        ValueError: an option out of its range (:func:`check_md_options`), or NPT for a
            structure that is not periodic.
    """
    check_md_options(
        ensemble, temperature_K, steps, timestep_fs, friction_per_fs, pressure_GPa, interval, seed
    )
    if ensemble == "npt":
        require_periodic(atoms, "NPT", "use NVE or NVT")
    atoms.calc = calc
    drop_spread(atoms)  # the frames carry this calculator's spread only
    committee = is_committee(calc)
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    Stationary(atoms)
    timestep = timestep_fs * units.fs
    if ensemble == "nve":
        dynamics = VelocityVerlet(atoms, timestep)
    elif ensemble == "nvt":
        dynamics = Langevin(
            atoms,
            timestep,
            temperature_K=temperature_K,
            friction=friction_per_fs / units.fs,
            fixcm=False,
            rng=rng,
        )
    else:
        dynamics = IsotropicMTKNPT(
            atoms,
            timestep,
            temperature_K=temperature_K,
            pressure_au=pressure_GPa * units.GPa,
            tdamp=100 * timestep,
            pdamp=1000 * timestep,
        )
    trace = MDTrace(**({"energy_std_per_atom": [], "max_force_std": []} if committee else {}))

    def record() -> None:
        trace.time_ps.append(dynamics.get_time() / (1000 * units.fs))
        trace.total_energy_per_atom.append(atoms.get_total_energy() / len(atoms))
        trace.potential_energy_per_atom.append(atoms.get_potential_energy() / len(atoms))
        trace.temperature_K.append(atoms.get_temperature())
        trace.volume.append(atoms.get_volume() if atoms.pbc.all() else float("nan"))
        if committee:
            spread = spread_of(atoms)
            trace.energy_std_per_atom.append(spread.energy_std / len(atoms))
            trace.max_force_std.append(spread.max_force_std)

    written = [path for path in (logfile, trajectory) if path]
    retired = [Path(summary_dir) / name for name in SUMMARY_FILES] if summary_dir else []
    # on leaving: files closed first, then the set renamed into place unless the run raised
    with partial_paths(written, retired) as partials, ExitStack() as files:
        partial = iter(partials)
        if logfile:
            log = files.enter_context(next(partial).open("w", encoding="utf-8"))
            logger = (SpreadLogger if committee else MDLogger)(dynamics, atoms, log)
            dynamics.attach(logger, interval=interval)
        if trajectory:
            frames = files.enter_context(next(partial).open("wb"))
            writer = Trajectory(frames, "w", atoms, properties=["energy", "forces", "magmoms"])
            dynamics.attach(lambda: _write_frame(writer, atoms), interval=interval)
        dynamics.attach(record, interval=interval)
        with tqdm(total=steps, desc=f"MD {ensemble}", disable=not progress) as bar:
            dynamics.attach(lambda: bar.update(min(interval, steps - bar.n)), interval=interval)
            dynamics.run(steps)
        if trajectory:
            # only now: closing a writer stopped mid-frame would append that frame half-done,
            # while the file alone, closed, holds every frame written whole
            writer.close()
    energies = trace.total_energy_per_atom
    slope = np.polyfit(trace.time_ps, energies, 1)[0]
    summary = MDSummary(
        ensemble=ensemble,
        steps=steps,
        time_ps=steps * timestep_fs / 1000,
        mean_temperature_K=float(np.mean(trace.temperature_K)),
        total_energy_start=energies[0] * len(atoms),
        total_energy_end=energies[-1] * len(atoms),
        energy_drift_meV_per_atom_per_ps=1000 * float(slope),
        final_volume=atoms.get_volume() if atoms.pbc.all() else float("nan"),
        trace=trace,
    )
    if summary_dir:
        _write_summary(summary, summary_dir)
    return summary


def _write_frame(writer: Trajectory, atoms: Atoms) -> None:
    """Write the current frame, with a committee's spread in its info (module docstring)."""
    spread = spread_of(atoms)
    if spread is None:
        writer.write()
        return
    atoms.info.update(energy_std=spread.energy_std, max_force_std=spread.max_force_std)
    try:
        writer.write()
    finally:
        del atoms.info["energy_std"], atoms.info["max_force_std"]


def plot_md(summary: MDSummary, path: str | Path) -> None:
    """Energies per atom (relative to the first frame, meV), temperature and, for NPT, volume."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trace = summary.trace
    panels = 3 if summary.ensemble == "npt" else 2
    fig, axes = plt.subplots(panels, 1, figsize=(6, 2.2 * panels), sharex=True)
    for name, values in (
        ("total", trace.total_energy_per_atom),
        ("potential", trace.potential_energy_per_atom),
    ):
        axes[0].plot(trace.time_ps, 1000 * (np.array(values) - values[0]), label=name)
    axes[0].set_ylabel("E − E(0) (meV/atom)")
    axes[0].legend(frameon=False)
    axes[0].set_title(
        f"{summary.ensemble.upper()}: drift {summary.energy_drift_meV_per_atom_per_ps:.3g} "
        "meV/atom/ps"
    )
    axes[1].plot(trace.time_ps, trace.temperature_K, "k-")
    axes[1].set_ylabel("T (K)")
    if panels == 3:
        axes[2].plot(trace.time_ps, trace.volume, "k-")
        axes[2].set_ylabel("V (Å³)")
    axes[-1].set_xlabel("time (ps)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _write_summary(summary: MDSummary, output_dir: str | Path) -> None:
    """:data:`SUMMARY_FILES` in ``output_dir``, each atomically: ``md.json`` (the summary with
    its time series; a committee's spread only with one) and ``md.png`` (:func:`plot_md`)."""
    output = Path(output_dir)
    record = asdict(summary)
    record["trace"] = {k: v for k, v in record["trace"].items() if v is not None}
    json_name, plot_name = SUMMARY_FILES
    write_text_atomic(output / json_name, json.dumps(record, indent=2))
    with atomic_path(output / plot_name) as temporary:
        plot_md(summary, temporary)
