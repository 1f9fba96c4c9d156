"""MD and phonon workflows: energy conservation, acoustic sum rule, magnetic Γ splitting."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import spglib
from ase.io import read

from spinmultinet_ase.cli import main
from spinmultinet_ase.dft.structures import yardstick_structures
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.workflows.md import run_md
from spinmultinet_ase.workflows.phonons import compute_phonons
from spinmultinet_ase.workflows.relax import relax


def test_nve_drift_is_small(calc):
    atoms = rocksalt_ordered("NiO", "AFM-II").repeat(2)
    summary = run_md(
        atoms, calc, "nve", temperature_K=300, steps=60, timestep_fs=1.0, interval=5, progress=False
    )
    assert 100 < summary.mean_temperature_K < 500
    assert abs(summary.energy_drift_meV_per_atom_per_ps) < 5.0
    assert abs(summary.total_energy_end - summary.total_energy_start) < 1e-3 * len(atoms)


def test_the_drift_comes_from_at_least_two_samples(eager_model):
    from spinmultinet_ase.calculator import SpinMultiNetCalculator
    from spinmultinet_ase.testing.models import as_loaded

    calc = SpinMultiNetCalculator(as_loaded(eager_model))
    atoms = rocksalt_ordered("NiO", "AFM-II")
    with pytest.raises(ValueError, match="one sample, not enough for an energy drift"):
        run_md(atoms.copy(), calc, steps=3, interval=4, progress=False)
    summary = run_md(atoms, calc, steps=4, interval=4, timestep_fs=2.0, progress=False)
    trace = summary.trace
    assert trace.time_ps == pytest.approx([0.0, 0.008])
    rise = trace.total_energy_per_atom[1] - trace.total_energy_per_atom[0]
    assert summary.energy_drift_meV_per_atom_per_ps == pytest.approx(1000 * rise / 0.008)
    assert summary.energy_drift_meV_per_atom_per_ps != 0.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature_K": -1.0}, r"temperature \(K\) must be a finite number >= 0"),
        ({"temperature_K": float("nan")}, "temperature"),
        ({"temperature_K": 0.0, "ensemble": "npt"}, r"temperature \(K\) must be .* > 0"),
        ({"steps": 0}, "number of MD steps must be a whole number >= 1"),
        ({"steps": 2.5}, "number of MD steps"),
        ({"timestep_fs": 0.0}, r"time step \(fs\) must be a finite number > 0"),
        ({"timestep_fs": -1.0}, "time step"),
        ({"friction_per_fs": 0.0, "ensemble": "nvt"}, "friction"),
        ({"pressure_GPa": float("inf"), "ensemble": "npt"}, "pressure"),
        ({"pressure_GPa": 1.0}, "a pressure acts only in NPT"),
        ({"interval": 0}, "sampling interval"),
        ({"ensemble": "nph"}, "ensemble must be one of"),
    ],
)
def test_md_refuses_unphysical_options_before_any_step(options, message):
    atoms = rocksalt_ordered("NiO", "AFM-II")
    with pytest.raises(ValueError, match=message):
        run_md(atoms, calc=None, progress=False, **options)  # never reaches the calculator
    assert atoms.calc is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"supercell": np.zeros((3, 3), dtype=int)}, "positive determinant"),
        ({"supercell": np.eye(3) * 2.0}, "integer matrix"),
        ({"displacement": 0.0}, "displacement"),
        ({"displacement": 0.5}, "not small"),
        ({"mesh": (4, 0, 4)}, "DOS mesh"),
        ({"npoints": 1}, "band-path points"),
    ],
)
def test_phonons_refuse_bad_options_before_any_force(options, message):
    with pytest.raises(ValueError, match=message):
        compute_phonons(rocksalt_ordered("NiO", "AFM-II"), calc=None, progress=False, **options)


@pytest.mark.parametrize("ensemble", ["nvt", "npt"])
def test_thermostatted_runs(calc, ensemble):
    atoms = rocksalt_ordered("NiO", "AFM-II").repeat(2)
    summary = run_md(atoms, calc, ensemble, temperature_K=200, steps=20, interval=5, progress=False)
    assert np.isfinite(summary.total_energy_end) and summary.final_volume > 0


def test_md_cli(exported_path, tmp_path, capsys):
    args = [
        "md",
        "NiO",
        "--supercell",
        "2",
        "2",
        "2",
        "--steps",
        "20",
        "--interval",
        "5",
        "--output-dir",
        str(tmp_path),
        "--model",
        str(exported_path),
        "--quiet",
    ]
    assert main(args) == 0
    assert "total-energy drift" in capsys.readouterr().out
    frames = read(tmp_path / "md.traj", index=":")
    # 2 2 2 of the 2-atom primitive cell: AFM-II in 16 atoms
    assert len(frames) == 5 and frames[-1].get_magnetic_moments().shape == (16,)
    trace = json.loads((tmp_path / "md.json").read_text())["trace"]
    # The trace is sampled with the trajectory: its energies are the trajectory's.
    energies = [atoms.get_potential_energy() / len(atoms) for atoms in frames]
    np.testing.assert_allclose(trace["potential_energy_per_atom"], energies, atol=1e-6)
    assert (tmp_path / "md.png").stat().st_size > 0 and (tmp_path / "md.log").is_file()


def test_md_cli_unknown_ordering(exported_path, capsys):
    assert main(["md", "NiO", "--ordering", "AFM-V", "--model", str(exported_path)]) == 2
    assert "unknown ordering" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["md", "--ensemble", "npt"], ["phonons"]])
def test_crystal_workflows_refuse_a_molecule(
    command, exported_path, molecule_file, tmp_path, capsys
):
    argv = [command[0], str(molecule_file), *command[1:], "--quiet"]
    assert main([*argv, "--model", str(exported_path), "--output-dir", str(tmp_path)]) == 2
    assert "periodic in all three directions" in capsys.readouterr().err


@pytest.fixture(scope="module")
def phonon_results(eager_model):
    from spinmultinet_ase.calculator import SpinMultiNetCalculator
    from spinmultinet_ase.testing.models import as_loaded

    calc = SpinMultiNetCalculator(as_loaded(eager_model))
    results = {}
    for ordering in ("FM", "AFM-II"):
        relaxed, converged = relax(rocksalt_ordered("NiO", ordering), calc, fmax=1e-5, steps=400)
        assert converged
        results[ordering] = compute_phonons(
            relaxed, calc, ordering, mesh=(4, 4, 4), npoints=30, progress=False
        )
    return results


def test_acoustic_modes_vanish_at_gamma(phonon_results):
    for result in phonon_results.values():
        assert np.abs(result.gamma_frequencies[:3]).max() < 1e-3  # THz


def test_magnetic_order_splits_the_gamma_optical_triplet(phonon_results):
    fm, afm = phonon_results["FM"], phonon_results["AFM-II"]
    assert len(fm.parent_gamma_optical) == len(afm.parent_gamma_optical) == 3
    assert fm.parent_gamma_splitting < 1e-6
    assert afm.parent_gamma_splitting > 1e-5
    assert len(afm.gamma_frequencies) == 12  # the 4-atom magnetic cell


def _gamma_optical(atoms, calc) -> list[float]:
    """Parent-Γ optical modes (THz) from the cell itself, with a small displacement."""
    return compute_phonons(
        atoms,
        calc,
        supercell=np.eye(3, dtype=int),
        displacement=1e-3,
        mesh=(2, 2, 2),
        npoints=5,
        progress=False,
    ).parent_gamma_optical


def test_fm_in_the_afm2_cell_has_the_gamma_modes_of_the_primitive_cell(calc):
    """The same FM crystal in two cells, one where spglib's magnetic symmetry search fails
    (FM in the yardsticks' 4-atom AFM-II cell): Γ is exact in both, so the parent-Γ optical
    modes agree (to the O(d²) error of a small displacement)."""
    (doubled,) = [
        atoms
        for atoms in yardstick_structures("NiO")
        if atoms.info["structure_id"] == "NiO-yardstick-afm2-4-FM-rh+0.000"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # equal moments keep the crystal's symmetry
        modes = _gamma_optical(doubled, calc)
    assert len(modes) == 3
    np.testing.assert_allclose(
        modes, _gamma_optical(rocksalt_ordered("NiO", "FM"), calc), rtol=1e-4
    )


def test_phonons_without_symmetry_when_spglib_fails(calc, monkeypatch):
    afm2 = rocksalt_ordered("NiO", "AFM-II")
    with_symmetry = _gamma_optical(afm2, calc)

    def failing_search(*args, **kwargs):
        raise spglib.error.SpglibError("spacegroup search failed")

    monkeypatch.setattr(spglib, "get_magnetic_symmetry_dataset", failing_search)
    with pytest.warns(UserWarning, match="displacing every atom without symmetry"):
        without = _gamma_optical(afm2, calc)
    np.testing.assert_allclose(without, with_symmetry, rtol=1e-4)


def test_phonons_cli(exported_path, tmp_path, capsys):
    assert (
        main(
            [
                "phonons",
                "NiO",
                "--orderings",
                "AFM-II",
                "--phonon-supercell",
                "1",
                "1",
                "1",
                "--model",
                str(exported_path),
                "--output-dir",
                str(tmp_path),
                "--quiet",
            ]
        )
        == 0
    )
    assert "splitting" in capsys.readouterr().out
    assert (tmp_path / "phonons.png").exists() and (tmp_path / "phonons.json").exists()
