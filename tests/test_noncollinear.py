"""Non-collinear mode end to end: derivatives, spin-rotation and time-reversal symmetry, the
state helpers, export, training, evaluation and the ASE workflows with (N, 3) moments."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.fd import calculate_numerical_forces
from ase.io import read, write

from spinmultinet_ase import keys
from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.checkpoint import model_from_checkpoint, save_checkpoint
from spinmultinet_ase.cli import main
from spinmultinet_ase.export import METADATA_FILE, export_model, load_model
from spinmultinet_ase.magnetism.noncollinear import canted, random_rotation, spiral
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.spin import SpinMode
from spinmultinet_ase.testing.models import as_loaded, random_model
from spinmultinet_ase.testing.symmetry import (
    orthogonal_deviation,
    random_orthogonal,
    spin_rotation_deviation,
    time_reversal_deviation,
)
from spinmultinet_ase.train.config import config_from_dict
from spinmultinet_ase.train.trainer import Trainer
from spinmultinet_ase.workflows.md import run_md
from spinmultinet_ase.workflows.relax import relax, relaxation_report
from spinmultinet_ase.workflows.scan import run_scan

REFERENCE = Path(__file__).parents[1] / "data" / "reference.extxyz"
TINY = dict(
    species=("O", "Ni"),
    channels=4,
    spin_channels=4,
    lmax=1,
    num_layers=2,
    radial_hidden=8,
    radial_group_size=4,
    cutoff=3.5,
    full_moment=6.0,  # guesses below it: the moment size enters, magnetic forces are nonzero
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny graphs: torch's thread pool only costs time here (most on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    return random_model(seed=5, spin_mode="noncollinear", **TINY)


@pytest.fixture(scope="module")
def calc(model):
    return SpinMultiNetCalculator(as_loaded(model))


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "noncollinear.pt"
    export_model(model, path)
    return path


@pytest.fixture
def triclinic():
    """Three atoms in a small triclinic cell with random (N, 3) moments."""
    rng = np.random.default_rng(11)
    cell = np.array([[2.9, 0.1, 0.2], [0.3, 3.1, -0.1], [0.2, -0.2, 3.0]])
    atoms = Atoms("Ni2O", cell=cell, pbc=True, scaled_positions=rng.uniform(size=(3, 3)))
    atoms.set_initial_magnetic_moments(rng.normal(scale=2.0, size=(3, 3)))
    return atoms


def _energy(atoms: Atoms, calc, cell=None, moments=None) -> float:
    """The energy of a copy of ``atoms`` with its cell (atoms scaled along) or moments changed."""
    atoms = atoms.copy()
    if cell is not None:
        atoms.set_cell(cell, scale_atoms=True)
    if moments is not None:
        atoms.set_initial_magnetic_moments(moments)
    atoms.calc = calc
    return atoms.get_potential_energy()


def test_derivatives_match_finite_differences(calc, triclinic):
    """Forces (ASE's oracle), stress and magnetic forces against central differences, on a
    few components drawn with a fixed seed."""
    triclinic.calc = calc
    forces = triclinic.get_forces()
    stress = triclinic.get_stress(voigt=False)
    magnetic = calc.results[keys.MAGNETIC_FORCES]
    rng = np.random.default_rng(0)
    for atom, axis in rng.integers(0, 3, size=(3, 2)):
        numeric = calculate_numerical_forces(triclinic, 1e-4, [atom], [axis])
        assert forces[atom, axis] == pytest.approx(numeric[0, 0], rel=1e-6, abs=1e-8)
    delta, volume = 1e-5, triclinic.get_volume()
    for i, j in [(1, 1), tuple(rng.permutation(3)[:2])]:  # a diagonal and an off-diagonal one
        strain = np.zeros((3, 3))
        strain[i, j] = strain[j, i] = delta
        plus, minus = (
            _energy(triclinic, calc, cell=triclinic.cell.array @ (np.eye(3) + sign * strain))
            for sign in (1, -1)
        )
        numeric = (plus - minus) / (2 * delta * volume) / (1 if i == j else 2)
        assert stress[i, j] == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    assert np.abs(magnetic).max() > 1e-4  # a test that can fail
    moments = triclinic.get_initial_magnetic_moments()
    for atom, axis in rng.integers(0, 3, size=(3, 2)):
        step = np.zeros_like(moments)
        step[atom, axis] = 1e-4
        plus, minus = (_energy(triclinic, calc, moments=moments + s * step) for s in (1, -1))
        numeric = -(plus - minus) / 2e-4
        assert magnetic[atom, axis] == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_energy_depends_only_on_relative_spin_orientations(calc, triclinic):
    """Without spin-orbit: exact under a global spin rotation alone, a lattice rotation alone
    (proper or not) and time reversal; the angle between two spins does change the energy."""
    assert spin_rotation_deviation(calc, triclinic, random_orthogonal(1)) < 1e-10
    assert spin_rotation_deviation(calc, triclinic, random_orthogonal(2, proper=False)) < 1e-10
    assert orthogonal_deviation(calc, triclinic, random_orthogonal(3, proper=False)) < 1e-10
    assert time_reversal_deviation(calc, triclinic) < 1e-10
    triclinic.calc = calc
    energy = triclinic.get_potential_energy()
    moments = triclinic.get_initial_magnetic_moments()
    moments[0] = moments[0] @ random_orthogonal(4).T
    triclinic.set_initial_magnetic_moments(moments)
    assert abs(triclinic.get_potential_energy() - energy) > 1e-6


def test_collinear_states_give_the_collinear_model(model, triclinic):
    """With the same weights, spins ``s_i n`` along any ``n`` give the collinear model's
    energy and its moments along ``n``: the modes agree where both apply."""
    collinear = SpinMultiNetCalculator(
        as_loaded(random_model(seed=5, spin_mode="collinear", **TINY))
    )
    collinear.model.module.load_state_dict(model.state_dict())
    signed = np.array([2.5, -2.0, 0.3])
    flat = triclinic.copy()
    flat.set_initial_magnetic_moments(None)
    flat.set_initial_magnetic_moments(signed)
    flat.calc = collinear
    direction = np.array([0.48, -0.6, 0.64])
    triclinic.set_initial_magnetic_moments(SpinMode("noncollinear").ordering(signed, direction))
    triclinic.calc = SpinMultiNetCalculator(as_loaded(model))
    assert triclinic.get_potential_energy() == pytest.approx(flat.get_potential_energy(), abs=1e-12)
    expected = flat.get_magnetic_moments()[:, None] * direction
    assert np.allclose(triclinic.get_magnetic_moments(), expected, atol=1e-12)


def test_canted_and_spiral_states_have_the_asked_geometry():
    signed = np.array([3.0, -3.0, 0.0])
    axis, towards = np.array([0.0, 0.0, 2.0]), np.array([1.0, 0.0, 0.5])
    moments = canted(signed, axis, towards, 10.0)
    assert np.allclose(np.linalg.norm(moments, axis=1), [3, 3, 0])
    cosines = moments[:2] @ [0, 0, 1] / 3
    assert np.allclose(np.degrees(np.arccos(np.abs(cosines))), 10.0)
    assert np.allclose(moments.sum(axis=0), [6 * np.sin(np.radians(10)), 0, 0])

    cell = bulk("Ni", "fcc", a=3.5, cubic=True).repeat((1, 1, 4))
    sizes = np.full(len(cell), 2.0)
    normal = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)
    moments = spiral(cell, sizes, (0, 0, 1), normal)
    assert np.allclose(np.linalg.norm(moments, axis=1), 2.0)
    assert np.allclose(moments @ normal, 0.0)
    scaled = cell.get_scaled_positions()
    for i, j in [(0, 5), (3, 10)]:  # the angle between two spins: 2π Δf_z about the normal
        turn = np.degrees(np.arctan2(np.cross(moments[i], moments[j]) @ normal,
                                     moments[i] @ moments[j]))  # fmt: skip
        assert np.isclose((turn - 360 * (scaled[j, 2] - scaled[i, 2]) + 180) % 360, 180)
    with pytest.raises(ValueError, match="whole numbers"):
        spiral(cell, sizes, (0, 0, 0.5))
    rotation = random_rotation(np.random.default_rng(0))
    assert np.allclose(rotation @ rotation.T, np.eye(3)) and np.linalg.det(rotation) > 0


def test_export_round_trip_and_format_1_files(model, exported, triclinic, tmp_path):
    path = exported
    loaded = load_model(path)
    assert loaded.spin_mode == SpinMode("noncollinear")
    exported, eager = triclinic.copy(), triclinic.copy()
    exported.calc, eager.calc = (
        SpinMultiNetCalculator(loaded),
        SpinMultiNetCalculator(as_loaded(model)),
    )
    assert exported.get_potential_energy() == pytest.approx(eager.get_potential_energy(), 1e-12)
    assert np.allclose(exported.get_forces(), eager.get_forces(), atol=1e-12)
    assert np.allclose(exported.get_magnetic_moments(), eager.get_magnetic_moments(), atol=1e-12)

    # format 1 called the axial-vector model "noncollinear": the metadata decides how it is read
    old = tmp_path / "format1.pt"
    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    metadata = json.loads(extra[METADATA_FILE])
    config = {**metadata["model_config"], "spin_mode": "noncollinear"}
    metadata.update(format_version=1, spin_mode="noncollinear", model_config=config)
    torch.jit.save(module, str(old), _extra_files={METADATA_FILE: json.dumps(metadata)})
    assert load_model(old).spin_mode == SpinMode("noncollinear_soc")


def test_checkpoint_from_before_the_spin_mode_split_is_refused_with_its_fix(
    model, triclinic, tmp_path, capsys
):
    """A checkpoint whose config says ``noncollinear`` but whose weights are an axial model's
    (the name's meaning before the split) is refused in one line whose command fixes it; a
    checkpoint of today's noncollinear model loads as it is."""
    today = tmp_path / "today.ckpt"
    save_checkpoint(model, today)
    assert model_from_checkpoint(today).config.spin_mode == "noncollinear"

    axial = random_model(seed=6, spin_mode="noncollinear_soc", **TINY)
    old = tmp_path / "old run.ckpt"  # a space: the command must quote the path
    config = {**axial.config.to_dict(), "spin_mode": "noncollinear"}
    torch.save({"model_config": config, "model_state": axial.state_dict()}, old)
    assert main(["export", str(old), str(tmp_path / "old.pt")]) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "noncollinear_soc" in message
    command = shlex.split(message.split("rename it in the file with ", 1)[1])
    assert command[:2] == ["python", "-c"]
    subprocess.run([sys.executable, *command[1:]], check=True)
    rebuilt, original = triclinic.copy(), triclinic.copy()
    rebuilt.calc = SpinMultiNetCalculator(as_loaded(model_from_checkpoint(old)))
    original.calc = SpinMultiNetCalculator(as_loaded(axial))
    assert rebuilt.get_potential_energy() == original.get_potential_energy()


def test_relax_and_md_take_vector_moments(calc, exported, tmp_path):
    atoms = bulk("NiO", "rocksalt", a=4.2).repeat((1, 1, 2))
    atoms.rattle(0.05, seed=2)
    atoms.set_initial_magnetic_moments(canted([2, 0, -2, 0], [0, 0, 1], [1, 0, 0], 20.0))
    atoms.calc = calc
    relaxed, converged = relax(atoms, calc, fmax=0.05, steps=2)
    assert relaxed.get_initial_magnetic_moments().shape == (4, 3)
    assert "|moment|" in relaxation_report(atoms, relaxed, converged, 0.05)
    summary = run_md(atoms, calc, temperature_K=300, steps=2, interval=1, progress=False)
    assert np.all(np.isfinite(summary.trace.total_energy_per_atom))
    # the CLI turns a named (collinear) ordering along z for a noncollinear model
    out = tmp_path / "relaxed.extxyz"
    argv = ["relax", "NiO", "--model", str(exported), "--steps", "1", "--quiet", "--output"]
    assert main([*argv, str(out)]) == 0
    collinear = rocksalt_ordered("NiO", "AFM-II").get_initial_magnetic_moments()
    assert np.array_equal(
        read(out).get_initial_magnetic_moments(), SpinMode("noncollinear").ordering(collinear)
    )


def test_training_and_evaluation_from_turned_collinear_frames(tmp_path):
    """Reference frames with their collinear guesses and DFT moments turned to one random
    global direction per frame: training lowers the loss, exports a non-collinear model, and
    evaluate reads the frames as (N, 3)."""
    rng = np.random.default_rng(3)
    frames = read(REFERENCE, index=":4")
    for atoms in frames:
        direction = random_rotation(rng)[:, 2]
        mode = SpinMode("noncollinear")
        guesses = atoms.get_initial_magnetic_moments()
        atoms.set_initial_magnetic_moments(None)
        atoms.set_initial_magnetic_moments(mode.ordering(guesses, direction))
        atoms.calc.results["magmoms"] = mode.ordering(atoms.calc.results["magmoms"], direction)
    data = tmp_path / "turned.extxyz"
    write(data, frames)
    config = config_from_dict(
        {
            "data": {
                "path": str(data),
                "test_yardsticks": False,
                "validation_fraction": 0.0,
                "test_fraction": 0.0,
            },
            "model": {
                **TINY,
                "species": ["O", "Mn", "Ni"],
                "cutoff": 4.0,
                "full_moment": 1.0,
                "spin_mode": "noncollinear",
            },  # fmt: skip
            "optim": {"max_epochs": 6, "batch_size": 2, "learning_rate": 0.02},
            "output_dir": str(tmp_path / "run"),
            "dtype": "float64",
            "num_threads": 1,
        }
    )
    Trainer(config, progress=False).run()
    losses = np.genfromtxt(tmp_path / "run" / "metrics.csv", delimiter=",", names=True)
    assert np.all(np.isfinite(losses["train_loss"]))
    assert losses["train_loss"][-1] < losses["train_loss"][0]
    model = tmp_path / "run" / "model.pt"
    assert load_model(model).spin_mode == SpinMode("noncollinear")
    out = tmp_path / "evaluation"
    assert main(["evaluate", str(model), str(data), "--output-dir", str(out)]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    (errors,) = result["errors"]["train"].values()
    assert errors["frames"] == 4 and np.isfinite(errors["magmoms_mae"])


def test_scan_turns_collinear_orderings_for_a_noncollinear_model(calc):
    """Without spin-orbit a collinear ordering along any common axis is one state: the scan's
    energies and moments are those of each ordering turned along an arbitrary axis."""
    orderings = ["FM", "AFM-I", "AFM-II"]
    outcome = run_scan("NiO", calc, orderings=orderings, steps=0, progress=False)
    axis = np.array([0.48, -0.6, 0.64])
    by_name = {r.ordering: r for r in outcome.results}
    for name in orderings:
        atoms = rocksalt_ordered("NiO", name)
        signed = atoms.get_initial_magnetic_moments()
        atoms.set_initial_magnetic_moments(None)
        atoms.set_initial_magnetic_moments(SpinMode("noncollinear").ordering(signed, axis))
        atoms.calc = calc
        n_fu = len(atoms) // 2
        assert by_name[name].ideal_energy * n_fu == pytest.approx(
            atoms.get_potential_energy(), abs=1e-10
        )
        sizes = atoms.get_magnetic_moments()[signed != 0] @ axis
        assert np.allclose(by_name[name].magnetic_moments, sizes, atol=1e-10)


def test_scan_refuses_a_model_with_spin_orbit():
    soc = SpinMultiNetCalculator(
        as_loaded(random_model(seed=5, spin_mode="noncollinear_soc", **TINY))
    )
    with pytest.raises(ValueError) as error:
        run_scan("NiO", soc, orderings=["FM"], steps=0, progress=False)
    message = str(error.value)
    assert "\n" not in message and "spin-orbit" in message and "(N, 3)" in message
