"""Checkpoints: a model's config and weights (plus anything training adds) in one file."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import torch

from spinmultinet_ase.model import ModelConfig, SpinMultiNet, model_from_state
from spinmultinet_ase.outputs import atomic_path, replace_synced


def save_checkpoint(
    model: SpinMultiNet, path: str | Path, previous: str | Path | None = None, **extra: Any
) -> None:
    """Write ``model``'s config and weights, plus ``extra`` entries, atomically.

    Args:
        model: the model whose config and weights are saved (``model_state``).
        path: the checkpoint file.
        previous: if given, the checkpoint ``path`` held so far is kept under this name (a
            fallback when ``path`` turns out unreadable).
        **extra: further entries (e.g. the training state).
    """
    path = Path(path)
    with atomic_path(path) as temporary:
        torch.save(
            {"model_config": model.config.to_dict(), "model_state": model.state_dict(), **extra},
            temporary,
        )
        if previous is not None and path.exists():
            replace_synced(path, Path(previous))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dictionary, with a clear error when it is not a readable one of ours.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        ValueError: the file is damaged or not a SpinMultiNet checkpoint (one line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        content = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch and pickle raise many types for damaged files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ValueError(
            f"{path} is not a readable checkpoint ({type(error).__name__}"
            f"{': ' + reason if reason else ''}); it may be truncated or not a checkpoint"
        ) from None
    if not isinstance(content, dict) or "model_config" not in content:
        raise ValueError(f"{path} is not a SpinMultiNet checkpoint (no model_config inside)")
    _check_spin_mode_name(path, content)
    return content


def _weights_fit(config: dict[str, Any], weights: Any) -> bool:
    """Whether ``weights`` have the names and shapes of the model ``config`` describes."""
    try:
        expected = SpinMultiNet(ModelConfig.from_dict(config)).state_dict()
    except (ValueError, TypeError):
        return False
    return isinstance(weights, dict) and {k: tuple(v.shape) for k, v in expected.items()} == {
        k: tuple(getattr(v, "shape", ())) for k, v in weights.items()
    }


def _check_spin_mode_name(path: Path, content: dict[str, Any]) -> None:
    """Refuse, with the fix, a checkpoint saved when ``noncollinear`` named the axial mode.

    Checkpoints carry no format version: such a checkpoint is recognised by its weights,
    which fit ``noncollinear_soc`` and not ``noncollinear``.
    """
    config, weights = content["model_config"], content.get("model_state")
    if not isinstance(config, dict) or config.get("spin_mode") != "noncollinear":
        return
    if _weights_fit(config, weights):
        return
    if _weights_fit({**config, "spin_mode": "noncollinear_soc"}, weights):
        name = json.dumps(str(path))
        fix = (
            f"import torch; c = torch.load({name}, weights_only=False); "
            f'c["model_config"]["spin_mode"] = "noncollinear_soc"; torch.save(c, {name})'
        )
        raise ValueError(
            f"{path} was saved when spin_mode 'noncollinear' named the axial (spin-orbit) mode, "
            f"today's noncollinear_soc: rename it in the file with python -c {shlex.quote(fix)}"
        )


def model_from_checkpoint(path: str | Path, weights: str = "model_state") -> SpinMultiNet:
    """Rebuild the model saved in a checkpoint (``weights`` picks e.g. the EMA weights).

    Raises:
        ValueError: the checkpoint is unreadable, has no entry ``weights``, or its weights do
            not fit its model config.
    """
    content = load_checkpoint(path)
    entries = sorted(k for k, v in content.items() if k.endswith("state") and isinstance(v, dict))
    if weights not in entries:
        raise ValueError(f"{path} has no weights {weights!r}; it holds {', '.join(entries)}")
    try:
        model = model_from_state(content["model_config"], content[weights])
    except (RuntimeError, TypeError, StopIteration, AttributeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: its {weights!r} do not fit its model config ({first})") from None
    return model.eval()
