"""Call time of a model with a larger species set against the shipped model, in one run.

The reference is the shipped model; the candidate is another model file, or (``--species``)
the shipped architecture with that species set and random weights, which isolates what the
species count alone costs. Both time energy + forces + stress on the same NiO AFM-II cells,
calls alternating between the two so that load drifts hit both alike; the row is the median
of the per-pair ratios. Writes ``benchmarks/results/species-<name>.json`` and ``.md``.

    python benchmarks/species_speed.py --name cpu2 --species O Cr Mn Fe Co Ni --cells 2 4
    python benchmarks/species_speed.py --name cpu2-new --candidate models/NEW/model.pt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from worker import nio_afm2  # noqa: E402

from spinmultinet_ase.calculator import SpinMultiNetCalculator  # noqa: E402
from spinmultinet_ase.export import default_model_path, export_model, load_model  # noqa: E402
from spinmultinet_ase.model import ModelConfig, SpinMultiNet  # noqa: E402
from spinmultinet_ase.outputs import write_text_atomic  # noqa: E402
from spinmultinet_ase.provenance import machine  # noqa: E402


def with_species(reference: Path, species: list[str], folder: Path) -> Path:
    """The architecture of ``reference`` with ``species``, random weights, exported."""
    loaded = load_model(reference)
    config = dict(loaded.metadata["model_config"], species=species)
    torch.manual_seed(0)
    dtype = getattr(torch, loaded.metadata["dtype"])
    model = SpinMultiNet(ModelConfig.from_dict(config)).to(dtype)
    path = folder / "candidate.pt"
    export_model(model, path)
    return path


def seconds_per_call(calc: SpinMultiNetCalculator, cells: int, seed: int) -> float:
    """One energy + forces + stress call on a freshly rattled NiO AFM-II cell."""
    atoms = nio_afm2(cells)
    atoms.rattle(1e-3, seed=seed)
    atoms.calc = calc
    start = time.perf_counter()
    atoms.get_forces()
    atoms.get_stress()
    return time.perf_counter() - start


def compare(reference: Path, candidate: Path, cells: int, repeats: int) -> dict:
    """Median seconds per call of both models and the median ratio candidate / reference."""
    calcs = {
        "reference": SpinMultiNetCalculator(reference),
        "candidate": SpinMultiNetCalculator(candidate),
    }
    for calc in calcs.values():
        for warm_up in range(2):
            seconds_per_call(calc, cells, 1000 + warm_up)
    times: dict[str, list[float]] = {"reference": [], "candidate": []}
    for repeat in range(repeats):
        order = ("reference", "candidate") if repeat % 2 == 0 else ("candidate", "reference")
        for which in order:
            times[which].append(seconds_per_call(calcs[which], cells, repeat))
    ratios = np.array(times["candidate"]) / np.array(times["reference"])
    return {
        "atoms": len(nio_afm2(cells)),
        "reference_s": float(np.median(times["reference"])),
        "candidate_s": float(np.median(times["candidate"])),
        "ratio": float(np.median(ratios)),
        "ratio_spread": [float(ratios.min()), float(ratios.max())],
    }


def markdown(result: dict) -> str:
    lines = [
        f"# Species-set call time: {result['name']}",
        "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['platform']}, load average "
        f"{result['load_before']} before the run; {result['threads']} thread(s).",
        f"Command: `{result['command']}`.",
        f"Reference: {result['reference']}. Candidate: {result['candidate']}.",
        "Energy + forces + stress per call, NiO AFM-II rattled; calls alternate between the "
        f"models, {result['repeats']} pairs after two warm-up calls each; medians.",
        "",
        "| atoms | reference s/call | candidate s/call | candidate ÷ reference (range) |",
        "|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        low, high = row["ratio_spread"]
        lines.append(
            f"| {row['atoms']} | {row['reference_s']:.4g} | {row['candidate_s']:.4g} | "
            f"{row['ratio']:.3f} ({low:.2f}–{high:.2f}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="results name (species-NAME.json/.md)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--candidate", type=Path, help="a model file to compare")
    which.add_argument("--species", nargs="+", help="the shipped architecture with these species")
    parser.add_argument("--reference", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--cells", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    reference = args.reference or default_model_path()
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as folder:
        if args.species:
            candidate = with_species(reference, args.species, Path(folder))
            described = f"the reference's architecture with species {' '.join(args.species)}"
        else:
            candidate = args.candidate
            described = os.path.relpath(candidate)
        rows = [compare(reference, candidate, cells, args.repeats) for cells in args.cells]
    result = {
        "name": args.name,
        "machine": machine(),
        "load_before": load_before,
        "threads": args.threads,
        "command": "python benchmarks/species_speed.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "reference": os.path.relpath(reference),
        "candidate": described,
        "repeats": args.repeats,
        "rows": rows,
    }
    out = HERE / "results" / f"species-{args.name}"
    write_text_atomic(out.with_suffix(".json"), json.dumps(result, indent=1) + "\n")
    write_text_atomic(out.with_suffix(".md"), markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
