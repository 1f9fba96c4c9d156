"""Labelled frames -> graphs with targets, the train/validation/test split, and statistics."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.io import read, write
from ase.stress import voigt_6_to_full_3x3_stress

from spinmultinet_ase import keys
from spinmultinet_ase.data.graph import atoms_to_graph, collate
from spinmultinet_ase.data.partners import STRUCTURE_ID, geometry_of
from spinmultinet_ase.outputs import appending
from spinmultinet_ase.spin import SpinMode
from spinmultinet_ase.train.config import DataConfig

SPLITS = ("train", "validation", "test")
# The splits a model learns from or is selected on; the test split only judges it.
TRAINING_SPLITS = ("train", "validation")


def _label(atoms: Atoms, name: str) -> np.ndarray | None:
    """A label by its extxyz name: from the calculator results, ``info`` or ``arrays``."""
    if atoms.calc is not None and name in atoms.calc.results:
        return np.asarray(atoms.calc.results[name])
    if name in atoms.info:
        return np.asarray(atoms.info[name])
    if name in atoms.arrays:
        return np.asarray(atoms.arrays[name])
    return None


def split_of(atoms: Atoms, config: DataConfig) -> str:
    """The split a frame belongs to; stable as the data set grows (hash of its id).

    An ordering partner (``info['partner_of']``) goes wherever its source frame goes, so no
    geometry is in two splits.
    """
    info = atoms.info
    if (
        info.get("ordering") in config.test_orderings
        or info.get("cell_name") in config.test_cells
        or (config.test_yardsticks and info.get("yardstick", False))
    ):
        return "test"
    digest = hashlib.sha256(f"{config.split_seed}:{geometry_of(atoms)}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < config.test_fraction:
        return "test"
    if u < config.test_fraction + config.validation_fraction:
        return "validation"
    return "train"


def read_frames(config: DataConfig) -> list[Atoms]:
    """All frames of the data files (``config.paths``, in order, as one concatenated file),
    with the configured label names checked on each.

    Raises:
        ValueError: a file cannot be read, a frame lacks a label, or a structure id appears in
            two files (one line naming the file).
    """
    frames: list[Atoms] = []
    origin: dict[str, int] = {}  # structure id -> the number of the file it came from
    for number, path in enumerate(config.paths):
        try:
            read_here = read(path, index=":")
        except Exception as error:  # ASE raises many types for unreadable files
            raise ValueError(
                f"cannot read labelled frames from {path} ({type(error).__name__}: {error})"
            ) from None
        here: set[str] = set()
        for index, atoms in enumerate(read_here):
            atoms.info.setdefault(STRUCTURE_ID, f"frame-{len(frames) + index}")
            structure_id = atoms.info[STRUCTURE_ID]
            if origin.get(structure_id, number) != number:
                raise ValueError(
                    f"{path} frame {index} has structure id {structure_id!r}, which "
                    f"{config.paths[origin[structure_id]]} has too; structure ids must be "
                    "unique across the data.path files"
                )
            here.add(structure_id)
            for target in ("energy", "forces", "magmoms", "initial_magmoms"):
                if _label(atoms, config.keys[target]) is None:
                    raise ValueError(
                        f"{path} frame {index} has no '{config.keys[target]}' ({target}); "
                        "set data.keys in the config to the name your file uses"
                    )
        origin.update(dict.fromkeys(here, number))
        frames.extend(read_here)
    return frames


def frame_to_sample(
    atoms: Atoms,
    config: DataConfig,
    species: Sequence[str],
    cutoff: float,
    dtype: torch.dtype,
    spin_mode: SpinMode | str = "collinear",
) -> dict[str, torch.Tensor]:
    """One labelled frame as a graph with its targets attached (stress only if 3-D periodic);
    initial and target moments of the spin mode's shape, (N,) or (N, 3)."""
    labels = {name: _label(atoms, key) for name, key in config.keys.items()}
    work = atoms.copy()
    work.set_initial_magnetic_moments(labels["initial_magmoms"])
    graph = atoms_to_graph(work, species, cutoff, spin_mode=spin_mode, dtype=dtype)
    expected = SpinMode.of(spin_mode).shape(len(atoms))
    if labels["magmoms"].shape != expected:
        raise ValueError(
            f"frame {atoms.info['structure_id']}: '{config.keys['magmoms']}' has shape "
            f"{labels['magmoms'].shape}, a {SpinMode.of(spin_mode).name} model needs {expected}"
        )
    has_stress = labels["stress"] is not None and bool(atoms.pbc.all())
    stress = np.zeros((3, 3))
    if has_stress:
        stress = labels["stress"]
        stress = voigt_6_to_full_3x3_stress(stress) if stress.shape == (6,) else stress
    as_float = dict(dtype=dtype)
    graph.update(
        {
            keys.TARGET_ENERGY: torch.tensor([float(labels["energy"])], **as_float),
            keys.TARGET_FORCES: torch.tensor(labels["forces"], **as_float),
            keys.TARGET_STRESS: torch.tensor(stress, **as_float).unsqueeze(0),
            keys.HAS_STRESS: torch.tensor([has_stress]),
            keys.TARGET_MAGMOMS: torch.tensor(labels["magmoms"], **as_float),
            keys.NUM_ATOMS: torch.tensor([len(atoms)]),
        }
    )
    return graph


@dataclass
class Dataset:
    """Samples of one split, with the frames they came from.

    Frames of one geometry (ordering partners) form one group, numbered in
    ``keys.PARTNER_GROUP``, stored next to each other (in order of first appearance) and
    always in one batch, so the loss can compare their energies. Structure ids name a geometry
    within one data set (the ``data.path`` files, or one replay file): ``origins`` (default:
    all one data set) numbers each frame's data set, and frames of different ones are never
    partners.
    """

    frames: list[Atoms]
    samples: list[dict[str, torch.Tensor]]
    origins: list[int] | None = None

    def __post_init__(self) -> None:
        origins = self.origins or [0] * len(self.frames)
        members: dict[tuple[int, str], list[int]] = {}
        for index, (atoms, origin) in enumerate(zip(self.frames, origins, strict=True)):
            members.setdefault((origin, geometry_of(atoms)), []).append(index)
        order = [index for group in members.values() for index in group]
        self.frames = [self.frames[i] for i in order]
        self.samples = [self.samples[i] for i in order]
        self.origins = [origins[i] for i in order]
        self.groups: list[range] = []
        start = 0
        for number, group in enumerate(members.values()):
            self.groups.append(range(start, start + len(group)))
            start += len(group)
            for index in self.groups[-1]:
                self.samples[index][keys.PARTNER_GROUP] = torch.tensor([number])

    def __len__(self) -> int:
        return len(self.samples)

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[dict]:
        """Collated batches of :meth:`batch_indices`."""
        for batch in self.batch_indices(batch_size, generator):
            yield collate([self.samples[i] for i in batch])

    def batch_indices(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[list[int]]:
        """Sample indices of batches of at least ``batch_size`` frames (the last may hold
        fewer), filled group by group; groups shuffled when a generator is given (reproducible
        order)."""
        order = (
            torch.randperm(len(self.groups), generator=generator).tolist()
            if generator is not None
            else list(range(len(self.groups)))
        )
        batch: list[int] = []
        for number in order:
            batch.extend(self.groups[number])
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


def build_datasets(
    config: DataConfig,
    species: Sequence[str],
    cutoff: float,
    dtype: torch.dtype,
    spin_mode: SpinMode | str = "collinear",
) -> dict[str, Dataset]:
    """Read, split and convert the data; every split may be empty except train."""
    frames = read_frames(config)
    grouped: dict[str, list[Atoms]] = {name: [] for name in SPLITS}
    for atoms in frames:
        grouped[split_of(atoms, config)].append(atoms)
    if not grouped["train"]:
        raise ValueError(f"{', '.join(config.paths)}: no frames left for training after the split")
    return {
        name: Dataset(
            group, [frame_to_sample(a, config, species, cutoff, dtype, spin_mode) for a in group]
        )
        for name, group in grouped.items()
    }


def data_fingerprint(datasets: dict[str, Dataset]) -> str:
    """A hash of which frames (id, energy) the training and validation splits hold: it changes
    when the data the model learns from does, not when held-out test frames are added."""
    digest = hashlib.sha256()
    for name in TRAINING_SPLITS:
        for atoms in datasets[name].frames:
            energy = float(atoms.get_potential_energy())
            digest.update(f"{name}:{atoms.info['structure_id']}:{energy:.8f};".encode())
    return digest.hexdigest()


def frames_fingerprint(frames: Sequence[Atoms]) -> str:
    """A hash of which frames (structure ids) ``frames`` holds, in any order: two evaluations
    of a row are on the same frames when theirs match."""
    ids = sorted(str(atoms.info[STRUCTURE_ID]) for atoms in frames)
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def add_test_frames(frozen_path: str | Path, config: DataConfig) -> int:
    """Append to a frozen copy of the data files ``config.paths`` the test-split frames
    labelled in them since the copy was made; returns how many. Training and validation
    frames are left out, so a model trained on the copy still matches it
    (:func:`data_fingerprint`)."""
    held = {atoms.info[STRUCTURE_ID] for atoms in read(frozen_path, index=":")}
    new = [
        atoms
        for atoms in read_frames(config)
        if atoms.info[STRUCTURE_ID] not in held and split_of(atoms, config) == "test"
    ]
    if new:
        with appending(frozen_path) as temporary:
            write(temporary, new, format="extxyz", append=True)
    return len(new)


def reference_energies(dataset: Dataset, species: Sequence[str]) -> np.ndarray:
    """Per-element energies (eV) that best explain total energies by composition (least squares)."""
    counts = np.zeros((len(dataset), len(species)))
    energies = np.zeros(len(dataset))
    for row, sample in enumerate(dataset.samples):
        counts[row] = np.bincount(sample[keys.SPECIES].numpy(), minlength=len(species))
        energies[row] = float(sample[keys.TARGET_ENERGY])
    present = counts.sum(axis=0) > 0
    solution = np.zeros(len(species))
    solution[present] = np.linalg.lstsq(counts[:, present], energies, rcond=None)[0]
    return solution
