"""Randomly initialised SpinMultiNet models for tests (no training, no files needed)."""

from __future__ import annotations

import torch

from spinmultinet_ase.export import LoadedModel, model_metadata
from spinmultinet_ase.model import ModelConfig, SpinMultiNet

SMALL_CONFIG = dict(
    channels=8,
    spin_channels=8,
    lmax=2,
    num_layers=2,
    radial_hidden=16,
    cutoff=4.5,
    radial_group_size=4,
)
# A smaller model still, for tests that train one.
TINY_CONFIG = dict(
    channels=4,
    spin_channels=4,
    lmax=1,
    num_layers=1,
    radial_hidden=8,
    radial_group_size=4,
)


def random_model(seed: int = 0, dtype: torch.dtype = torch.float64, **overrides) -> SpinMultiNet:
    """A small SpinMultiNet with random weights, seeded; ``overrides`` change the config."""
    torch.manual_seed(seed)
    model = SpinMultiNet(ModelConfig(**{**SMALL_CONFIG, **overrides}))
    return model.to(dtype).eval()


def as_loaded(model: SpinMultiNet) -> LoadedModel:
    """An eager model wrapped like a loaded file, for the calculator."""
    return LoadedModel(module=model, metadata=model_metadata(model))
