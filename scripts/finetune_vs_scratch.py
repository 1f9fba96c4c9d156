"""Fine-tuned against from scratch, at the same number of DFT frames of a new material.

For each frame count N, two models are trained on the first N training-split frames of the
new material's labelled data (file order): one from scratch with the base config, one
fine-tuned from a trained model (``init_from``) with the old data replayed
(``data.replay_paths``). Both are judged on the held-out (test-split) frames of the new
material and of the old data, per material: the new material shows what fine-tuning buys,
the old ones what it costs. The table is written as JSON and markdown, atomically. A run
whose ``model.pt`` exists is reused, so an interrupted study continues where it stopped.

Run (hours on a CPU; one training per row and column):
    python scripts/finetune_vs_scratch.py --new-data data/feo.extxyz \\
        --source models/spinmultinet-mno-nio/model.pt --replay data/reference.extxyz \\
        --config configs/default_mno_nio.yaml --frames 10 20 40 80 \\
        --output-dir runs/finetune_vs_scratch
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ase.io import write

from spinmultinet_ase.export import DTYPES, load_model
from spinmultinet_ase.outputs import atomic_path, write_text_atomic
from spinmultinet_ase.train.config import load_config
from spinmultinet_ase.train.dataset import Dataset, frame_to_sample, read_frames, split_of
from spinmultinet_ase.train.evaluate import errors_by_group, material_of
from spinmultinet_ase.train.trainer import Trainer

REPORTED = ("energy_mae", "forces_mae", "magmoms_mae")


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-data", required=True, help="labelled extxyz of the new material")
    parser.add_argument("--source", required=True, help="model file or checkpoint to fine-tune")
    parser.add_argument("--replay", nargs="+", required=True, help="labelled extxyz of old data")
    parser.add_argument("--config", required=True, help="base training config (YAML)")
    parser.add_argument("--frames", type=int, nargs="+", required=True, help="frame counts N")
    parser.add_argument("--replay-fraction", type=float, default=0.5)
    parser.add_argument("--max-epochs", type=int, default=None, help="epochs of every run")
    parser.add_argument("--output-dir", required=True, help="runs, table.json and table.md")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.frames):
        parser.error(f"--frames must be positive whole numbers, got {args.frames}")
    return args


def _held_out(path: str, data_config) -> list:
    config = dataclasses.replace(data_config, path=path)
    return [a for a in read_frames(config) if split_of(a, config) == "test"]


def _errors(model_path: Path, frames: list, data_config) -> dict[str, dict[str, float]]:
    """Test errors of the model per material (meV/atom, meV/Å, μB)."""
    loaded = load_model(model_path)
    dtype = DTYPES[loaded.metadata["dtype"]]
    result = {}
    for material in sorted({material_of(a) for a in frames}):
        subset = [a for a in frames if material_of(a) == material]
        samples = [
            frame_to_sample(a, data_config, loaded.species, loaded.cutoff, dtype, loaded.spin_mode)
            for a in subset
        ]
        summary = errors_by_group(loaded.module, Dataset(subset, samples))[0]
        result[material] = {k: summary[k] for k in REPORTED if k in summary}
    return result


def _train(config, output: Path) -> Path:
    if not (output / "model.pt").is_file():
        Trainer(
            dataclasses.replace(config, output_dir=str(output)), progress=False, overwrite=True
        ).run()
    return output / "model.pt"


def _markdown(rows: list[dict]) -> str:
    lines = [
        "| DFT frames | start | material | energy MAE (meV/atom) | force MAE (meV/Å) "
        "| moment MAE (μB) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        for start in ("scratch", "finetuned"):
            for material, errors in row[start].items():
                values = " | ".join(f"{errors.get(k, float('nan')):.4g}" for k in REPORTED)
                lines.append(f"| {row['frames']} | {start} | {material} | {values} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    base = load_config(args.config)
    if args.max_epochs is not None:
        base = dataclasses.replace(
            base, optim=dataclasses.replace(base.optim, max_epochs=args.max_epochs)
        )
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    new_config = dataclasses.replace(base.data, path=args.new_data)
    pool = [a for a in read_frames(new_config) if split_of(a, new_config) != "test"]
    held_out = _held_out(args.new_data, base.data)
    held_out += [a for path in args.replay for a in _held_out(path, base.data)]
    rows = []
    for count in args.frames:
        if count > len(pool):
            raise SystemExit(
                f"--frames {count}: only {len(pool)} training frames in {args.new_data}"
            )
        data = output / f"frames-{count}.extxyz"
        with atomic_path(data) as temporary:
            write(temporary, pool[:count], format="extxyz")
        # the base split rules: the subset holds no test frame, the replay keeps its own out
        training = dataclasses.replace(base.data, path=str(data))
        scratch = dataclasses.replace(base, data=training)
        finetuned = dataclasses.replace(
            base,
            init_from=args.source,
            data=dataclasses.replace(
                training, replay_paths=tuple(args.replay), replay_fraction=args.replay_fraction
            ),
        )
        rows.append(
            {
                "frames": count,
                "scratch": _errors(
                    _train(scratch, output / f"scratch-{count}"), held_out, base.data
                ),
                "finetuned": _errors(
                    _train(finetuned, output / f"finetuned-{count}"), held_out, base.data
                ),
            }
        )
        table = {
            "source": args.source,
            "new_data": args.new_data,
            "replay": args.replay,
            "rows": rows,
        }
        write_text_atomic(output / "table.json", json.dumps(table, indent=2))
        write_text_atomic(output / "table.md", _markdown(rows))
    print((output / "table.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
