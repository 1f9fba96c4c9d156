"""Packaging: every subpackage is listed for the wheel, and the version has one source."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

import spinmultinet_ase

ROOT = Path(__file__).parents[1]


def test_every_subpackage_is_packaged():
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {p for p in find_packages(ROOT, include=["spinmultinet_ase*"])} | {
        "spinmultinet_ase.models"
    }
    assert listed == found


def test_version_is_single_sourced():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" in project["dynamic"] and "version" not in project
    assert spinmultinet_ase.__version__.count(".") == 2


def test_cli_help_for_every_subcommand(capsys):
    from spinmultinet_ase.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001
    assert {"label", "structures", "export", "train", "evaluate", "scan", "md", "phonons"} <= set(
        commands
    )
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: spinmultinet" in capsys.readouterr().out


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory):
    """A real wheel of the package (not the editable install), built and unpacked.

    Built from a fresh copy of the sources: an in-tree build would reuse ``build/`` and could
    ship files that no longer exist or are no longer packaged.
    """
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"

    def skip(directory: str, names: list[str]) -> set[str]:
        top_level = {"build", "dist", "data", "runs"} if Path(directory) == ROOT else set()
        unwanted = {n for n in names if n in top_level or n.endswith(".egg-info")}
        return unwanted | {n for n in names if n.startswith(".") or n == "__pycache__"}

    shutil.copytree(ROOT, source, ignore=skip)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            "-q",
        ],
        check=True,
    )
    (wheel,) = out.glob("spinmultinet_ase-*.whl")
    target = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def test_wheel_carries_every_shipped_model(unpacked_wheel):
    shipped = sorted(p.relative_to(ROOT) for p in (ROOT / "models").glob("*/*") if p.is_file())
    packaged = unpacked_wheel / "spinmultinet_ase"
    for path in shipped:
        assert (packaged / path).is_file(), f"{path} is missing from the wheel"
    assert (packaged / "models" / "__init__.py").is_file()


def test_default_model_loads_from_the_wheel_in_any_directory(unpacked_wheel, tmp_path):
    from spinmultinet_ase.models import DEFAULT_MODEL

    if not (ROOT / "models" / DEFAULT_MODEL / "model.pt").is_file():
        pytest.skip(f"the default model {DEFAULT_MODEL} has not shipped yet")
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import spinmultinet_ase; "
        "assert spinmultinet_ase.__file__.startswith(sys.argv[1]), spinmultinet_ase.__file__; "
        "from spinmultinet_ase import SpinMultiNetCalculator; "
        "from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered; "
        "atoms = rocksalt_ordered('NiO', 'AFM-II'); atoms.calc = SpinMultiNetCalculator(); "
        "print(atoms.get_potential_energy())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(unpacked_wheel)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split()[-1]) < 0
