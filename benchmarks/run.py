"""Benchmark SpinMultiNet against MACE, NequIP and CHGNet in one run on one machine.

For each potential and precision, one worker process per system size (so peak memory is
per size) times energy + forces + stress on NiO AFM-II supercells, then MD throughput at
one size. Writes ``benchmarks/results/<name>.json``, ``.md`` (tables with ratios against
each peer) and ``.png`` (time per call against atoms).

    bash benchmarks/setup_peers.sh ~/.cache/spinmultinet-bench      # once
    python benchmarks/run.py --envs ~/.cache/spinmultinet-bench --name cpu-2threads
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from spinmultinet_ase.provenance import machine

HERE = Path(__file__).parent
OVERHEAD_CELLS = 5  # 1000 atoms
MODES = ("calls", "md", "train", "overhead")
PEERS = {
    "spinmultinet": ("float32", "float64"),
    "mace": ("float32", "float64"),
    "nequip": ("float32", "float64"),
    "chgnet": ("float32",),
}


def _python(peer: str, envs: Path) -> str:
    return sys.executable if peer == "spinmultinet" else str(envs / peer / "bin" / "python")


def measure(
    peer: str, dtype: str, cells: int, mode: str, repeats: int, threads: int, envs: Path
) -> dict | None:
    command = [
        _python(peer, envs),
        str(HERE / "worker.py"),
        "--peer",
        peer,
        "--dtype",
        dtype,
        "--cells",
        str(cells),
        "--mode",
        mode,
        "--repeats",
        str(repeats),
        "--threads",
        str(threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        print(f"  {peer} {dtype} {cells}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    result = json.loads(lines[-1])
    print(f"  {peer:<12} {dtype} {result['atoms']:>5} atoms {mode}: {result['value']:.4g}")
    return result


def predicted_peak_mb(result: dict, atoms: int) -> float:
    """Peak memory at ``atoms`` atoms: the measured growth above the built model, scaled."""
    base = result["rss_after_build_mb"]
    return base + (result["peak_rss_mb"] - base) * atoms / result["atoms"]


def scaling_exponent(rows: list[dict], low: int, high: int) -> float | None:
    """Slope of log(time) against log(atoms) between ``low`` and ``high`` atoms."""
    points = [(r["atoms"], r["value"]) for r in rows if low <= r["atoms"] <= high]
    if len(points) < 2:
        return None
    atoms, times = np.log(np.array(points)).T
    return float(np.polyfit(atoms, times, 1)[0])


def _speedup_table(rows: list[dict], title: str, unit: str) -> list[str]:
    """A rate per potential with SpinMultiNet's speed-up over it at the same precision."""
    ours = {r["dtype"]: r["value"] for r in rows if r["peer"] == "spinmultinet"}
    lines = [
        "",
        f"## {title}",
        "",
        f"| potential | {unit} | SpinMultiNet speed-up (same precision) |",
        "|---|---|---|",
    ]
    for r in rows:
        ratio = ours.get(r["dtype"], float("nan")) / r["value"]
        lines.append(f"| {r['peer']} {r['dtype']} | {r['value']:.4g} | {ratio:.2f}× |")
    return lines


def _calls_table(calls: list[dict]) -> list[str]:
    """Seconds per call by size, the scaling exponent and the memory per atom."""
    sizes = sorted({r["atoms"] for r in calls})
    lines = [
        "",
        "## Time per energy + forces + stress call (s)",
        "",
        "| potential | "
        + " | ".join(f"{n} atoms" for n in sizes)
        + " | exponent 512→4096 | peak memory per atom (kB) |",
        "|---|" + "---|" * (len(sizes) + 2),
    ]
    for peer, dtype in [(p, d) for p, dtypes in PEERS.items() for d in dtypes]:
        rows = [r for r in calls if r["peer"] == peer and r["dtype"] == dtype]
        if not rows:
            continue
        by_size = {r["atoms"]: r for r in rows}
        cells = [f"{by_size[n]['value']:.4g}" if n in by_size else "–" for n in sizes]
        exponent = scaling_exponent(rows, 512, 4096)
        exponent_text = f"{exponent:.3f}" if exponent is not None else "–"
        big = max(rows, key=lambda r: r["atoms"])
        small = min(rows, key=lambda r: r["atoms"])
        extra_atoms = max(1, big["atoms"] - small["atoms"])
        per_atom = 1024 * (big["peak_rss_mb"] - small["peak_rss_mb"]) / extra_atoms
        lines.append(
            f"| {peer} {dtype} | " + " | ".join(cells) + f" | {exponent_text} | {per_atom:.1f} |"
        )
    return lines


def report(results: list[dict], info: dict) -> str:
    lines = [
        f"# Benchmark: {info['name']}",
        "",
        f"Machine: {info['machine']['cpu']}, {info['threads']} threads, "
        f"{info['machine']['platform']}, Python {info['machine']['python']}.",
        f"Command: `{info['command']}`",
    ]
    calls = [r for r in results if r["mode"] == "calls"]
    if calls:
        lines += _calls_table(calls)
    md = [r for r in results if r["mode"] == "md"]
    if md:
        title = f"MD throughput ({md[0]['atoms']} atoms, NVE)"
        lines += _speedup_table(md, title, "atom-steps/s")
    train = [r for r in results if r["mode"] == "train"]
    if train:
        title = "Training throughput (8-atom NiO cells, batches of 8, energy + force loss)"
        lines += _speedup_table(train, title, "structures/s")
    overhead = [r for r in results if r["mode"] == "overhead"]
    if overhead:
        lines += ["", f"## SpinMultiNet calculator overhead ({overhead[0]['atoms']} atoms)", ""]
        lines += [
            f"* {r['dtype']}: {100 * r['value']:.1f} % of a call outside the network "
            "(neighbour list, conversions, Python)"
            for r in overhead
        ]
    if info.get("skipped"):
        lines += ["", "Skipped for memory: " + ", ".join(info["skipped"]) + "."]
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for peer, dtypes in PEERS.items():
        for dtype in dtypes:
            rows = sorted(
                (r["atoms"], r["value"])
                for r in results
                if r["mode"] == "calls" and r["peer"] == peer and r["dtype"] == dtype
            )
            if rows:
                ax.loglog(
                    *zip(*rows, strict=True),
                    "o-" if dtype == "float32" else "s--",
                    label=f"{peer} {dtype}",
                )
    ax.set_xlabel("atoms")
    ax.set_ylabel("s per energy+forces+stress")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envs", type=Path, default=Path.home() / ".cache" / "spinmultinet-bench")
    parser.add_argument("--name", default="benchmark")
    parser.add_argument(
        "--cells",
        type=int,
        nargs="+",
        default=[2, 4, 6, 8],
        help="conventional cells per side: 8 n³ atoms (64, 512, 1728, 4096)",
    )
    parser.add_argument("--md-cells", type=int, default=4)
    parser.add_argument("--md-steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--peers", nargs="+", default=list(PEERS))
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=MODES,
        default=list(MODES),
        help="what to measure (default: all)",
    )
    parser.add_argument(
        "--max-memory-gb",
        type=float,
        default=18.0,
        help="skip sizes whose peak memory, extrapolated from the size below, exceeds this",
    )
    args = parser.parse_args()
    results, skipped = [], []
    runs = [(peer, dtype) for peer in args.peers for dtype in PEERS[peer]]
    # size-major, so that slow drifts of the machine's speed hit every potential alike
    previous: dict[tuple[str, str], dict] = {}
    for cells in args.cells if "calls" in args.modes else []:
        atoms = 8 * cells**3
        for peer, dtype in runs:
            last = previous.get((peer, dtype))
            if last and predicted_peak_mb(last, atoms) > 1024 * args.max_memory_gb:
                skipped.append(f"{peer} {dtype} {atoms} atoms")
                print(f"  {peer} {dtype} {atoms} atoms: skipped (memory)")
                continue
            repeats = 5 if cells <= 4 else 3
            result = measure(peer, dtype, cells, "calls", repeats, args.threads, args.envs)
            if result:
                previous[(peer, dtype)] = result
                results.append(result)
    for peer, dtype in runs:
        modes = [("md", args.md_cells, args.md_steps), ("train", 1, args.train_steps)]
        modes += [("overhead", OVERHEAD_CELLS, 5)] if peer == "spinmultinet" else []
        for mode, cells, repeats in (m for m in modes if m[0] in args.modes):
            result = measure(peer, dtype, cells, mode, repeats, args.threads, args.envs)
            if result:
                results.append(result)
    info = {
        "name": args.name,
        "skipped": skipped,
        "machine": machine(),
        "threads": args.threads,
        "command": "python " + " ".join(sys.argv),
    }
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps({"info": info, "results": results}, indent=1))
    (out / f"{args.name}.md").write_text(report(results, info))
    if "calls" in args.modes:
        plot(results, out / f"{args.name}.png")
    print((out / f"{args.name}.md").read_text())


if __name__ == "__main__":
    main()
