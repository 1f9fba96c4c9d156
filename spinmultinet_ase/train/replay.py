"""Replay: earlier data mixed into every training batch, so fine-tuning does not forget it."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ase import Atoms

from spinmultinet_ase.spin import SpinMode
from spinmultinet_ase.train.config import DataConfig
from spinmultinet_ase.train.dataset import Dataset, frame_to_sample, read_frames, split_of
from spinmultinet_ase.train.finetune import Source

# the DataConfig fields that decide which split a frame is in
SPLIT_RULES = (
    "split_seed",
    "validation_fraction",
    "test_fraction",
    "test_orderings",
    "test_cells",
    "test_yardsticks",
)


def file_sha256(path: str | Path) -> str:
    """The sha256 (hex) of the bytes of the file at ``path``."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def split_rules(data: Mapping[str, Any]) -> dict[str, Any]:
    """The split rules (:data:`SPLIT_RULES`) of a config's data section (the defaults where it
    says nothing), as JSON values."""
    defaults = DataConfig()
    rules = {name: data.get(name, getattr(defaults, name)) for name in SPLIT_RULES}
    return {name: list(v) if isinstance(v, tuple) else v for name, v in rules.items()}


def split_by(config: DataConfig, rules: Mapping[str, Any]) -> DataConfig:
    """``config`` with the split rules ``rules`` (:func:`split_rules`)."""
    return dataclasses.replace(
        config, **{name: tuple(v) if isinstance(v, list) else v for name, v in rules.items()}
    )


def checked_records(records: Any, replayed: Sequence[str], owner: str) -> list[dict[str, Any]]:
    """The per-file replay records (:func:`replay_split_rules`) of ``owner``, a model that
    replayed the files ``replayed`` in its training ([] if it replayed none).

    Raises:
        ValueError: it replayed files but records no per-file split rules (one line).
    """
    if not replayed:
        return []
    fields = {"path", "sha256", "rules"}
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and fields <= r.keys() for r in records
    ):
        raise ValueError(
            f"{owner} replayed {', '.join(replayed)} in its training but did not record how it "
            "split each file (by content); retrain it with this version, or use the model it "
            "was fine-tuned from"
        )
    return records


def recorded_rules(
    records: Sequence[Mapping[str, Any]], path: str | Path, digest: str, owner: str
) -> dict[str, Any] | None:
    """The split rules ``owner`` recorded for the file at ``path`` (sha256 ``digest``): those
    of the record of the same content, or None if it replayed no such file.

    Raises:
        ValueError: a record has the resolved path or file name of ``path`` but other content:
            the file it replayed, changed since, or another one of that name (one line).
    """
    for record in records:
        if record["sha256"] == digest:
            return dict(record["rules"])
    here = Path(path)
    for record in records:
        there = Path(record["path"])
        if there.name == here.name or there.resolve() == here.resolve():
            raise ValueError(
                f"{path} is named like {record['path']}, which {owner} replayed, but its content "
                f"differs (sha256 {digest[:12]}, recorded {record['sha256'][:12]}); refused "
                "rather than assuming it is that file, changed since: give the file as it was "
                "replayed, or rename this one if it is another file"
            )
    return None


def replay_split_rules(config: DataConfig, source: Source | None) -> list[dict[str, Any]]:
    """How each of ``config.replay_paths`` is split, one record per file: ``{"path": as given,
    "sha256": of its bytes, "rules": its split rules}``.

    A file's rules are those the source recorded for a file of the same content (one the source
    itself replayed: a fine-tuned model fine-tuned again), else the source's own data rules, so
    the frames the source's training held out stay out of the replay; without a source,
    ``config``'s own rules.

    Raises:
        FileNotFoundError: a replay file does not exist.
        ValueError: the source records no training config, replayed files without recording
            how it split each, or replayed a file of this name whose content has changed
            since (:func:`recorded_rules`; one line).
    """
    if source is None:
        own, earlier, owner = split_rules(dataclasses.asdict(config)), [], "this run"
    else:
        if source.data is None:
            raise ValueError(
                f"init_from {source.path} records no training config, so the frames it held "
                "out cannot be kept out of data.replay_paths; start from a model.pt or "
                "checkpoint written by spinmultinet train, or replay no data"
            )
        owner = f"init_from {source.path}"
        own = split_rules(source.data)
        earlier = checked_records(source.replay_rules, source.data.get("replay_paths", ()), owner)
    return rules_by_content(config.replay_paths, own, earlier, owner)


def rules_by_content(
    paths: Sequence[str],
    own: Mapping[str, Any],
    earlier: Sequence[Mapping[str, Any]],
    owner: str,
) -> list[dict[str, Any]]:
    """Records (:func:`replay_split_rules`) of the replay files ``paths``: each split by the
    rules ``owner`` recorded in ``earlier`` for a file of the same content, else by ``own``.

    Raises:
        FileNotFoundError: a replay file does not exist.
        ValueError: ``owner`` recorded a file of this name whose content differs
            (:func:`recorded_rules`; one line).
    """
    records = []
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no replay data at {path} (data.replay_paths)")
        digest = file_sha256(path)
        rules = recorded_rules(earlier, path, digest, owner)
        records.append({"path": path, "sha256": digest, "rules": own if rules is None else rules})
    return records


def replay_frames(config: DataConfig, records: Sequence[Mapping[str, Any]]) -> list[list[Atoms]]:
    """The training-split frames of each replay file of ``records``
    (:func:`replay_split_rules`), each split by its own rules (its held-out frames stay out),
    one list per file; ``config`` gives the label names."""
    frames: list[list[Atoms]] = []
    for record in records:
        rules = split_by(dataclasses.replace(config, path=record["path"]), record["rules"])
        frames.append([atoms for atoms in read_frames(rules) if split_of(atoms, rules) == "train"])
    return frames


def with_replay(
    train: Dataset,
    config: DataConfig,
    records: Sequence[Mapping[str, Any]],
    species: Sequence[str],
    cutoff: float,
    dtype: torch.dtype,
    spin_mode: SpinMode | str = "collinear",
) -> tuple[Dataset, list[int]]:
    """The training set with the replay frames of ``records`` (:func:`replay_split_rules`)
    added, and the numbers of its replay groups.

    Each file is split by its own rules; each file's structure ids are its own, so its frames
    never join another file's partner groups.
    """
    per_file = replay_frames(config, records)
    extra = [atoms for frames in per_file for atoms in frames]
    samples = [frame_to_sample(a, config, species, cutoff, dtype, spin_mode) for a in extra]
    origins = [number for number, frames in enumerate(per_file, start=1) for _ in frames]
    merged = Dataset(
        train.frames + extra, train.samples + samples, [0] * len(train.frames) + origins
    )
    groups = [
        number for number, members in enumerate(merged.groups) if merged.origins[members[0]] > 0
    ]
    if not groups:
        raise ValueError(
            f"{', '.join(config.replay_paths)}: no training-split frames to replay "
            "(data.replay_paths)"
        )
    return merged, groups


def replay_share(fraction: float, batch_size: int) -> int:
    """Frames per batch drawn from the replay data.

    Raises:
        ValueError: the fraction leaves no replay frame, or no new frame, in a batch.
    """
    share = round(fraction * batch_size)
    if not 1 <= share <= batch_size - 1:
        raise ValueError(
            f"data.replay_fraction {fraction} of optim.batch_size {batch_size} gives {share} "
            "replay frames per batch; it must leave at least one replay and one new frame"
        )
    return share


def mixed_batch_indices(
    dataset: Dataset,
    replay_groups: Sequence[int],
    fraction: float,
    batch_size: int,
    generator: torch.Generator,
) -> Iterator[list[int]]:
    """Batches of ``dataset`` sample indices: at least ``batch_size − share`` frames of the new
    groups (each once per epoch, shuffled), then at least ``share`` (:func:`replay_share`)
    frames of the replay groups, cycled in a fresh random order each time they run out."""
    share = replay_share(fraction, batch_size)
    replay = list(replay_groups)
    replayed = set(replay)
    new = [g for g in range(len(dataset.groups)) if g not in replayed]
    cycle: list[int] = []

    def replay_part() -> list[int]:
        part: list[int] = []
        while len(part) < share:
            if not cycle:
                cycle.extend(replay[i] for i in torch.randperm(len(replay), generator=generator))
            part.extend(dataset.groups[cycle.pop(0)])
        return part

    batch: list[int] = []
    for index in torch.randperm(len(new), generator=generator).tolist():
        batch.extend(dataset.groups[new[index]])
        if len(batch) >= batch_size - share:
            yield batch + replay_part()
            batch = []
    if batch:
        yield batch + replay_part()
