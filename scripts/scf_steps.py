"""SCF steps of labelled frames, read from their GPAW text logs (no DFT is run).

A labeller's log (``spinmultinet_ase/dft/label.py``) holds, for FeO and CoO, the biased start
(its last step is not printed: the count is in the line "orbital bias ... released after K SCF
steps") and then the free SCF, which GPAW numbers from 1 again and closes with "Converged in
K steps" and "SCF loop duration: T s (t s/step)"; a run stopped or not converged ends with
its last ``|iter:`` line. Each frame of the given extxyz files is matched to the log
``{structure_id}.txt`` in the first log folder that has one; logs no frame names are listed
as "log only" (study runs). Rows are grouped by material, cell size, the log's mixer and the
verdict (accepted: in a labelled file with status ok; rejected: any other status).

Usage:
    python scripts/scf_steps.py data/reference*.extxyz --logs data/gpaw_logs [--each]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
from ase.formula import Formula
from ase.io import read

RELEASE = re.compile(r"orbital bias \S+ eV released after (\d+) SCF steps")
CONVERGED = re.compile(r"^Converged in (\d+) steps")
DURATION = re.compile(r"^SCF loop duration: ([\d.]+) s")
ITERATION = re.compile(r"^\|iter:\s*(\d+)\|")
ATOM_ROW = re.compile(r"^\|\s*\d+\s*\|\s*([A-Z][a-z]?)\s*\|")
MIXER_OPTION = re.compile(r"(name|beta|max_A)=([^,)]+)")


class Run(NamedTuple):
    """One GPAW run as its log shows it."""

    name: str
    material: str
    atoms: int
    mixer: str
    bias_steps: int
    free_steps: int
    converged: bool
    free_seconds: float


def read_log(path: Path) -> Run | None:
    """The run logged in ``path``, or None if the log has no atoms table (not begun)."""
    symbols: list[str] = []
    mixer = "default"
    bias_steps = free_steps = 0
    converged = False
    seconds = 0.0
    in_atoms = False
    last_iteration = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("  mixer="):
            options = dict(MIXER_OPTION.findall(line))
            mixer = " ".join(
                f"{key}={options[key]}" if key != "name" else options[key].strip("'")
                for key in ("name", "max_A", "beta")
                if key in options
            )
        elif line.startswith("Atoms  #") and not symbols:
            in_atoms = True
        elif in_atoms:
            match = ATOM_ROW.match(line)
            if match:
                symbols.append(match.group(1))
            elif symbols:
                in_atoms = False
        elif match := RELEASE.search(line):
            bias_steps = int(match.group(1))
            last_iteration = 0
        elif match := ITERATION.match(line):
            last_iteration = int(match.group(1))
        elif match := CONVERGED.match(line):
            free_steps += int(match.group(1))
            converged = True
            last_iteration = 0
        elif match := DURATION.match(line):
            seconds += float(match.group(1))
    if not symbols:
        return None
    if last_iteration:  # a free SCF that did not finish
        free_steps += last_iteration
        converged = False
    material = str(Formula("".join(symbols)).reduce()[0])
    return Run(path.stem, material, len(symbols), mixer, bias_steps, free_steps, converged, seconds)


def frame_verdicts(paths: list[Path]) -> dict[str, tuple[str, float | None]]:
    """Structure id -> (verdict, ``dft_wall_s``) of each frame in the labelled files."""
    verdicts = {}
    for path in paths:
        for atoms in read(path, index=":", format="extxyz"):
            status = atoms.info.get("dft_status", "")
            verdict = "accepted" if status == "ok" else "rejected"
            verdicts[str(atoms.info["structure_id"])] = (verdict, atoms.info.get("dft_wall_s"))
    return verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frames", nargs="*", type=Path, help="labelled extxyz files")
    parser.add_argument("--logs", nargs="+", type=Path, required=True, help="GPAW log folders")
    parser.add_argument("--each", action="store_true", help="one line per run as well")
    args = parser.parse_args(argv)
    for path in [*args.frames, *args.logs]:
        if not path.exists():
            print(f"scf_steps: no file or folder at {path}", file=sys.stderr)
            return 2
    verdicts = frame_verdicts(args.frames)
    runs: dict[str, tuple[Run, str, float | None]] = {}
    for folder in args.logs:
        for path in sorted(folder.glob("*.txt")):
            run = read_log(path)
            if run is None or run.name in runs:
                continue
            verdict, wall = verdicts.get(run.name, ("log only", None))
            runs[run.name] = (run, verdict, wall)
    missing = sorted(set(verdicts) - set(runs))
    groups: dict[tuple, list[tuple[Run, str, float | None]]] = {}
    for entry in runs.values():
        run, verdict, _ = entry
        groups.setdefault((run.material, run.atoms, run.mixer, verdict), []).append(entry)
    print(
        "| material | atoms | mixer | verdict | runs | bias steps | free steps median (max) "
        "| total median (max) | unconverged | s/step | wall min median (max) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(groups):
        entries = groups[key]
        done = [run for run, _, _ in entries]
        bias = [run.bias_steps for run in done]
        free = [run.free_steps for run in done]
        total = [run.bias_steps + run.free_steps for run in done]
        finished = [run for run in done if run.converged and run.free_seconds > 0]
        per_step = (
            f"{sum(r.free_seconds for r in finished) / sum(r.free_steps for r in finished):.1f}"
            if finished
            else "-"
        )
        walls = [wall / 60 for _, _, wall in entries if wall is not None]
        wall = f"{np.median(walls):.1f} ({max(walls):.1f})" if walls else "-"
        bias_range = f"{min(bias)}-{max(bias)}" if max(bias) else "0"
        print(
            f"| {' | '.join(map(str, key))} | {len(done)} | {bias_range} "
            f"| {np.median(free):.0f} ({max(free)}) | {np.median(total):.0f} ({max(total)}) "
            f"| {sum(not run.converged for run in done)} | {per_step} | {wall} |"
        )
    if args.each:
        print()
        for run, verdict, wall in sorted(runs.values(), key=lambda e: e[0].name):
            ended = "converged" if run.converged else "not converged"
            minutes = f", {wall / 60:.1f} min" if wall is not None else ""
            print(
                f"{run.name}: {run.material} {run.atoms} atoms, {run.mixer}, {verdict}: "
                f"{run.bias_steps} + {run.free_steps} steps, {ended}{minutes}"
            )
    if missing:
        print(f"\nno log for {len(missing)} frames: {', '.join(missing[:5])} ...")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
