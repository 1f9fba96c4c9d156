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


def test_frame_runs_are_named_by_id_and_variant(frames_file):
    runs = study.planned_runs(
        ["--variant", "filled-pulay", "filled", "--frames", str(frames_file), "b", "a"]
    )
    assert [run.name for run in runs] == [
        "b-filled-pulay",
        "b-filled",
        "a-filled-pulay",
        "a-filled",
    ]


def test_the_test_cell_runs_keep_the_names_of_the_recorded_lines():
    """A rerun of the default command skips every FM test-cell run already in
    bias_release.jsonl: the FeO FM cell in every variant."""
    recorded = {json.loads(line)["name"] for line in study.OUT.read_text().splitlines()}
    runs = study.planned_runs([])
    assert [run.name for run in runs] == [f"FeO-FM-{variant}" for variant in study.VARIANTS]
    assert {name for name in recorded if name.startswith("FeO-FM-")} <= {run.name for run in runs}
    assert [run.name for run in study.planned_runs(["CoO", "filled-pulay"])] == [
        "CoO-FM-filled-pulay"
    ]


@pytest.mark.parametrize(
    "argv",
    [["FeO", "AFM-II", "filled-msr1", "offaxis-msr1"], ["AFM-II", "filled-msr1", "offaxis-msr1"]],
)
def test_the_afm2_test_cell_is_the_fm_cell_with_alternating_moments(argv):
    """The AFM-II test cell: the FM cell's geometry, the two Fe moments of opposite sign, so
    the bias targets the opposite spin channel on each."""
    runs = study.planned_runs(argv)
    assert [run.name for run in runs] == ["FeO-AFM-II-filled-msr1", "FeO-AFM-II-offaxis-msr1"]
    fm = study.planned_runs(["FeO", "FM", "filled"])[0].atoms
    for run in runs:
        atoms = run.atoms
        np.testing.assert_allclose(atoms.cell.array, fm.cell.array, atol=1e-12)
        np.testing.assert_allclose(atoms.positions, fm.positions, atol=1e-12)
        moments = atoms.get_initial_magnetic_moments()
        iron = [a for a, symbol in enumerate(atoms.get_chemical_symbols()) if symbol == "Fe"]
        assert len(iron) == 2 and moments[iron[0]] == -moments[iron[1]] != 0.0
        np.testing.assert_allclose(np.abs(moments), fm.get_initial_magnetic_moments())
        _, bias = study.labeller_start(atoms)
        assert sorted(target.spin for target in bias.targets.values()) == [0, 1]


@pytest.mark.parametrize(
    "argv",
    [
        ["FeO", "filled-msr1", "AFM-II"],
        ["FeO", "AFM-I", "filled"],
        ["AFM-II", "FeO", "filled"],
    ],
)
def test_a_test_cell_command_line_out_of_order_is_refused(argv):
    with pytest.raises(SystemExit) as stopped:
        study.planned_runs(argv)
    assert stopped.value.code == 2


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


@pytest.mark.parametrize("ordering", ["FM", "AFM-II"])
def test_the_off_axis_start_biases_the_a1g_of_another_body_diagonal(ordering):
    """offaxis-msr1 biases the same spins, about a body diagonal n' other than the frame's
    axis n: its a1g holds |P2(n·n')|² = 1/9 of the frame's a1g, the rest lies in e_g'."""
    work, labeller_bias = study.labeller_start(
        study.planned_runs(["FeO", ordering, "filled"])[0].atoms
    )
    axis, own = study.variant_bias(work, study.VARIANTS["filled-msr1"])
    other, bias = study.variant_bias(work, study.VARIANTS["offaxis-msr1"])
    np.testing.assert_allclose(np.abs(3.0 * other), np.sqrt(3.0))
    assert abs(float(other @ axis)) == pytest.approx(1.0 / 3.0)
    assert bias.targets.keys() == own.targets.keys() == labeller_bias.targets.keys()
    for a, target in bias.targets.items():
        mine = labeller_bias.targets[a]
        assert target.spin == own.targets[a].spin == mine.spin
        np.testing.assert_allclose(own.targets[a].projector, mine.projector, atol=1e-12)
        legendre = (3.0 * float(other @ axis) ** 2 - 1.0) / 2.0
        assert np.trace(target.projector @ mine.projector) == pytest.approx(legendre**2)
        assert legendre**2 == pytest.approx(1.0 / 9.0)


def test_other_axis_is_never_the_axis_itself():
    for n in study.BODY_DIAGONALS:
        for sign in (1.0, -1.0):
            assert abs(float(study.other_axis(sign * n) @ n)) == pytest.approx(1.0 / 3.0)


def test_the_msr1_variants_run_the_labeller_s_feo_and_coo_settings_and_pulay_feo_s_earlier_ones():
    from spinmultinet_ase.dft.orbital_bias import SCF_KEYWORDS

    for name in ("filled-msr1", "offaxis-msr1"):
        assert study.VARIANTS[name].keywords == SCF_KEYWORDS["FeO"] == SCF_KEYWORDS["CoO"]
    pulay = study.VARIANTS["filled-pulay"].keywords
    assert pulay["mixer"]["backend"] == "pulay" and pulay != SCF_KEYWORDS["FeO"]
