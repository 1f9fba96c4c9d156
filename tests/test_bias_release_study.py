"""scripts/bias_release_study.py: which runs a command line asks for (no SCF is run)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.io import write

from spinmultinet_ase.dft.protocol import DEFAULT_PROTOCOL
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered

pytest.importorskip("gpaw")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "bias_release_study.py"
SPEC = importlib.util.spec_from_file_location("bias_release_study", SCRIPT)
study = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(study)


@pytest.fixture(scope="module")
def frames_file(tmp_path_factory) -> Path:
    """CoO frames with ids a (AFM-II), b (FM), c (AFM-I) and an MnO frame m."""
    frames = []
    for structure_id, formula, ordering in (
        ("a", "CoO", "AFM-II"),
        ("b", "CoO", "FM"),
        ("c", "CoO", "AFM-I"),
        ("m", "MnO", "AFM-II"),
    ):
        atoms = rocksalt_ordered(formula, ordering)
        atoms.info["structure_id"] = structure_id
        frames.append(atoms)
    path = tmp_path_factory.mktemp("frames") / "frames.extxyz"
    write(path, frames)
    return path


def test_frames_are_picked_by_structure_id_in_the_order_asked(frames_file):
    picked = study.file_frames(frames_file, ["c", "a"])
    for atoms, ordering in zip(picked, ("AFM-I", "AFM-II"), strict=True):
        expected = rocksalt_ordered("CoO", ordering)
        np.testing.assert_allclose(atoms.positions, expected.positions, atol=1e-8)
        np.testing.assert_allclose(
            atoms.get_initial_magnetic_moments(), expected.get_initial_magnetic_moments()
        )


def test_frame_runs_are_named_by_id_and_variant_with_the_protocols_scf_limit(frames_file):
    runs = study.planned_runs(
        ["--variant", "filled-pulay", "filled", "--frames", str(frames_file), "b", "a"]
    )
    assert [run.name for run in runs] == [
        "b-filled-pulay",
        "b-filled",
        "a-filled-pulay",
        "a-filled",
    ]
    assert {run.max_scf_steps for run in runs} == {DEFAULT_PROTOCOL.max_scf_iterations}


def test_the_test_cell_runs_keep_the_names_of_the_recorded_lines():
    """A rerun of the default command skips every run already in bias_release.jsonl."""
    recorded = [json.loads(line)["name"] for line in study.OUT.read_text().splitlines()]
    runs = study.planned_runs([])
    assert {run.name for run in runs} == set(recorded)
    assert {run.max_scf_steps for run in runs} == {study.TEST_CELL_SCF_STEPS}
    assert [run.name for run in study.planned_runs(["CoO", "filled-pulay"])] == [
        "CoO-FM-filled-pulay"
    ]


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["a", "x"], "frames.extxyz: no frame with structure_id 'x'"),
        (["m"], "frames.extxyz: m: MnO: no orbital-bias start"),
    ],
)
def test_a_frame_that_cannot_be_run_stops_the_script_with_one_line(frames_file, ids, message):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    command = [sys.executable, str(SCRIPT), "--variant", "filled", "--frames"]
    done = subprocess.run(
        [*command, str(frames_file), *ids], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert message in done.stderr


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="missing.extxyz: no such file"):
        study.file_frames(tmp_path / "missing.extxyz", ["a"])


def test_an_id_given_to_two_frames_is_refused(tmp_path, frames_file):
    twice = tmp_path / "twice.extxyz"
    twice.write_text(frames_file.read_text() * 2)
    with pytest.raises(ValueError, match="2 frames with structure_id 'a'"):
        study.file_frames(twice, ["a"])
