"""Save and load deployable models, with their metadata, in one of two formats chosen by the
file's suffix:

* ``.pt2``: an AOTInductor package (:mod:`spinmultinet_ase.aoti`), metadata in the package's
  metadata map; compiled for this machine's CPU, one dtype, one structure per call;
* any other name (conventionally ``.pt``): TorchScript, metadata in ``_extra_files``;
  portable, also loaded by the LAMMPS plugin.

Callers go through this module only. TorchScript is deprecated in torch >= 2.10 and warns
about it; those warnings are ours to handle, not our users', so they are silenced here.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
import zipfile
from collections.abc import Mapping
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
AOTI_SUFFIX = ".pt2"  # the suffix of AOTInductor packages; any other file is TorchScript
# Inputs the model reads when present; files written before an input existed lack it here.
OPTIONAL_INPUTS = (keys.ENERGY_MASK,)
# The TorchScript methods besides ``forward`` that run the model's stages one by one
# (:class:`SpinMultiNet`, LAMMPS's per-layer ghost exchange) and walk back through them by
# recomputation (the last four); files written before lack them.
STAGE_METHODS = (
    "edge_features",
    "embed",
    "interaction",
    "readout",
    "interaction_messages",
    "interaction_update",
    "interaction_gradients",
    "edge_features_gradient",
)
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
        "outputs": list(keys.OUTPUTS),
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
    """Compile ``model`` and save it with its metadata, in the format of ``path``'s suffix.

    Args:
        model: an eager :class:`SpinMultiNet` (its current dtype is the file's dtype);
            unchanged.
        path: output file: ``*.pt2`` for an AOTInductor package (compiled for this machine,
            which takes minutes), any other name (conventionally ``*.pt``) for TorchScript.
        extra: more JSON-serialisable metadata (training summary, data hash, ...).
    """
    metadata = model_metadata(model, extra)
    if is_aoti_path(path):
        from spinmultinet_ase import aoti

        metadata["inputs"] = list(aoti.INPUTS)  # in the order the package takes them
        program = aoti.trace_program(model)
        aoti.compile_package(program, path, {METADATA_FILE: json.dumps(metadata)})
    else:
        _export_torchscript(model, path, metadata)


def is_model_file(path: str | Path) -> bool:
    """Whether ``path`` is a TorchScript file with SpinMultiNet metadata (by its contents)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith(f"/extra/{METADATA_FILE}") for name in archive.namelist())


def is_aoti_path(path: str | Path) -> bool:
    """Whether ``path`` names an AOTInductor package (by its suffix)."""
    return Path(path).suffix == AOTI_SUFFIX


def _export_torchscript(model: SpinMultiNet, path: str | Path, metadata: dict[str, Any]) -> None:
    from e3nn.util.jit import compile as e3nn_compile

    with _quiet_torchscript():  # a copy: scripting replaces submodules in place
        scripted = e3nn_compile(copy.deepcopy(model).eval())
        torch.jit.save(scripted, str(path), _extra_files={METADATA_FILE: json.dumps(metadata)})


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
        path: the model file (``.pt2``: an AOTInductor package, else TorchScript).
        device: where to put the model (a package runs on the device it was compiled for).
        dtype: cast the model to this floating dtype (default: the dtype it was saved in; a
            package runs only in that one).

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: not a model file of its suffix's format, not a SpinMultiNet model, or
            a format version this package cannot read; a package asked for another dtype or
            device than it was compiled for.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    if is_aoti_path(path):
        return _load_package(path, torch.device(device), dtype)
    return _load(str(path), str(path), device, dtype)


def _load_package(path: Path, device: torch.device, dtype: torch.dtype | None) -> LoadedModel:
    from spinmultinet_ase import aoti

    try:
        module = aoti.read_package(path)
    except (RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelFileError(f"{path} is not an AOTInductor package ({first})") from None
    package_metadata = module.metadata()
    if METADATA_FILE not in package_metadata:
        raise ModelFileError(f"{path} is an AOTInductor package but not a SpinMultiNet model")
    metadata = json.loads(package_metadata[METADATA_FILE])
    _check_metadata(metadata, str(path))
    metadata = _upgrade_metadata(metadata)
    compiled = package_metadata["AOTI_DEVICE_KEY"]
    if dtype is not None and str(dtype).removeprefix("torch.") != metadata["dtype"]:
        raise ModelFileError(
            f"{path} is compiled for {metadata['dtype']} and runs in nothing else; use its "
            f"dtype or a TorchScript model (.pt)"
        )
    if device.type != compiled:
        raise ModelFileError(
            f"{path} is compiled for {compiled} and runs there only, not on {device}; "
            "compile a package there or use a TorchScript model (.pt)"
        )
    return LoadedModel(module=module, metadata=metadata)


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


def reexport_model(
    source: str | Path,
    target: str | Path,
    dtype: torch.dtype | None = None,
    training: Mapping[str, Any] | None = None,
) -> None:
    """Write the model of ``source`` again with this version's export code.

    The network is rebuilt from the config and weights stored in the file (in ``dtype``,
    default their own), so the new file has this version's code and metadata (versions,
    ``optional_inputs``); metadata entries this version does not write itself (training
    summary, ...) are kept.

    Args:
        source: a TorchScript model file written by :func:`export_model`, of any earlier
            version.
        target: the file to write (``*.pt2``: an AOTInductor package of the same model); to
            replace ``source``, write to :func:`spinmultinet_ase.outputs.atomic_path` of it.
        training: entries to add to the training summary (``metadata["training"]``): records
            the file predates, such as ``trained_materials``.

    Raises:
        ModelFileError: ``source`` is an AOTInductor package, or its training summary already
            has an entry of ``training`` (added, never replaced).
    """
    if is_aoti_path(source):
        raise ModelFileError(
            f"{source}: an AOTInductor package holds no weights to re-export; export from "
            "the model's checkpoint or TorchScript file (.pt)"
        )
    loaded = load_model(source, dtype=dtype)
    model = model_from_state(loaded.metadata["model_config"], loaded.module.state_dict())
    renewed = model_metadata(model)
    kept = {key: value for key, value in loaded.metadata.items() if key not in renewed}
    if training:
        summary = kept.get("training", {})
        present = sorted(set(training) & set(summary))
        if present:
            raise ModelFileError(f"{source}: its training summary has {', '.join(present)} already")
        kept["training"] = {**summary, **training}
    export_model(model, target, kept)
