"""The data steps of ``scripts/train_default_model.sh``: where a default model's run, frozen
data and shipped folder are, the frozen copy of its labelled files, the test frames labelled
since, and the baseline model (its card, metrics and model file) its card is compared with.

``python -m spinmultinet_ase.reference.default_model {paths,freeze,add-test-frames} CONFIG``,
``... keep-baseline SOURCE_DIR TARGET_DIR``; a user error (a missing data file, a bad config
or baseline) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from ase.io import read, write

from spinmultinet_ase.outputs import atomic_path
from spinmultinet_ase.reference.baseline import read_baseline
from spinmultinet_ase.train.config import DataConfig, TrainConfig, load_config
from spinmultinet_ase.train.dataset import add_test_frames, read_frames


def model_dir(config_path: str | Path) -> Path:
    """Where the model of a default-model config is shipped: ``configs/default_mno_nio.yaml``
    -> ``models/spinmultinet-mno-nio``."""
    stem = Path(config_path).stem.removeprefix("default_")
    return Path("models") / f"spinmultinet-{stem.replace('_', '-')}"


def snapshot_path(config: TrainConfig) -> Path:
    """The frozen copy of the labelled data that every run of a batch trains on: next to the
    data file for one file (``data/reference.training.extxyz``), next to the run folder for
    several (``runs/default_oxides.training.extxyz``)."""
    paths = config.data.paths
    if len(paths) == 1:
        return Path(paths[0]).with_suffix(".training.extxyz")
    return Path(f"{config.output_dir.rstrip('/')}.training.extxyz")


def check_data_files(data: DataConfig) -> None:
    """Raise a FileNotFoundError naming every file of ``data.path`` that does not exist."""
    missing = [path for path in data.paths if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(
            f"data.path names {len(missing)} file(s) that do not exist (not labelled yet?): "
            f"{', '.join(missing)}"
        )


def freeze(data: DataConfig, snapshot: str | Path, frames: int | None = None) -> int:
    """Write the frames of the files ``data.paths`` (the first ``frames`` of the one file when
    given) to ``snapshot`` unless it exists; returns how many frames it holds.

    Raises:
        FileNotFoundError: a data file does not exist.
        ValueError: ``frames`` with several data files (their concatenation is not one growing
            file whose first frames stay the same), a snapshot that holds another number of
            frames than ``frames``, or unreadable data (one line each).
    """
    check_data_files(data)
    if frames is not None and len(data.paths) > 1:
        raise ValueError(
            f"--frames takes the first frames of one growing data file; the config lists "
            f"{len(data.paths)} ({', '.join(data.paths)})"
        )
    snapshot = Path(snapshot)
    if snapshot.exists():
        held = len(read(snapshot, index=":"))
        if frames is not None and held != frames:
            raise ValueError(
                f"{snapshot} holds {held} frames, not {frames}: add --fresh to start over"
            )
        return held
    labelled = read_frames(data)[:frames]
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(snapshot) as temporary:
        write(temporary, labelled, format="extxyz")
    return len(labelled)


# A shipped model's files its comparison keeps: its card and metrics (its values on its own
# test frames) and the model itself (evaluated on the new model's test frames); metrics.json
# last, so a copy of it marks a complete one.
BASELINE_FILES = ("card.md", "model.pt", "training_summary.json", "metrics.json")


def keep_baseline(source: str | Path, target: str | Path) -> Path:
    """The baseline a default model's card is compared with: ``source``'s (a shipped model's
    folder) files :data:`BASELINE_FILES`, copied to ``target/baseline/`` unless a copy is
    there already, so that reruns compare with what was shipped when the first run started,
    even once the new model and card have overwritten ``source`` (when it is ``target``).
    Returns the path of the copied ``metrics.json``.

    Raises:
        FileNotFoundError: ``source`` lacks one of the files (and no copy exists yet), or the
            copy lacks one.
        ValueError: the copy's ``metrics.json``, or else ``source``'s, is not a model card's.
    """
    kept = Path(target) / "baseline"
    if (kept / BASELINE_FILES[-1]).is_file():
        lacking = [name for name in BASELINE_FILES if not (kept / name).is_file()]
        if lacking:
            # in the baseline's own folder, its files may be the new model's by now
            fresh_copy = Path(source).resolve() != Path(target).resolve()
            raise FileNotFoundError(
                f"the kept baseline in {kept} lacks {', '.join(lacking)}: copy the baseline "
                "model's files there"
                + (
                    ", or delete the folder to copy them from the shipped model"
                    if fresh_copy
                    else ""
                )
            )
        read_baseline(kept / BASELINE_FILES[-1])
        return kept / BASELINE_FILES[-1]
    for name in BASELINE_FILES:
        if not (Path(source) / name).is_file():
            raise FileNotFoundError(f"no baseline {name} in {source}")
    read_baseline(Path(source) / "metrics.json")
    kept.mkdir(parents=True, exist_ok=True)
    for name in BASELINE_FILES:
        with atomic_path(kept / name) as temporary:
            shutil.copyfile(Path(source) / name, temporary)
    return kept / BASELINE_FILES[-1]


def _keep_baseline(args: argparse.Namespace) -> None:
    print(keep_baseline(args.source, args.target))


def _paths(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    check_data_files(config.data)  # before the script deletes anything (--fresh)
    values = {
        "run_dir": config.output_dir,
        "snapshot": snapshot_path(config),
        "target": args.model_dir or model_dir(args.config),
    }
    for name, value in values.items():
        print(f"{name}={shlex.quote(str(value))}")


def _freeze(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    held = freeze(config.data, args.snapshot, args.frames)
    print(f"{args.snapshot}: {held} frames of {', '.join(config.data.paths)}")


def _add_test_frames(args: argparse.Namespace) -> None:
    data = load_config(args.config).data
    check_data_files(data)
    added = add_test_frames(args.snapshot, data)
    print(f"{args.snapshot}: {added} test frames labelled since it was made added")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one step; user errors are one line on stderr and exit code 2."""
    parser = argparse.ArgumentParser(prog="default_model", description=__doc__)
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser(
        "paths",
        help="the run folder, frozen data and model folder (shell); every data file must exist",
    )
    p.add_argument("config")
    p.add_argument("--model-dir", help="ship the model here instead of models/spinmultinet-*")
    p.set_defaults(run=_paths)
    p = sub.add_parser("freeze", help="write the frozen copy of the data unless it exists")
    p.add_argument("config")
    p.add_argument("snapshot")
    p.add_argument("--frames", type=int, help="the first N frames of the one data file only")
    p.set_defaults(run=_freeze)
    p = sub.add_parser("add-test-frames", help="add test frames labelled since the copy")
    p.add_argument("config")
    p.add_argument("snapshot")
    p.set_defaults(run=_add_test_frames)
    p = sub.add_parser(
        "keep-baseline",
        help="copy a shipped model's card, metrics, model and training summary to "
        "TARGET_DIR/baseline/ unless a copy exists; print the copied metrics.json",
    )
    p.add_argument("source", metavar="SOURCE_DIR")
    p.add_argument("target", metavar="TARGET_DIR")
    p.set_defaults(run=_keep_baseline)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, OSError) as error:
        message = " ".join(str(error).split())
        print(f"{getattr(args, 'config', args.step)}: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
