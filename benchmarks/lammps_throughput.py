"""MD throughput of the shipped model: LAMMPS (``pair_style spinmultinet``) against ASE.

For each size (NiO AFM-II, ``cells``³ conventional cubic cells, rattled as in the peer
benchmark) and precision, times the ASE calculator (one thread, one energy + forces + stress
call per MD step) and LAMMPS ``fix nve`` on 1 and 2 MPI ranks (one thread per rank), each in
its own process tree; records the peak resident memory summed over that tree's processes.
Writes ``benchmarks/results/lammps-<name>.json`` and ``.md``.

    python benchmarks/lammps_throughput.py --name cpu2 --cells 4 8 16 --steps 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from worker import nio_afm2  # noqa: E402

from spinmultinet_ase.export import default_model_path, export_model, load_model  # noqa: E402
from spinmultinet_ase.lammps import (  # noqa: E402
    build_plugin,
    find_lammps,
    input_head,
    lammps_frame,
    seconds_per_step,
    write_spin_data,
)
from spinmultinet_ase.model import model_from_state  # noqa: E402
from spinmultinet_ase.outputs import write_text_atomic  # noqa: E402
from spinmultinet_ase.provenance import machine  # noqa: E402

DTYPES = ("float32", "float64")

RUN = """\
velocity all create 300 4928459 mom yes rot yes
fix md all nve
timestep 0.001
thermo {steps}
run 1
run {steps} pre no post no
"""


def shipped_model_in(dtype: str, folder: Path) -> Path:
    """The shipped model exported in ``dtype`` into ``folder``."""
    loaded = load_model(default_model_path())
    model = model_from_state(loaded.metadata["model_config"], loaded.module.state_dict())
    path = folder / f"model-{dtype}.pt"
    export_model(model.to(getattr(torch, dtype)), path)
    return path


def ase_worker(cells: int, model: Path, steps: int) -> None:
    """In this process: time ``steps`` calculator calls after two warm-up calls (as many as
    LAMMPS's ``run 1`` makes: TorchScript optimises a model on its first calls); print JSON."""
    from spinmultinet_ase.calculator import SpinMultiNetCalculator

    torch.set_num_threads(1)
    atoms = nio_afm2(cells)
    atoms.calc = SpinMultiNetCalculator(str(model))
    loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for warm_up in range(2):
        atoms.rattle(1e-3, seed=1000 + warm_up)
        atoms.get_forces()
    start = time.perf_counter()
    for step in range(steps):
        atoms.rattle(1e-3, seed=step)
        atoms.get_forces()
        atoms.get_stress()
    seconds = (time.perf_counter() - start) / steps
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds_per_step": seconds, "peak_mb": peak_mb, "loaded_mb": loaded_mb}))


def _tree_rss_mb(root: int) -> float:
    """Resident memory (MB) of process ``root`` and all its descendants."""
    parents, rss_kb = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        rss_kb[int(entry.name)] = int(found.group(1)) if found else 0
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier += children
    return sum(rss_kb.get(pid, 0) for pid in tree) / 1024


def run_sampled(command: list[str], env: dict[str, str]) -> tuple[str, float]:
    """Run ``command``; its output and the peak RSS (MB) summed over its process tree."""
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        peak = 0.0
        while process.poll() is None:
            peak = max(peak, _tree_rss_mb(process.pid))
            time.sleep(0.5)
        out.seek(0)
        text = out.read()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{text[-3000:]}")
    return text, peak


def measure_ase(cells: int, model: Path, steps: int) -> dict:
    command = [sys.executable, __file__, "--ase-worker", str(cells), str(model), str(steps)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    text, peak = run_sampled(command, env)
    result = json.loads(text.strip().splitlines()[-1])
    return {"seconds_per_step": result["seconds_per_step"], "peak_mb": peak}


def measure_lammps(data: Path, model: Path, ranks: int, steps: int, folder: Path) -> dict:
    lammps = find_lammps()
    script = folder / "in.throughput"
    head = input_head(data, build_plugin(lammps), model, ["O", "Ni"])
    script.write_text(head + RUN.format(steps=steps))
    output, peak = run_sampled(lammps.command(script, ranks), lammps.environment(threads=1))
    return {"seconds_per_step": seconds_per_step(output), "peak_mb": peak}


def report(rows: list[dict], info: dict) -> str:
    lines = [
        f"# LAMMPS throughput: {info['name']}",
        "",
        f"Machine: {info['machine']['cpu']}, {info['machine']['platform']}, "
        f"load average {info['load_before']} before the run; one thread per process/rank.",
        f"Command: `{info['command']}`. Shipped model, NiO AFM-II rattled by 0.02 Å, "
        f"{info['steps']} timed steps after two warm-up calls.",
        "",
        "| atoms | precision | engine | s/step | atom-steps/s | vs ASE | vs 1 rank "
        "| peak memory (MB) | kB/atom |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        same = [r for r in rows if r["atoms"] == row["atoms"] and r["dtype"] == row["dtype"]]
        ase = next((r for r in same if r["engine"] == "ASE"), None)
        one = next((r for r in same if r["engine"] == "LAMMPS x1"), None)
        rate = row["atoms"] / row["seconds_per_step"]
        vs_ase = f"{ase['seconds_per_step'] / row['seconds_per_step']:.2f}×" if ase else "–"
        vs_one = (
            f"{one['seconds_per_step'] / row['seconds_per_step']:.2f}×"
            if one and row["engine"].startswith("LAMMPS")
            else "–"
        )
        lines.append(
            f"| {row['atoms']} | {row['dtype']} | {row['engine']} | "
            f"{row['seconds_per_step']:.4g} | {rate:.4g} | {vs_ase} | {vs_one} | "
            f"{row['peak_mb']:.0f} | {1024 * row['peak_mb'] / row['atoms']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--name", default="cpu")
    parser.add_argument("--cells", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    parser.add_argument("--skip-ase-above", type=int, default=None, metavar="ATOMS")
    parser.add_argument("--ase-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ase_worker:
        cells, model, steps = args.ase_worker
        ase_worker(int(cells), Path(model), int(steps))
        return
    info = {
        "name": args.name,
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "steps": args.steps,
    }
    rows = []
    out = HERE / "results" / f"lammps-{args.name}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = {dtype: shipped_model_in(dtype, folder) for dtype in args.dtypes}
        for cells in args.cells:
            atoms = lammps_frame(nio_afm2(cells))
            data = folder / f"nio-{cells}.data"
            write_spin_data(data, atoms, ["O", "Ni"])
            for dtype, model in models.items():
                engines = [f"LAMMPS x{ranks}" for ranks in args.ranks]
                if args.skip_ase_above is None or len(atoms) <= args.skip_ase_above:
                    engines.insert(0, "ASE")
                for engine in engines:
                    if engine == "ASE":
                        measured = measure_ase(cells, model, args.steps)
                    else:
                        ranks = int(engine.removeprefix("LAMMPS x"))
                        measured = measure_lammps(data, model, ranks, args.steps, folder)
                    row = {"atoms": len(atoms), "dtype": dtype, "engine": engine, **measured}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
                    write_text_atomic(out.with_suffix(".json"), json.dumps({**info, "rows": rows}))
    write_text_atomic(out.with_suffix(".md"), report(rows, info))
    print(report(rows, info))


if __name__ == "__main__":
    main()
