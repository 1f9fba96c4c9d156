"""TorchScript export: agreement with the eager model, metadata, CLI, and bad files."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest
import torch

from spinmultinet_ase import __version__
from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.checkpoint import save_checkpoint
from spinmultinet_ase.cli import main
from spinmultinet_ase.export import (
    METADATA_FILE,
    REQUIRED_METADATA,
    ModelFileError,
    _quiet_torchscript,
    export_model,
    load_model,
    reexport_model,
)
from spinmultinet_ase.testing.models import as_loaded
from spinmultinet_ase.testing.symmetry import evaluate

# The TorchScript model runs optimised, as users run it (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("optimised_torchscript")


def test_exported_matches_eager(eager_model, exported_path, nio_afm2):
    eager = evaluate(SpinMultiNetCalculator(as_loaded(eager_model)), nio_afm2)
    exported = evaluate(SpinMultiNetCalculator(exported_path), nio_afm2)
    for key, value in eager.items():
        assert np.allclose(value, exported[key], rtol=0, atol=1e-12), key


def test_metadata(exported_path, eager_model):
    metadata = load_model(exported_path).metadata
    assert set(REQUIRED_METADATA) <= set(metadata)
    assert metadata["cutoff"] == eager_model.config.cutoff
    assert metadata["species"] == list(eager_model.config.species)
    assert metadata["spin_mode"] == "collinear"
    assert metadata["dtype"] == "float64"
    assert metadata["package_version"] == __version__
    assert metadata["units"]["energy"] == "eV"


def test_float32_close_to_float64(exported_path, nio_afm2):
    double = evaluate(SpinMultiNetCalculator(exported_path), nio_afm2)
    single = evaluate(SpinMultiNetCalculator(exported_path, dtype="float32"), nio_afm2)
    assert abs(single["energy"] - double["energy"]) < 1e-4
    assert np.allclose(single["forces"], double["forces"], atol=1e-4)


def test_no_torchscript_warnings_reach_users(eager_model, tmp_path, nio_afm2):
    """Export, load, evaluate and pickle a model: not one warning, while torch itself does warn
    about the same calls (so the check has something to catch)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_model(eager_model, tmp_path / "m.pt")
        calc = SpinMultiNetCalculator(tmp_path / "m.pt")
        nio_afm2.calc = calc
        nio_afm2.get_potential_energy()
        pickle.loads(pickle.dumps(calc.model))
    assert [str(w.message) for w in caught] == []
    with warnings.catch_warnings(), pytest.raises(DeprecationWarning, match="torch.jit.load"):
        warnings.simplefilter("error")
        torch.jit.load(str(tmp_path / "m.pt"))


def test_other_warnings_still_reach_users():
    """Only torch's TorchScript deprecation notices are hidden, not a user's own warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _quiet_torchscript():
            warnings.warn(
                "`torch.jit.script` is deprecated. Please switch", DeprecationWarning, stacklevel=1
            )
            warnings.warn("a user's deprecation", DeprecationWarning, stacklevel=1)
            warnings.warn("a user's warning", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a user's deprecation", "a user's warning"]


def test_cli_export_from_checkpoint(eager_model, tmp_path, nio_afm2):
    save_checkpoint(eager_model, tmp_path / "model.ckpt")
    assert main(["export", str(tmp_path / "model.ckpt"), str(tmp_path / "out.pt")]) == 0
    exported = evaluate(SpinMultiNetCalculator(tmp_path / "out.pt"), nio_afm2)
    eager = evaluate(SpinMultiNetCalculator(as_loaded(eager_model)), nio_afm2)
    assert abs(exported["energy"] - eager["energy"]) < 1e-12


def test_cli_export_bad_checkpoint(tmp_path, capsys):
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    torch.save({"weights": 1}, tmp_path / "other.ckpt")
    assert main(["export", str(tmp_path / "other.ckpt"), str(tmp_path / "o.pt")]) == 2
    assert "not a SpinMultiNet checkpoint" in capsys.readouterr().err


def _resave(path, out, metadata):
    """Rewrite a model file with other metadata (None: none), as a foreign tool might."""
    files = {METADATA_FILE: json.dumps(metadata)} if metadata is not None else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path))
        torch.jit.save(module, str(out), _extra_files=files)


def test_rejects_unknown_format_version(exported_path, tmp_path):
    metadata = load_model(exported_path).metadata
    _resave(exported_path, tmp_path / "future.pt", {**metadata, "format_version": 99})
    with pytest.raises(ModelFileError, match="format version 99 is not supported"):
        SpinMultiNetCalculator(tmp_path / "future.pt")


def test_rejects_missing_metadata_keys(exported_path, tmp_path):
    metadata = load_model(exported_path).metadata
    del metadata["cutoff"]
    _resave(exported_path, tmp_path / "partial.pt", metadata)
    with pytest.raises(ModelFileError, match="lacks"):
        SpinMultiNetCalculator(tmp_path / "partial.pt")


def test_rejects_torchscript_without_metadata(exported_path, tmp_path):
    _resave(exported_path, tmp_path / "bare.pt", None)
    with pytest.raises(ModelFileError, match="not a SpinMultiNet model"):
        SpinMultiNetCalculator(tmp_path / "bare.pt")


def test_rejects_non_model_file(tmp_path):
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(ModelFileError, match="not a TorchScript model file"):
        SpinMultiNetCalculator(tmp_path / "notes.pt")
    with pytest.raises(FileNotFoundError):
        SpinMultiNetCalculator(tmp_path / "missing.pt")


def test_reexport_renews_an_old_file(eager_model, tmp_path, nio_afm2):
    """A file from before ``optional_inputs`` existed, re-exported: it gains the entry, keeps
    its other metadata, and gives the same outputs to the last bit."""
    export_model(eager_model, tmp_path / "m.pt", extra={"training": {"epochs": 3}})
    metadata = load_model(tmp_path / "m.pt").metadata
    del metadata["optional_inputs"]
    _resave(tmp_path / "m.pt", tmp_path / "old.pt", {**metadata, "package_version": "0.0.1"})
    reexport_model(tmp_path / "old.pt", tmp_path / "new.pt")
    renewed = load_model(tmp_path / "new.pt").metadata
    assert renewed["optional_inputs"] == ["energy_mask"]
    assert renewed["training"] == {"epochs": 3}
    assert renewed["package_version"] == __version__
    old = evaluate(SpinMultiNetCalculator(tmp_path / "old.pt"), nio_afm2)
    new = evaluate(SpinMultiNetCalculator(tmp_path / "new.pt"), nio_afm2)
    for key, value in old.items():
        assert np.array_equal(value, new[key]), key


def test_reexport_adds_training_records_but_replaces_none(eager_model, tmp_path):
    export_model(eager_model, tmp_path / "m.pt", extra={"training": {"epochs": 3}})
    reexport_model(tmp_path / "m.pt", tmp_path / "new.pt", training={"trained_materials": {}})
    training = load_model(tmp_path / "new.pt").metadata["training"]
    assert training == {"epochs": 3, "trained_materials": {}}
    with pytest.raises(ModelFileError, match="has epochs already"):
        reexport_model(tmp_path / "m.pt", tmp_path / "again.pt", training={"epochs": 4})
