"""``spinmultinet pool``: every K-th frame of MD trajectories as active-learning candidates,
with the runs' spin input and ids that name the run and frame; bad input is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read, write
from ase.io.trajectory import Trajectory

from spinmultinet_ase.cli import main
from spinmultinet_ase.export import export_model
from spinmultinet_ase.testing.models import TINY_CONFIG, random_model
from spinmultinet_ase.train.active import _read_pool

SPECIES = ("O", "Mn", "Ni")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    """Two short NVE runs of a tiny model (NiO AFM-II and MnO FM), each in its own folder."""
    folder = tmp_path_factory.mktemp("md")
    model = folder / "tiny.pt"
    export_model(random_model(seed=3, species=SPECIES, **TINY_CONFIG), model)
    paths = []
    for target, ordering in (("NiO", "AFM-II"), ("MnO", "FM")):
        out = folder / f"md_{target}"
        argv = ["md", target, "--ordering", ordering, "--steps", "10", "--interval", "2"]
        argv += ["--model", str(model), "--quiet", "--output-dir", str(out)]
        assert main(argv) == 0
        paths.append(out / "md.traj")
    return paths


def test_pool_keeps_every_kth_frame_with_its_moments_and_a_unique_id(runs, tmp_path, capsys):
    output = tmp_path / "pool.extxyz"
    argv = ["pool", *map(str, runs), "--every", "2", "--output", str(output)]
    assert main(argv) == 0
    assert "wrote 6 structures" in capsys.readouterr().out
    pool = read(output, ":")
    expected = []
    for path in runs:
        frames = read(path, ":")
        assert len(frames) == 6  # steps 0, 2, ..., 10
        expected += [(f"{path.parent.name}-{i}", frames[i]) for i in range(0, len(frames), 2)]
    assert [a.info["structure_id"] for a in pool] == [sid for sid, _ in expected]
    for atoms, (_, frame) in zip(pool, expected, strict=True):
        assert atoms.get_chemical_symbols() == frame.get_chemical_symbols()
        np.testing.assert_allclose(atoms.positions, frame.positions, atol=1e-7)
        np.testing.assert_allclose(atoms.cell[:], frame.cell[:], atol=1e-7)
        moments = atoms.get_initial_magnetic_moments()
        np.testing.assert_allclose(moments, frame.get_initial_magnetic_moments())
        assert atoms.calc is None  # the model's energies and forces are not labels
    nio = pool[0].get_initial_magnetic_moments()
    assert sorted(set(np.sign(nio))) == [-1.0, 0.0, 1.0]  # the AFM spin input, kept
    assert [a.info["structure_id"] for a in _read_pool(str(output))] == [sid for sid, _ in expected]

    assert main(argv) == 2  # an existing output is not replaced unasked
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--overwrite" in error, error
    assert main([*argv[:-2], "--every", "5", "--output", str(output), "--overwrite"]) == 0
    ids = [a.info["structure_id"] for a in read(output, ":")]
    assert ids == ["md_NiO-0", "md_NiO-5", "md_MnO-0", "md_MnO-5"]
    skipped = [*argv[:-2], "--every", "2", "--start", "3", "--output", str(output), "--overwrite"]
    assert main(skipped) == 0
    pool = read(output, ":")
    ids = [a.info["structure_id"] for a in pool]
    assert ids == ["md_NiO-3", "md_NiO-5", "md_MnO-3", "md_MnO-5"]
    np.testing.assert_allclose(pool[0].positions, read(runs[0], 3).positions, atol=1e-7)


def test_bad_pool_input_is_one_line_and_exit_2(runs, tmp_path, capsys):
    bare = tmp_path / "bare.traj"
    nickel = bulk("Ni", "fcc", a=3.52)
    nickel.set_initial_magnetic_moments(None)  # bulk gives Ni a moment
    with Trajectory(bare, "w") as writer:
        writer.write(nickel)
    text = tmp_path / "text.traj"
    write(text, bulk("Ni", "fcc", a=3.52), format="extxyz")
    output = tmp_path / "pool.extxyz"
    for inputs, options, message in (
        ([tmp_path / "missing.traj"], [], "no trajectory at"),
        ([bare], [], "has no initial_magmoms"),
        ([text], [], "cannot read"),
        ([runs[0], runs[0]], [], "structure ids would repeat"),
        (runs, ["--every", "0"], "--every must be a whole number"),
        (runs, ["--start", "-1"], "--start must be a whole number >= 0"),
        (runs, ["--start", "6"], "no frames from frame 6 on"),
    ):
        assert main(["pool", *map(str, inputs), *options, "--output", str(output)]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and message in error, error
        assert not output.exists()
