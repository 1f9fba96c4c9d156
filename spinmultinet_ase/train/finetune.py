"""Fine-tuning: start training from a trained model, with species added to what it knows.

The source is a model file (TorchScript with metadata, :mod:`spinmultinet_ase.export`) or a
training checkpoint (:mod:`spinmultinet_ase.checkpoint`; its ``model_state``, the EMA weights).
Its architecture and normalisation (``avg_num_neighbors``, energy and moment scales) are kept.
A species enters the network only as a one-hot input of the two embedding MLPs and as a
per-element energy shift; a new species gets a new input row (freshly initialised) and a shift
fitted to the training data, while the old species' rows and shifts are kept, so that on the
old species the grown model computes what the source did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spinmultinet_ase import keys
from spinmultinet_ase.checkpoint import load_checkpoint
from spinmultinet_ase.export import ModelFileError, load_model
from spinmultinet_ase.materials import recorded_materials
from spinmultinet_ase.model import ModelConfig, SpinMultiNet
from spinmultinet_ase.train.dataset import Dataset

# Weights whose input rows are (one-hot species, then moment basis): SpinEmbedding's first
# layers. e3nn's FullyConnectedNet divides a layer's weights by sqrt(number of inputs).
SPECIES_INPUT_WEIGHTS = ("embedding.even.layer0.weight", "embedding.odd_amplitude.layer0.weight")


@dataclass(frozen=True)
class Source:
    """A trained model to start from: where it came from, its config, its weights, the data
    section of the config it was trained with (None if the file records none) and how it split
    each file of that section's ``replay_paths`` (records of
    :func:`~spinmultinet_ase.train.replay.replay_split_rules`, as the file holds them; None if
    it records none) and the materials it was trained on
    (:func:`~spinmultinet_ase.materials.trained_materials`; None if it records none)."""

    path: str
    config: dict
    weights: dict[str, torch.Tensor]
    data: dict | None = None
    replay_rules: Any = None
    materials: dict[str, int] | None = None

    @property
    def species(self) -> tuple[str, ...]:
        return tuple(self.config["species"])

    def model_config(self, species: Sequence[str], spin_mode: str) -> ModelConfig:
        """The source's config with the symbols of ``species`` it lacks appended.

        Raises:
            ValueError: the source's spin mode is not ``spin_mode``.
        """
        if self.config["spin_mode"] != spin_mode:
            raise ValueError(
                f"init_from {self.path} is a {self.config['spin_mode']} model; set "
                f"model.spin_mode: {self.config['spin_mode']} (fine-tuning keeps the spin mode)"
            )
        added = tuple(s for s in species if s not in self.species)
        return ModelConfig.from_dict({**self.config, "species": list(self.species + added)})


def load_source(path: str | Path) -> Source:
    """Read the model file or checkpoint ``path`` to fine-tune from.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        ValueError: it is neither a SpinMultiNet model file nor a checkpoint (one line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file or checkpoint to start from at {path} (init_from)")
    try:
        loaded = load_model(path)
        return Source(
            str(path),
            loaded.metadata["model_config"],
            loaded.module.state_dict(),
            loaded.metadata.get("train_config", {}).get("data"),
            loaded.metadata.get("replay_split_rules"),
            recorded_materials(loaded.metadata),
        )
    except ModelFileError:
        pass
    try:
        content = load_checkpoint(path)
    except ValueError:
        raise ValueError(
            f"{path} is neither a SpinMultiNet model file nor a training checkpoint (init_from)"
        ) from None
    return Source(
        str(path),
        content["model_config"],
        content["model_state"],
        content.get("train_config", {}).get("data"),
        content.get("replay_split_rules"),
        content.get("trained_materials"),
    )


def grown_model(source: Source, config: ModelConfig, dtype: torch.dtype) -> SpinMultiNet:
    """The source model grown to ``config`` (:meth:`Source.model_config`): new species'
    rows come from a fresh model (seed torch before calling), their shifts are 0 until
    :func:`fit_new_shifts`."""
    model = SpinMultiNet(config)
    state = model.state_dict()
    old, new = len(source.species), len(config.species)
    for name, weight in source.weights.items():
        weight = weight.to(torch.float64)
        if name == "energy_shift":
            state[name][:old] = weight
        elif name in SPECIES_INPUT_WEIGHTS:
            rescale = ((weight.shape[0] + new - old) / weight.shape[0]) ** 0.5
            state[name][:old] = weight[:old] * rescale
            state[name][new:] = weight[old:] * rescale
        else:
            state[name] = weight
    model.load_state_dict(state)
    return model.to(dtype)


def fit_new_shifts(model: SpinMultiNet, train: Dataset, first_new: int) -> None:
    """Set the energy shifts of species ``first_new`` onwards to the per-element energies that
    best explain the training energies left after the old species' shifts (least squares)."""
    num_species = len(model.config.species)
    if first_new >= num_species:
        return
    shifts = model.energy_shift.detach().double().numpy()
    counts = np.zeros((len(train), num_species))
    residual = np.zeros(len(train))
    for row, sample in enumerate(train.samples):
        counts[row] = np.bincount(sample[keys.SPECIES].numpy(), minlength=num_species)
        residual[row] = (
            float(sample[keys.TARGET_ENERGY]) - counts[row, :first_new] @ shifts[:first_new]
        )
    new = counts[:, first_new:]
    present = new.sum(axis=0) > 0
    fitted = np.zeros(num_species - first_new)
    if present.any():
        fitted[present] = np.linalg.lstsq(new[:, present], residual, rcond=None)[0]
    with torch.no_grad():
        model.energy_shift[first_new:] = torch.as_tensor(fitted, dtype=model.energy_shift.dtype)
