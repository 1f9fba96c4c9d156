"""Checkpoints: a model's config and weights (plus anything training adds) in one file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from spinmultinet_ase.model import ModelConfig, SpinMultiNet


def save_checkpoint(model: SpinMultiNet, path: str | Path, **extra: Any) -> None:
    """Write ``model``'s config and weights, plus ``extra`` entries, atomically."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(
        {"model_config": model.config.to_dict(), "model_state": model.state_dict(), **extra},
        temporary,
    )
    temporary.replace(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dictionary, with a clear error when it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    content = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(content, dict) or "model_config" not in content:
        raise ValueError(f"{path} is not a SpinMultiNet checkpoint (no model_config inside)")
    return content


def model_from_checkpoint(path: str | Path, weights: str = "model_state") -> SpinMultiNet:
    """Rebuild the model saved in a checkpoint (``weights`` picks e.g. the EMA weights)."""
    content = load_checkpoint(path)
    model = SpinMultiNet(ModelConfig.from_dict(content["model_config"]))
    state = content[weights]
    dtype = next(iter(v for v in state.values() if v.is_floating_point())).dtype
    model.to(dtype).load_state_dict(state)
    return model.eval()
