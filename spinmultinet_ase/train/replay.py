"""Replay: earlier data mixed into every training batch, so fine-tuning does not forget it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

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


def replay_split_rules(config: DataConfig, source: Source | None) -> DataConfig:
    """``config`` with the split rules the source model's training split the replay files by,
    so the frames it held out stay out of the replay; without a source, ``config`` itself.

    The source's own data rules, or, for files the source itself replayed (a fine-tuned model
    fine-tuned again), the rules it recorded for them.

    Raises:
        ValueError: the source records no training config, or replayed these files without
            recording how it split them (one line).
    """
    if source is None:
        return config
    if source.data is None:
        raise ValueError(
            f"init_from {source.path} records no training config, so the frames it held out "
            "cannot be kept out of data.replay_paths; start from a model.pt or checkpoint "
            "written by spinmultinet train, or replay no data"
        )
    defaults = DataConfig()
    rules = {name: source.data.get(name, getattr(defaults, name)) for name in SPLIT_RULES}
    replayed_before = {Path(p).resolve() for p in source.data.get("replay_paths", ())}
    if {Path(p).resolve() for p in config.replay_paths} & replayed_before:
        if source.replay_rules is None:
            raise ValueError(
                f"init_from {source.path} replayed {', '.join(config.replay_paths)} itself but "
                "does not record how it split them; start from a model that records it "
                "(written by this version) or from the model it was fine-tuned from"
            )
        rules = {name: source.replay_rules[name] for name in SPLIT_RULES}
    rules["test_orderings"] = tuple(rules["test_orderings"])
    rules["test_cells"] = tuple(rules["test_cells"])
    return dataclasses.replace(config, **rules)


def replay_frames(config: DataConfig) -> list[list[Atoms]]:
    """The training-split frames of each of ``config.replay_paths`` (their held-out frames stay
    out), one list per file.

    Raises:
        FileNotFoundError: a replay file does not exist.
    """
    frames: list[list[Atoms]] = []
    for path in config.replay_paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no replay data at {path} (data.replay_paths)")
        read = read_frames(dataclasses.replace(config, path=path))
        frames.append([atoms for atoms in read if split_of(atoms, config) == "train"])
    return frames


def with_replay(
    train: Dataset,
    config: DataConfig,
    source: Source | None,
    species: Sequence[str],
    cutoff: float,
    dtype: torch.dtype,
    spin_mode: SpinMode | str = "collinear",
) -> tuple[Dataset, list[int]]:
    """The training set with the replay frames added, and the numbers of its replay groups.

    The replay files are split by the source's rules (:func:`replay_split_rules`); each file's
    structure ids are its own, so its frames never join another file's partner groups.
    """
    rules = replay_split_rules(config, source)
    per_file = replay_frames(rules)
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
