"""Bad input to the command line and the training config: exit code 2 and one line on stderr
that names the culprit, never a traceback, a hang or an overwritten file (property-based)."""

from __future__ import annotations

import math
import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spinmultinet_ase.cli import main

QUICK = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# A valid config: every example changes one key of it.
VALID = {
    "data": {"path": "frames.extxyz", "validation_fraction": 0.1, "test_fraction": 0.1},
    "model": {"channels": 8, "spin_channels": 8, "num_layers": 1, "cutoff": 4.0},
    "loss": {"kind": "huber", "forces": 1.0},
    "optim": {"max_epochs": 3, "batch_size": 2, "learning_rate": 0.01, "ema_decay": 0.99},
    "output_dir": "run",
    "dtype": "float64",
    "num_threads": 1,
}


def _negative_or_zero() -> st.SearchStrategy[float]:
    return st.floats(max_value=0.0, allow_nan=False, allow_infinity=False)


def _outside_unit_interval() -> st.SearchStrategy[float]:
    finite = {"allow_nan": False, "allow_infinity": False}
    return st.one_of(st.floats(min_value=1.0, **finite), st.floats(max_value=-1e-9, **finite))


_NOT_A_NUMBER = st.one_of(
    st.text(max_size=6),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)

# (section, key) -> values that are physically or logically impossible for it
OUT_OF_RANGE = {
    ("optim", "max_epochs"): st.integers(max_value=0),
    ("optim", "batch_size"): st.integers(max_value=0),
    ("optim", "learning_rate"): _negative_or_zero(),
    ("optim", "max_minutes"): _negative_or_zero(),
    ("optim", "ema_decay"): _outside_unit_interval(),
    ("optim", "early_stopping_patience"): st.integers(max_value=0),
    ("data", "validation_fraction"): _outside_unit_interval(),
    ("data", "guess_rescale"): _outside_unit_interval(),
    ("model", "cutoff"): _negative_or_zero(),
    ("model", "channels"): st.integers(max_value=0),
    ("model", "num_layers"): st.integers(max_value=0),
    ("model", "full_moment"): _negative_or_zero(),
    ("loss", "forces"): st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
    ("loss", "huber_delta"): _negative_or_zero(),
    ("loss", "kind"): st.text(max_size=6).filter(lambda v: v not in ("mse", "huber")),
    ("", "num_threads"): st.integers(max_value=0),
    ("", "dtype"): st.text(max_size=8).filter(lambda v: v not in ("float32", "float64")),
}
NUMERIC = [key for key in OUT_OF_RANGE if key[1] not in ("kind", "dtype")]


@st.composite
def bad_configs(draw) -> tuple[dict, str]:
    """A config with one bad entry, and the key the message must name."""
    config = yaml.safe_load(yaml.safe_dump(VALID))
    kind = draw(st.sampled_from(["range", "type", "unknown"]))
    if kind == "unknown":
        section = draw(st.sampled_from(["", "data", "model", "loss", "optim"]))
        known = _fields(section)
        key = draw(st.from_regex(r"[a-z_]{1,12}", fullmatch=True).filter(lambda k: k not in known))
        (config.setdefault(section, {}) if section else config)[key] = 1
        return config, repr(key)
    section, key = draw(st.sampled_from(sorted(OUT_OF_RANGE) if kind == "range" else NUMERIC))
    value = draw(OUT_OF_RANGE[(section, key)] if kind == "range" else _NOT_A_NUMBER)
    (config.setdefault(section, {}) if section else config)[key] = value
    return config, f"{section}.{key}" if section else key


def _fields(section: str) -> set[str]:
    from dataclasses import fields

    from spinmultinet_ase.train import config

    classes = {
        "": config.TrainConfig,
        "data": config.DataConfig,
        "model": config.ModelConfig,
        "loss": config.LossConfig,
        "optim": config.OptimConfig,
    }
    return {f.name for f in fields(classes[section])}


def _one_error_line(capsys, command: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"spinmultinet {command}: error: "), lines[0]
    return lines[0]


@QUICK
@given(case=bad_configs())
def test_a_bad_config_is_one_line_naming_the_key(case, tmp_path, monkeypatch, capsys):
    config, key = case
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["train", str(path)]) == 2
    line = _one_error_line(capsys, "train")
    assert key in line, (key, line)
    assert not (tmp_path / "run").exists()  # rejected before anything was created


@QUICK
@given(text=st.text(alphabet=":-[]{}\"'#&*!|>%@ \n\tab1.", max_size=40))
def test_malformed_yaml_is_one_line(text, tmp_path, monkeypatch, capsys):
    """Any text: a YAML syntax error, a config that is not a mapping, or unknown keys."""
    monkeypatch.chdir(tmp_path)  # no data here: a text that is a valid config fails on that
    path = tmp_path / "config.yaml"
    path.write_text(text)
    capsys.readouterr()
    assert main(["train", str(path)]) == 2
    _one_error_line(capsys, "train")


def _number(value: float) -> str:
    return repr(float(value))


_BAD_POSITIVE = st.one_of(_negative_or_zero(), st.sampled_from([math.nan, math.inf]))
_BAD_COUNT = st.integers(max_value=0)
_BAD_SUPERCELL = st.lists(st.integers(-2, 2), min_size=3, max_size=3).filter(
    lambda v: v[0] * v[1] * v[2] < 1
)

# command -> (arguments around the bad option, option, strategy of bad values, pattern the
# message must contain)
BAD_OPTIONS = [
    (["md", "NiO"], "--temperature", st.floats(max_value=-1e-9), r"temperature"),
    (["md", "NiO", "--ensemble", "npt"], "--temperature", st.just(0.0), r"temperature"),
    (["md", "NiO"], "--steps", _BAD_COUNT, r"steps"),
    (["md", "NiO"], "--timestep", _BAD_POSITIVE, r"time step|timestep"),
    (["md", "NiO"], "--interval", _BAD_COUNT, r"interval"),
    (["md", "NiO", "--interval", "10"], "--steps", st.integers(1, 9), r"not enough"),
    (["md", "NiO"], "--pressure", st.floats(allow_nan=False).filter(bool), r"pressure"),
    (["md", "NiO"], "--seed", st.integers(max_value=-1), r"seed"),
    (["relax", "NiO"], "--fmax", _BAD_POSITIVE, r"fmax"),
    (["relax", "NiO"], "--steps", _BAD_COUNT, r"steps"),
    (
        ["relax", "NiO", "--fixed-cell"],
        "--pressure",
        st.floats(allow_nan=False).filter(bool),
        r"pressure",
    ),
    (["relax", "NiO"], "--supercell", _BAD_SUPERCELL, r"supercell"),
    (["relax", "NiO"], "--magnitudes", st.floats(max_value=-1e-9), r"magnitude"),
    (["phonons", "NiO"], "--displacement", _BAD_POSITIVE, r"displacement"),
    (["phonons", "NiO"], "--supercell", _BAD_SUPERCELL, r"supercell"),
    (["phonons", "NiO"], "--phonon-supercell", _BAD_SUPERCELL, r"--phonon-supercell"),
    (["phonons", "NiO"], "--fmax", _BAD_POSITIVE, r"fmax"),
    (["phonons", "NiO"], "--orderings", st.text("XYZ-", min_size=1, max_size=5), r"ordering"),
    (["structures", "frames.extxyz"], "--seed", st.integers(max_value=-1), r"seed"),
    (
        ["structures", "frames.extxyz"],
        "--materials",
        st.text("XYZQ", min_size=1, max_size=4),
        r"no reference structures",
    ),
    (["train", "config.yaml"], "--max-epochs", _BAD_COUNT, r"--max-epochs"),
    (["scan", "NiO", "--monte-carlo"], "--monte-carlo-sweeps", _BAD_COUNT, r"--monte-carlo-sweeps"),
    (["export", "missing.ckpt", "out.pt"], "--dtype", st.text("abc", max_size=4), r"--dtype"),
    (["md", "NiO"], "--steps", st.text("x.e", min_size=1, max_size=3), r"--steps"),
]


def _as_arguments(option: str, value) -> list[str]:
    if option.endswith("supercell"):
        return [option, *map(str, value)]
    if option == "--magnitudes":
        return [option, f"Ni={_number(value)}"]
    if isinstance(value, float):
        return [f"{option}={_number(value)}"]  # "=": argparse would take "-inf" for an option
    return [f"{option}={value}"]


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=st.sampled_from(BAD_OPTIONS), data=st.data())
def test_every_command_refuses_bad_options_in_one_line(case, data, tmp_path, monkeypatch, capsys):
    command, option, values, pattern = case
    monkeypatch.chdir(tmp_path)
    argv = [*command, *_as_arguments(option, data.draw(values, label=option))]
    if command[0] in ("md", "relax", "phonons", "scan"):  # a bad option is refused before this
        argv += ["--model", str(tmp_path / "missing.pt"), "--quiet"]
    capsys.readouterr()
    assert main(argv) == 2
    line = _one_error_line(capsys, command[0])
    assert re.search(pattern, line, re.IGNORECASE), (argv, line)


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "missing.yaml"],
        ["train", "."],
        ["export", "missing.ckpt", "out.pt"],
        ["export", "frames.extxyz", "out.pt"],  # not a checkpoint
        ["evaluate", "missing.pt", "frames.extxyz"],
        ["yardsticks", "missing.extxyz", "out.json"],
        ["yardsticks", "config.yaml", "out.json"],  # not a structure file
        ["model-card", "missing_run", "card"],
        ["md", "missing.extxyz", "--model", "missing.pt"],
        ["relax", "config.yaml", "--model", "missing.pt"],
        ["label", "missing.extxyz", "out.extxyz"],
        ["label", "config.yaml", "out.extxyz"],  # not a structure file
        ["label", "frames.extxyz", "out.extxyz"],  # not an extxyz file
        ["data-card", "missing_data"],
    ],
)
def test_missing_and_unreadable_files_are_one_line(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "frames.extxyz").write_text("not\nan extxyz file\n")
    (tmp_path / "config.yaml").write_text("optim: {max_epochs: 2}\n")
    assert main(argv) == 2
    _one_error_line(capsys, argv[0])
    assert not (tmp_path / "out.pt").exists() and not (tmp_path / "out.json").exists()


@pytest.mark.parametrize(
    ("argv", "output"),
    [
        (["structures", "{}"], "frames.extxyz"),
        (["md", "NiO", "--output-dir", "{}"], "md/md.json"),
        (["relax", "NiO", "--output", "{}"], "relaxed.extxyz"),
        (["phonons", "NiO", "--output-dir", "{}"], "ph/phonons.json"),
        (["yardsticks", "frames.extxyz", "{}"], "table.json"),
        (["evaluate", "missing.pt", "frames.extxyz", "--output-dir", "{}"], "ev/evaluation.json"),
        (["scan", "NiO", "--output-dir", "{}"], "scan/scan.json"),
        (["model-card", "missing_run", "{}"], "card/metrics.json"),
        (["data-card", "{}"], "data/README.md"),
    ],
)
def test_an_existing_result_is_not_overwritten_unasked(argv, output, tmp_path, capsys):
    """Refused before any work (the model given does not exist: nothing runs)."""
    result = tmp_path / output
    result.parent.mkdir(exist_ok=True)
    result.write_text("an earlier result\n")
    into_folder = "--output-dir" in argv or argv[0] in ("model-card", "data-card")
    target = result.parent if into_folder else result
    argv = [str(target) if a == "{}" else a for a in argv]
    if argv[0] in ("md", "relax", "phonons", "scan"):
        argv += ["--model", str(tmp_path / "missing.pt")]
    assert main(argv) == 2
    line = _one_error_line(capsys, argv[0])
    assert "exists already; pass --overwrite" in line
    assert result.read_text() == "an earlier result\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "not_a_model.pt", "not_a_model.pt", "--output-dir", "out"],
        ["md", "NiO", "--output-dir", "out", "--steps", "10", "--model", "not_a_model.pt"],
        [
            "relax",
            "NiO",
            "--output",
            "out/r.extxyz",
            "--trajectory",
            "out/r.traj",
            "--model",
            "not_a_model.pt",
        ],
        ["phonons", "NiO", "--output-dir", "out", "--no-relax", "--model", "not_a_model.pt"],
        ["scan", "NiO", "--output-dir", "out", "--model", "not_a_model.pt"],
        ["model-card", ".", "out"],  # a folder that is no training run
    ],
)
def test_a_bad_model_leaves_no_output_behind(argv, tmp_path, monkeypatch, capsys):
    """The model is loaded before any output folder is made."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not_a_model.pt").write_text("not a model\n")
    assert main(argv) == 2
    _one_error_line(capsys, argv[0])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [["phonons", "NiO"], ["scan", "NiO"]])
def test_an_empty_orderings_list_is_refused(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # argparse reads "--orderings=--" as an empty list
    argv = [*command, "--orderings=--", "--model", str(tmp_path / "missing.pt")]
    assert main(argv) == 2
    assert "--orderings" in _one_error_line(capsys, command[0])


def test_monte_carlo_sweeps_without_the_monte_carlo_is_refused(tmp_path, monkeypatch, capsys):
    """``--monte-carlo-sweeps`` alone would be ignored: refused before any model is loaded."""
    monkeypatch.chdir(tmp_path)
    assert main(["scan", "NiO", "--monte-carlo-sweeps", "100", "--model", "missing.pt"]) == 2
    assert "--monte-carlo-sweeps needs --monte-carlo" in _one_error_line(capsys, "scan")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["scan", "relax", "md", "phonons"])
@pytest.mark.parametrize("models", [["a.pt"], ["a.pt", "b.pt"]], ids=["one", "committee"])
def test_a_structure_after_the_model_files_is_one_line_naming_the_fix(
    command, models, tmp_path, monkeypatch, capsys
):
    """``--model`` takes every argument after it, the structure too: the error says so and
    how to give it, before any model is loaded or output made."""
    monkeypatch.chdir(tmp_path)
    assert main([command, "--model", *models, "NiO"]) == 2
    line = _one_error_line(capsys, command)
    assert line.startswith(f"spinmultinet {command}: error: no structure given: --model takes")
    assert f"(here {' '.join(models)} NiO)" in line
    assert f"(spinmultinet {command} NiO --model a.pt b.pt)" in line
    assert "after -- (... --model a.pt b.pt -- NiO)" in line
    assert not list(tmp_path.iterdir())


def test_a_missing_structure_without_model_files_is_argparses_line(capsys):
    assert main(["scan", "--quiet"]) == 2
    line = _one_error_line(capsys, "scan")
    assert "the following arguments are required: target" in line
