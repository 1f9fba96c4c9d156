"""How well a committee's spread ranks its true error, on the test split of a labelled data set.

For a committee (models trained from different seeds and data orders on the same data), each
test frame is evaluated by ``SpinMultiNetCalculator([model, ...])`` and compared with its DFT
labels, per target:

* energy: |E − E_DFT| / N against ``energy_std`` / N (eV/atom), one point per frame;
* forces: |F_i − F_i,DFT| against √(Σ_c forces_std_ic²) (eV/Å), one point per atom;
* moments: |M_i − M_i,DFT| against √(Σ_c magmoms_std_ic²) (μB), one point per atom.

It reports Spearman's rank correlation ρ between spread and error (1: the spread orders the
errors perfectly), the ratio of RMS error to RMS spread (the factor that calibrates the
spread), and, in equal-count bins of the spread, the RMS error against the RMS spread: the
calibration plot, on which a calibrated spread lies on the diagonal. The split is the one the
models were trained with (the first model's recorded data config; hash-stable ids).

Writes ``calibration.json`` and ``calibration.png`` into the output folder, atomically.

Usage:
    python scripts/committee_calibration.py runs/seed*/model.pt --data data/reference.extxyz \
        --output-dir studies/committee
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from scipy.stats import spearmanr

from spinmultinet_ase import keys
from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.outputs import atomic_path, check_outputs, write_text_atomic
from spinmultinet_ase.train.dataset import SPLITS, frame_to_sample, read_frames, split_of
from spinmultinet_ase.train.evaluate import data_config_of

UNITS = {"energy": "eV/atom", "forces": "eV/Å", "magmoms": "μB"}
OUTPUTS = ("calibration.json", "calibration.png")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="committee_calibration.py",
        description="Rank correlation and calibration plot of a committee's spread against "
        "its true error on the test split of a labelled extxyz file.",
    )
    parser.add_argument("models", nargs="+", type=Path, help="two or more model files (.pt)")
    parser.add_argument("--data", type=Path, required=True, help="labelled extxyz file")
    parser.add_argument("--output-dir", type=Path, required=True, help="folder for the outputs")
    parser.add_argument(
        "--split", choices=[*SPLITS, "all"], default="test", help="frames to use (default test)"
    )
    parser.add_argument("--bins", type=int, default=10, help="spread bins of the plot")
    parser.add_argument("--dtype", choices=["float32", "float64"], default=None)
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    if len(args.models) < 2:
        parser.error("a committee needs at least two model files")
    if args.bins < 1:
        parser.error(f"--bins must be at least 1, got {args.bins}")
    return args


def _norm(values: np.ndarray) -> np.ndarray:
    """Per-atom size of (N,) or (N, 3) values."""
    return np.abs(values) if values.ndim == 1 else np.linalg.norm(values, axis=-1)


def frame_points(calc: SpinMultiNetCalculator, atoms: Atoms, sample: dict) -> dict:
    """(spread, error) arrays per target for one frame (see the module docstring)."""
    work = atoms.copy()
    work.set_initial_magnetic_moments(sample[keys.INITIAL_MAGMOMS].numpy())
    calc.calculate(work, ["energy", "forces", "magmoms"])
    results, n = calc.results, len(work)
    energy = float(sample[keys.TARGET_ENERGY][0])
    return {
        "energy": (
            np.array([results["energy_std"] / n]),
            np.array([abs(results["energy"] - energy) / n]),
        ),
        "forces": (
            _norm(results["forces_std"]),
            _norm(results["forces"] - sample[keys.TARGET_FORCES].numpy()),
        ),
        "magmoms": (
            _norm(results["magmoms_std"]),
            _norm(results["magmoms"] - sample[keys.TARGET_MAGMOMS].numpy()),
        ),
    }


def calibration(spread: np.ndarray, error: np.ndarray, bins: int) -> dict[str, Any]:
    """Spearman ρ, RMS error over RMS spread, and equal-count bins of the spread."""
    order = np.argsort(spread, kind="stable")
    rows = []
    for chunk in np.array_split(order, min(bins, len(order))):
        rows.append(
            {
                "points": int(chunk.size),
                "spread_rms": float(np.sqrt(np.mean(spread[chunk] ** 2))),
                "error_rms": float(np.sqrt(np.mean(error[chunk] ** 2))),
            }
        )
    rho, p_value = spearmanr(spread, error) if len(spread) > 2 else (float("nan"),) * 2
    spread_rms = float(np.sqrt(np.mean(spread**2)))
    return {
        "points": int(spread.size),
        "spearman_rho": float(rho),
        "spearman_p_value": float(p_value),
        "error_over_spread": float(np.sqrt(np.mean(error**2)) / spread_rms)
        if spread_rms > 0
        else None,
        "bins": rows,
    }


def plot(result: dict, path: Path) -> None:
    """RMS error against RMS spread per bin, one panel per target, diagonal for reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(UNITS), figsize=(5 * len(UNITS), 4.2))
    for ax, (target, unit) in zip(axes, UNITS.items(), strict=True):
        table = result["targets"][target]
        spread = [row["spread_rms"] for row in table["bins"]]
        error = [row["error_rms"] for row in table["bins"]]
        ax.plot(spread, error, "o-")
        positive = [v for v in spread + error if v > 0]
        if positive:
            low, high = min(positive), max(positive)
            ax.plot([low, high], [low, high], "k--", lw=0.8, label="calibrated")
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(f"RMS committee spread ({unit})")
        ax.set_ylabel(f"RMS error against DFT ({unit})")
        ax.set_title(f"{target}: Spearman ρ = {table['spearman_rho']:.2f}")
        ax.legend(loc="upper left")
    fig.suptitle(f"{result['members']}-model committee, {result['split']} split")
    fig.tight_layout()
    with atomic_path(path) as temporary:
        fig.savefig(temporary, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict:
    """The calibration of ``args.models`` on ``args.data``; writes the two outputs."""
    paths = [args.output_dir / name for name in OUTPUTS]
    check_outputs(paths, args.overwrite)
    calc = SpinMultiNetCalculator(args.models, dtype=args.dtype)
    config = data_config_of(calc.metadata, args.data)
    frames = [
        atoms
        for atoms in read_frames(config)
        if args.split == "all" or split_of(atoms, config) == args.split
    ]
    if not frames:
        raise ValueError(f"no frames of {args.data} are in the {args.split} split")
    points: dict[str, list] = {target: [] for target in UNITS}
    for atoms in frames:
        model = calc.model
        sample = frame_to_sample(
            atoms, config, model.species, model.cutoff, calc.dtype, model.spin_mode
        )
        for target, pair in frame_points(calc, atoms, sample).items():
            points[target].append(pair)
    result = {
        "models": calc.todict()["models"],
        "members": len(calc.models),
        "data": str(args.data),
        "split": args.split,
        "frames": len(frames),
        "spread": "population standard deviation over the members (ddof=0)",
        "units": UNITS,
        "targets": {
            target: calibration(
                np.concatenate([spread for spread, _ in pairs]),
                np.concatenate([error for _, error in pairs]),
                args.bins,
            )
            for target, pairs in points.items()
        },
    }
    write_text_atomic(paths[0], json.dumps(result, indent=2))
    plot(result, paths[1])
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"committee_calibration.py: error: {error}", file=sys.stderr)
        return 2
    for target, table in result["targets"].items():
        print(
            f"{target:<8} points {table['points']:>6}  Spearman ρ {table['spearman_rho']:6.3f}  "
            f"RMS error / RMS spread {table['error_over_spread']}"
        )
    print(f"wrote {', '.join(str(args.output_dir / name) for name in OUTPUTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
