"""Inputs of the retrospective active-learning study on corundum (docs/corundum_learning.md).

From the first ``--frames`` labelled frames of the corundum reference data (file order), split
by the rules of ``--split-config`` (:func:`~spinmultinet_ase.train.dataset.split_of`):

- ``labelled_pool.extxyz``: those frames, labels included (where the rounds take DFT from);
- ``test.extxyz``: their test-split frames, labelled (the curve's errors);
- ``initial.extxyz``: the first ``--initial`` frames of the others, labelled (round 0 trains
  on them);
- ``pool.extxyz``: the rest of the others, without labels (what the rounds pick from);
- ``train.yaml``: ``--split-config`` with ``optim.max_epochs`` set to ``--epochs`` and
  ``output_dir`` to ``OUTPUT_DIR/member`` (the active-learning run sets it per member);
- ``disagreement.yaml``, ``random.yaml``, ``energy.yaml``: the three arms' active-learning
  configs (a committee of ``--committee`` members fine-tuned from ``--source``,
  ``--per-round`` picks per round, ``--rounds`` rounds; picks by the committee's force
  spread, at random, or by its energy spread per magnetic ion), output in ``OUTPUT_DIR/ARM``.

A file that exists with other content is refused (a run started on it would not resume):
choose another ``--output-dir``. Paths in the configs are as given (relative to where the
study runs, the repository root).

``collect`` copies each arm's (``--arms``, default all) ``curve.csv`` to
``DEST/ARM_curve.csv`` and writes its picks (``round_K/candidates.extxyz``) to
``DEST/ARM_picks.csv``.

Run (scripts/al_retrospective_corundum.sh runs the study):
    python scripts/al_retrospective_corundum.py inputs --output-dir runs/al_retro
    python scripts/al_retrospective_corundum.py collect runs/al_retro DEST
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml
from ase import Atoms
from ase.io import read, write

from spinmultinet_ase.outputs import atomic_path, write_text_atomic
from spinmultinet_ase.train.config import load_config
from spinmultinet_ase.train.dataset import split_of

# arm -> its settings of the active-learning config
ARMS = {
    "disagreement": {"selection": "disagreement"},
    "random": {"selection": "random"},
    "energy": {"selection": "disagreement", "score": "energy"},
}


def extxyz_text(frames: Sequence[Atoms]) -> str:
    """``frames`` as extxyz text (labels written where a frame has a calculator)."""
    stream = io.StringIO()
    write(stream, list(frames), format="extxyz")
    return stream.getvalue()


def unlabelled(atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` without its DFT results (its ``info`` kept)."""
    copy = atoms.copy()
    copy.calc = None
    return copy


def training_config_text(split_config: Path, epochs: int, output_dir: str) -> str:
    """``split_config``'s text with its ``max_epochs`` and top-level ``output_dir`` lines
    replaced (comments and order kept).

    Raises:
        ValueError: either line is not there exactly once.
    """
    text = split_config.read_text(encoding="utf-8")
    for pattern, value in (
        (r"^(\s+max_epochs: ).*$", str(epochs)),
        (r"^(output_dir: ).*$", output_dir),
    ):
        text, count = re.subn(pattern, lambda m, v=value: m.group(1) + v, text, flags=re.M)
        if count != 1:
            raise ValueError(f"{split_config}: expected one line matching {pattern!r}")
    return text


def study_files(args: argparse.Namespace) -> dict[str, str]:
    """The study's input files by name, as text."""
    out = args.output_dir
    frames = read(args.data, index=f":{args.frames}")
    if len(frames) < args.frames:
        raise ValueError(f"{args.data} holds {len(frames)} frames, fewer than {args.frames}")
    rules = load_config(args.split_config).data
    test = [a for a in frames if split_of(a, rules) == "test"]
    trainable = [a for a in frames if split_of(a, rules) != "test"]
    files = {
        "labelled_pool.extxyz": extxyz_text(frames),
        "test.extxyz": extxyz_text(test),
        "initial.extxyz": extxyz_text(trainable[: args.initial]),
        "pool.extxyz": extxyz_text([unlabelled(a) for a in trainable[args.initial :]]),
        "train.yaml": training_config_text(Path(args.split_config), args.epochs, f"{out}/member"),
    }
    for arm, settings in ARMS.items():
        arm_config = {
            "pool": f"{out}/pool.extxyz",
            "labelled_pool": f"{out}/labelled_pool.extxyz",
            "source": args.source,
            "committee_size": args.committee,
            "train_config": f"{out}/train.yaml",
            "initial_data": f"{out}/initial.extxyz",
            "test": f"{out}/test.extxyz",
            "per_round": args.per_round,
            "rounds": args.rounds,
            "min_distance": 0.1,
            **settings,
            "output_dir": f"{out}/{arm}",
        }
        files[f"{arm}.yaml"] = yaml.safe_dump(arm_config, sort_keys=False)
    return files


def picks_csv(run: Path) -> str:
    """The picks of every round of the active-learning run in ``run``, as CSV text."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["round", "structure_id", "material", "cell_name", "ordering", "atoms"])
    for path in sorted(run.glob("round_*/candidates.extxyz"), key=_round_number):
        for atoms in read(path, ":"):
            info = atoms.info
            row = [info["structure_id"], info.get("material"), info.get("cell_name")]
            writer.writerow([_round_number(path), *row, info.get("ordering"), len(atoms)])
    return text.getvalue()


def _round_number(candidates: Path) -> int:
    return int(candidates.parent.name.removeprefix("round_"))


def write_inputs(args: argparse.Namespace) -> None:
    """The ``inputs`` subcommand."""
    files = study_files(args)
    folder = Path(args.output_dir)
    for name, text in files.items():
        path = folder / name
        if path.is_file() and path.read_text(encoding="utf-8") != text:
            raise ValueError(
                f"{path} exists with other content (a run started on it would not resume); "
                "choose another --output-dir"
            )
    for name, text in files.items():
        write_text_atomic(folder / name, text)
    print(f"wrote {', '.join(files)} to {folder}")


def collect(args: argparse.Namespace) -> None:
    """The ``collect`` subcommand."""
    for arm in args.arms:
        run = Path(args.output_dir) / arm
        with atomic_path(Path(args.dest) / f"{arm}_curve.csv") as temporary:
            shutil.copyfile(run / "curve.csv", temporary)
        write_text_atomic(Path(args.dest) / f"{arm}_picks.csv", picks_csv(run))
    written = ", ".join(f"{arm}_curve.csv, {arm}_picks.csv" for arm in args.arms)
    print(f"wrote {written} to {args.dest}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(required=True)
    inputs = sub.add_parser("inputs", help="the study's data and configs")
    inputs.add_argument("--data", default="data/reference_Cr2O3_Fe2O3.extxyz")
    inputs.add_argument("--frames", type=int, default=45, help="first labelled frames used")
    inputs.add_argument("--split-config", default="configs/finetune_corundum.yaml")
    inputs.add_argument("--initial", type=int, default=4, help="frames round 0 trains on")
    inputs.add_argument("--epochs", type=int, default=150, help="epochs of every training")
    inputs.add_argument("--source", default="models/spinmultinet-mno-nio/model.pt")
    inputs.add_argument("--committee", type=int, default=2, help="members per committee")
    inputs.add_argument("--per-round", type=int, default=4, help="structures picked per round")
    inputs.add_argument("--rounds", type=int, default=3)
    inputs.add_argument("--output-dir", default="runs/al_retro")
    inputs.set_defaults(run=write_inputs)
    results = sub.add_parser("collect", help="the arms' curves and picks")
    results.add_argument("output_dir", help="the study's folder (inputs --output-dir)")
    results.add_argument("dest", help="folder of the collected files")
    results.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    results.set_defaults(run=collect)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"al_retrospective_corundum: error: {error}")


if __name__ == "__main__":
    main()
