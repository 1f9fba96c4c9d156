"""Save and load deployable models: TorchScript with metadata in ``_extra_files``.

Only this module touches the file format, so another backend (torch.export, AOTInductor) can
be added here without changing callers. TorchScript is deprecated in torch >= 2.10 and warns
about it; those warnings are ours to handle, not our users', so they are silenced here.
"""

from __future__ import annotations

import io
import json
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spinmultinet_ase import __version__, keys
from spinmultinet_ase.model import ModelConfig, SpinMultiNet, model_from_state
from spinmultinet_ase.spin import SpinMode

# 2: ``spin_mode: noncollinear`` is the mode without spin-orbit; version 1 used that name for
# the axial-vector model, read as ``noncollinear_soc`` (:func:`_upgrade_metadata`).
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
# The floating dtypes a model may run in, by the name written into its metadata.
DTYPES = {"float32": torch.float32, "float64": torch.float64}
METADATA_FILE = "spinmultinet_metadata.json"
OUTPUTS = (
    keys.ENERGY,
    keys.ENERGIES,
    keys.FORCES,
    keys.STRESS,
    keys.MAGMOMS,
    keys.MAGNETIC_FORCES,
    keys.SPIN_LATENTS,
)
# Inputs the model reads when present; files written before an input existed lack it here.
OPTIONAL_INPUTS = (keys.ENERGY_MASK,)
# The TorchScript methods besides ``forward`` that run the model's stages one by one
# (:class:`SpinMultiNet`, LAMMPS's per-layer ghost exchange); files written before lack them.
STAGE_METHODS = ("edge_features", "embed", "interaction", "readout")
UNITS = {
    "length": "Å",
    "energy": "eV",
    "forces": "eV/Å",
    "stress": "eV/Å³",
    "magnetic_moment": "μB",
    "magnetic_forces": "eV/μB",
}
REQUIRED_METADATA = (
    "format_version",
    "cutoff",
    "species",
    "dtype",
    "spin_mode",
    "outputs",
    "units",
    "model_config",
    "package_version",
    "torch_version",
    "e3nn_version",
)


class ModelFileError(ValueError):
    """The file is not a SpinMultiNet model this version can load."""


@dataclass(frozen=True)
class LoadedModel:
    """A deployable model and what its file says about it."""

    module: torch.nn.Module
    metadata: dict[str, Any]

    @property
    def cutoff(self) -> float:
        return float(self.metadata["cutoff"])

    @property
    def species(self) -> tuple[str, ...]:
        return tuple(self.metadata["species"])

    @property
    def spin_mode(self) -> SpinMode:
        return SpinMode(self.metadata["spin_mode"])

    def __reduce__(self):
        """Pickling: a TorchScript module travels as the bytes of its model file, an eager
        :class:`SpinMultiNet` as its config and weights (it may hold TorchScript parts once
        exported, which do not pickle)."""
        if isinstance(self.module, SpinMultiNet):
            state = self.module.config.to_dict(), self.module.state_dict(), self.module.training
            return _rebuilt, (*state, self.metadata)
        if not isinstance(self.module, torch.jit.ScriptModule):
            return LoadedModel, (self.module, self.metadata)
        buffer = io.BytesIO()
        with _quiet_torchscript():
            torch.jit.save(
                self.module, buffer, _extra_files={METADATA_FILE: json.dumps(self.metadata)}
            )
        parameter = next(self.module.parameters(), None)
        device = "cpu" if parameter is None else str(parameter.device)
        return model_from_bytes, (buffer.getvalue(), device)


def _rebuilt(
    config: dict[str, Any],
    weights: dict[str, torch.Tensor],
    training: bool,
    metadata: dict[str, Any],
) -> LoadedModel:
    """An eager model from its config and weights (in their dtype and device)."""
    return LoadedModel(model_from_state(config, weights).train(training), metadata)


def default_model_path() -> Path:
    """The shipped default model file (``spinmultinet_ase.models``, from ``models/``)."""
    from importlib.resources import files

    from spinmultinet_ase.models import DEFAULT_MODEL

    path = Path(str(files("spinmultinet_ase.models") / DEFAULT_MODEL / "model.pt"))
    if not path.is_file():
        raise FileNotFoundError(
            f"the default model {DEFAULT_MODEL} is not installed (no {path}); "
            "pass the path of a model file instead"
        )
    return path


# torch's notice that a torch.jit function is deprecated, e.g. "`torch.jit.script` is deprecated".
TORCHSCRIPT_DEPRECATION = r"`torch\.jit\.\w+` is deprecated"


@contextmanager
def _quiet_torchscript():
    """Hide torch's deprecation notices for ``torch.jit`` (and only those) while inside."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=TORCHSCRIPT_DEPRECATION, category=DeprecationWarning
        )
        yield


def model_metadata(model: SpinMultiNet, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata written next to ``model``: config, units, versions, plus ``extra``."""
    import e3nn

    config: ModelConfig = model.config
    dtype = next(model.parameters()).dtype
    return {
        "format_version": FORMAT_VERSION,
        "cutoff": config.cutoff,
        "species": list(config.species),
        "dtype": str(dtype).removeprefix("torch."),
        "spin_mode": config.spin_mode,
        "outputs": list(OUTPUTS),
        "optional_inputs": list(OPTIONAL_INPUTS),
        "stage_methods": list(STAGE_METHODS),
        "units": UNITS,
        "model_config": config.to_dict(),
        "package_version": __version__,
        "torch_version": torch.__version__,
        "e3nn_version": e3nn.__version__,
        **(extra or {}),
    }


def export_model(
    model: SpinMultiNet, path: str | Path, extra: dict[str, Any] | None = None
) -> None:
    """Compile ``model`` to TorchScript and save it with its metadata.

    Args:
        model: an eager :class:`SpinMultiNet` (its current dtype is the file's dtype).
        path: output file, conventionally ``*.pt``.
        extra: more JSON-serialisable metadata (training summary, data hash, ...).
    """
    from e3nn.util.jit import compile as e3nn_compile

    metadata = model_metadata(model, extra)
    was_training = model.training
    model.eval()
    try:
        with _quiet_torchscript():
            scripted = e3nn_compile(model)
            torch.jit.save(scripted, str(path), _extra_files={METADATA_FILE: json.dumps(metadata)})
    finally:
        model.train(was_training)


def _check_metadata(metadata: dict[str, Any], source: str) -> None:
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ModelFileError(f"{source}: model metadata lacks {missing}; re-export the model")
    version = metadata["format_version"]
    if version not in READABLE_VERSIONS:
        raise ModelFileError(
            f"{source}: model format version {version} is not supported by spinmultinet-ase "
            f"{__version__} (reads versions {READABLE_VERSIONS}); re-export the model with "
            "this version or install the version that wrote it"
        )


def _upgrade_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata of an older format version in the current one's terms."""
    if metadata["format_version"] == 1 and metadata["spin_mode"] == "noncollinear":
        config = {**metadata["model_config"], "spin_mode": "noncollinear_soc"}
        metadata = {**metadata, "spin_mode": "noncollinear_soc", "model_config": config}
    return {**metadata, "format_version": FORMAT_VERSION}


def load_model(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> LoadedModel:
    """Load a model file written by :func:`export_model`, checking its metadata.

    Args:
        path: the ``.pt`` file.
        device: where to put the model.
        dtype: cast the model to this floating dtype (default: the dtype it was saved in).

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: not a TorchScript file, not a SpinMultiNet model, or a format version
            this package cannot read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    return _load(str(path), str(path), device, dtype)


def model_from_bytes(data: bytes, device: str | torch.device = "cpu") -> LoadedModel:
    """A model from the bytes of a model file, checked like :func:`load_model` checks a file.

    Unpickling a :class:`LoadedModel` whose module is TorchScript calls this.
    """
    return _load(io.BytesIO(data), "model bytes", device, None)


def _load(
    source: str | io.BytesIO,
    name: str,
    device: str | torch.device,
    dtype: torch.dtype | None,
) -> LoadedModel:
    extra_files = {METADATA_FILE: ""}
    try:
        with _quiet_torchscript():
            module = torch.jit.load(source, map_location=device, _extra_files=extra_files)
    except RuntimeError as error:
        raise ModelFileError(f"{name} is not a TorchScript model file ({error})") from None
    if not extra_files[METADATA_FILE]:
        raise ModelFileError(f"{name} is a TorchScript file but not a SpinMultiNet model")
    metadata = json.loads(extra_files[METADATA_FILE])
    _check_metadata(metadata, name)
    metadata = _upgrade_metadata(metadata)
    if dtype is not None:
        module = module.to(dtype)
        metadata = {**metadata, "dtype": str(dtype).removeprefix("torch.")}
    module.eval()
    return LoadedModel(module=module, metadata=metadata)


def reexport_model(source: str | Path, target: str | Path) -> None:
    """Write the model of ``source`` again with this version's export code.

    The network is rebuilt from the config and weights stored in the file (in their dtype), so
    the new file has this version's code and metadata (versions, ``optional_inputs``); metadata
    entries this version does not write itself (training summary, ...) are kept.

    Args:
        source: a model file written by :func:`export_model`, of any earlier version.
        target: the file to write; to replace ``source``, write to
            :func:`spinmultinet_ase.outputs.atomic_path` of it.
    """
    loaded = load_model(source)
    model = model_from_state(loaded.metadata["model_config"], loaded.module.state_dict())
    renewed = model_metadata(model)
    kept = {key: value for key, value in loaded.metadata.items() if key not in renewed}
    export_model(model, target, kept)
