"""Fine-tuned against from scratch, at the same number of DFT frames of a new material.

For each frame count N, two models are trained on the first N frames outside the test split
(training and validation) of the new material's labelled data (file order): one from scratch
with the base config (its ``init_from`` and replay ignored), one
fine-tuned from a trained model (``init_from``) with the old data replayed
(``data.replay_paths``). Both arms know the base config's species and, appended in order of
atomic number, the elements of the new and old data it lacks (as fine-tuning appends them
to the source's). Both are judged per material on the held-out (test-split) frames of the
new material (by the base config's split rules) and of the old data (each file by the rules
the fine-tuned arm replays it by: the source's, or those the source recorded for a file it
replayed itself; they keep its test frames out of the replay too): the new material
shows what fine-tuning buys, the old ones what it costs.

With ``--seeds``, every frame count and arm is trained once per seed (the training ``seed``:
the start of the weights, for the fine-tuned arm those of the added elements, and the order
of the data and of the replayed frames; the N frames and their split stay the same). The run
of the base config's own seed keeps the folder it has without ``--seeds`` (``scratch-40``),
another seed's gets the seed appended (``scratch-40-seed1``). The table gives per frame
count, arm and material the mean of each error over the seeds, its smallest and largest
value, and (in JSON) every seed's; with one seed its markdown lists the values alone. It is
written as JSON and markdown, atomically, after each frame count.

Each run's inputs (its config, the sha256 of its N frames, N, and the sha256 of the source
model and of the replayed files; files count by content, not path) are recorded beside its
folder in ``RUN.inputs.json``. A rerun reuses a finished run, resumes a killed one from its
last checkpoint, and refuses (one line) a run whose recorded inputs differ from this
invocation's: choose another ``--output-dir``.

Run (hours on a CPU; one training per frame count, arm and seed):
    python scripts/finetune_vs_scratch.py --new-data data/reference_Cr2O3_Fe2O3.extxyz \\
        --source models/spinmultinet-mno-nio/model.pt --replay data/reference.extxyz \\
        --config configs/finetune_study_corundum.yaml --frames 10 20 40 80 --seeds 0 1 2 \\
        --output-dir runs/finetune_vs_scratch
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.data import atomic_numbers
from ase.io import write

from spinmultinet_ase.export import DTYPES, load_model
from spinmultinet_ase.outputs import write_text_atomic
from spinmultinet_ase.train.config import DataConfig, TrainConfig, load_config
from spinmultinet_ase.train.dataset import Dataset, frame_to_sample, read_frames, split_of
from spinmultinet_ase.train.evaluate import errors_by_group, material_of
from spinmultinet_ase.train.finetune import load_source
from spinmultinet_ase.train.replay import replay_split_rules, split_by
from spinmultinet_ase.train.trainer import Trainer

REPORTED = ("energy_mae", "forces_mae", "magmoms_mae")
ARMS = ("scratch", "finetuned")


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-data", required=True, help="labelled extxyz of the new material")
    parser.add_argument("--source", required=True, help="model file or checkpoint to fine-tune")
    parser.add_argument("--replay", nargs="+", required=True, help="labelled extxyz of old data")
    parser.add_argument("--config", required=True, help="base training config (YAML)")
    parser.add_argument("--frames", type=int, nargs="+", required=True, help="frame counts N")
    parser.add_argument("--replay-fraction", type=float, default=0.5)
    parser.add_argument("--max-epochs", type=int, default=None, help="epochs of every run")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="training seeds (default: the config's)"
    )
    parser.add_argument("--output-dir", required=True, help="runs, table.json and table.md")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.frames):
        parser.error(f"--frames must be positive whole numbers, got {args.frames}")
    if args.seeds is not None and (
        any(s < 0 for s in args.seeds) or len(set(args.seeds)) < len(args.seeds)
    ):
        parser.error(f"--seeds must be distinct whole numbers >= 0, got {args.seeds}")
    return args


def with_species(config: TrainConfig, frames: Sequence[Atoms]) -> TrainConfig:
    """``config`` with the elements of ``frames`` that ``model.species`` lacks appended, in
    order of atomic number."""
    known = config.model.species
    present = {symbol for atoms in frames for symbol in atoms.get_chemical_symbols()}
    added = tuple(sorted(present - set(known), key=atomic_numbers.__getitem__))
    return dataclasses.replace(
        config, model=dataclasses.replace(config.model, species=known + added)
    )


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_inputs(config: TrainConfig, frames_text: str, count: int) -> dict[str, Any]:
    """What a run's model depends on: its config (less where it is written, the paths of its
    files and the materials evaluation reports), the sha256 of its training frames (extxyz
    text), their number, and the sha256 of its source model and replayed files."""
    values = config.to_dict()
    for section, key in (("data", "path"), ("data", "replay_paths"), ("data", "materials")):
        del values[section][key]
    for key in ("output_dir", "init_from"):
        del values[key]
    inputs = {
        "config": values,
        "data_sha256": hashlib.sha256(frames_text.encode()).hexdigest(),
        "frames": count,
        "source_sha256": _sha256(config.init_from) if config.init_from else None,
        "replay_sha256": [_sha256(path) for path in config.data.replay_paths],
    }
    return json.loads(json.dumps(inputs))  # as read back from the record


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted names of the entries in which two nested mappings differ."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [prefix]
    names = []
    for key in sorted(set(old) | set(new)):
        names += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
    return [name.rstrip(".") for name in names]


def _record_of(run: Path) -> Path:
    # beside the run folder: a folder holding anything but a run is refused by Trainer
    return run.with_name(f"{run.name}.inputs.json")


def check_reusable(run: Path, inputs: dict[str, Any]) -> None:
    """Raise ValueError (one line) unless ``run`` is new or was started with ``inputs``."""
    record = _record_of(run)
    if record.is_file():
        changed = _differences(json.loads(record.read_text(encoding="utf-8")), inputs)
        if changed:
            raise ValueError(
                f"{run} was trained with other inputs ({', '.join(changed)} differ, see "
                f"{record.name}); rerun with the same inputs or choose another --output-dir"
            )
    elif run.is_dir() and any(run.iterdir()):
        raise ValueError(
            f"{run} holds a run without a record of its inputs ({record.name}); delete it or "
            "choose another --output-dir"
        )


def _train(config: TrainConfig, inputs: dict[str, Any], run: Path) -> Path:
    """The model of ``run``: reused if finished, else trained, resuming a killed run."""
    record = _record_of(run)
    if not record.is_file():
        write_text_atomic(record, json.dumps(inputs, indent=2))
    if not (run / "model.pt").is_file():
        config = dataclasses.replace(config, output_dir=str(run))
        Trainer(config, resume=True, progress=False).run()
    return run / "model.pt"


def run_folder(output: Path, arm: str, count: int, seed: int, base_seed: int) -> Path:
    """The folder of one run: ``scratch-40`` for the base config's seed, ``scratch-40-seed1``
    for another (here 1)."""
    name = f"{arm}-{count}" if seed == base_seed else f"{arm}-{count}-seed{seed}"
    return output / name


def _errors(model_path: Path, frames: list[Atoms], data_config: DataConfig) -> dict[str, dict]:
    """Per material: the number of frames and the model's errors on them (meV/atom, meV/Å,
    μB)."""
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
        result[material] = {"frames": len(subset), **{k: summary[k] for k in REPORTED}}
    return result


def over_seeds(errors: dict[int, dict[str, dict]]) -> dict[str, dict]:
    """Per material, from each seed's errors (as :func:`_errors` gives them): the number of
    test frames, the mean of each error over the seeds, its ``min`` and ``max``, and each
    seed's values (``by_seed``, keyed by the seed as text)."""
    result = {}
    for material, first in next(iter(errors.values())).items():
        values = {k: [e[material][k] for e in errors.values()] for k in REPORTED}
        result[material] = {
            "frames": first["frames"],
            **{k: statistics.fmean(v) for k, v in values.items()},
            "min": {k: min(v) for k, v in values.items()},
            "max": {k: max(v) for k, v in values.items()},
            "by_seed": {
                str(seed): {k: by_material[material][k] for k in REPORTED}
                for seed, by_material in errors.items()
            },
        }
    return result


def markdown(rows: list[dict]) -> str:
    """The table's rows as markdown, one line per frame count, arm and material; with more
    than one seed, each error as its mean over the seeds (smallest–largest)."""
    several = any(len(row["seeds"]) > 1 for row in rows)
    seeds_column = ("| seeds ", "|---") if several else ("", "")
    lines = [
        f"| DFT frames | start | material | test frames {seeds_column[0]}"
        "| energy MAE (meV/atom) | force MAE (meV/Å) | moment MAE (μB) |",
        f"|---|---|---|---{seeds_column[1]}|---|---|---|",
    ]
    for row in rows:
        for arm in ARMS:
            for material, errors in row[arm].items():
                cells = [str(row["frames"]), arm, material, str(errors["frames"])]
                if several:
                    cells.append(str(len(row["seeds"])))
                for k in REPORTED:
                    spread = f" ({errors['min'][k]:.4g}–{errors['max'][k]:.4g})"
                    cells.append(f"{errors[k]:.4g}" + (spread if several else ""))
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare(
    base: TrainConfig,
    new_data: str,
    source: str,
    replay: Sequence[str],
    frames: Sequence[int],
    replay_fraction: float,
    output: Path,
    seeds: Sequence[int] = (),
) -> dict[str, Any]:
    """Train (or reuse) both arms at every frame count with every seed (none given: the base
    config's) and write ``table.json`` and ``table.md`` into ``output`` after each count; the
    table.

    Raises:
        ValueError: a count exceeds the new material's training frames, the source records
            no split rules, or a run in ``output`` was started with other inputs (one line).
    """
    new = read_frames(dataclasses.replace(base.data, path=new_data))
    pool = [a for a in new if split_of(a, base.data) != "test"]
    too_many = [n for n in frames if n > len(pool)]
    if too_many:
        raise ValueError(f"--frames {too_many[0]}: only {len(pool)} training frames in {new_data}")
    # the old data split as the fine-tuned arm's replay splits it, file by file
    replayed = dataclasses.replace(
        base.data, replay_paths=tuple(replay), replay_fraction=replay_fraction
    )
    old = []
    for record in replay_split_rules(replayed, load_source(source)):
        rules = split_by(dataclasses.replace(base.data, path=record["path"]), record["rules"])
        old.append((rules, read_frames(rules)))
    held_out = [a for a in new if split_of(a, base.data) == "test"]
    held_out += [a for rules, frames in old for a in frames if split_of(a, rules) == "test"]
    base = with_species(base, new + [a for _, frames in old for a in frames])
    seeds = tuple(seeds) or (base.seed,)
    output.mkdir(parents=True, exist_ok=True)
    rows = []
    for count in frames:
        text = io.StringIO()
        write(text, pool[:count], format="extxyz")
        data = output / f"frames-{count}.extxyz"
        # the base split rules: the subset holds no test frame, the replay keeps its own out
        training = dataclasses.replace(
            base.data, path=str(data), replay_paths=(), replay_fraction=0.0
        )
        arms = {
            "scratch": dataclasses.replace(base, init_from="", data=training),
            "finetuned": dataclasses.replace(
                base,
                init_from=source,
                data=dataclasses.replace(
                    training, replay_paths=tuple(replay), replay_fraction=replay_fraction
                ),
            ),
        }
        runs = [(seed, arm) for seed in seeds for arm in ARMS]
        configs = {(s, a): dataclasses.replace(arms[a], seed=s) for s, a in runs}
        inputs = {run: run_inputs(configs[run], text.getvalue(), count) for run in runs}
        folders = {(s, a): run_folder(output, a, count, s, base.seed) for s, a in runs}
        for run in runs:
            check_reusable(folders[run], inputs[run])
        write_text_atomic(data, text.getvalue())
        errors = {
            run: _errors(_train(configs[run], inputs[run], folders[run]), held_out, base.data)
            for run in runs
        }
        row: dict[str, Any] = {"frames": count, "seeds": list(seeds)}
        for arm in ARMS:
            row[arm] = over_seeds({seed: errors[seed, arm] for seed in seeds})
        rows.append(row)
        table = {
            "source": source,
            "new_data": new_data,
            "replay": list(replay),
            "species": list(base.model.species),
            "rows": rows,
        }
        write_text_atomic(output / "table.json", json.dumps(table, indent=2))
        write_text_atomic(output / "table.md", markdown(rows))
    return table


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    base = load_config(args.config)
    if args.max_epochs is not None:
        base = dataclasses.replace(
            base, optim=dataclasses.replace(base.optim, max_epochs=args.max_epochs)
        )
    try:
        table = compare(
            base,
            args.new_data,
            args.source,
            args.replay,
            args.frames,
            args.replay_fraction,
            Path(args.output_dir),
            args.seeds or (),
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"finetune_vs_scratch: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(markdown(table["rows"]), end="")


if __name__ == "__main__":
    main()
