"""Packaging: every subpackage is listed for the wheel, and the version has one source."""

from __future__ import annotations

import tomllib
from pathlib import Path

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
    import pytest

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
