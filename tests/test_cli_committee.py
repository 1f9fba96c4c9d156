"""A committee on the command line (``--model A.pt B.pt``): each structure command reports the
members' mean and spread, checked against the members run or evaluated one at a time."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import read

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.cli import main
from spinmultinet_ase.export import export_model
from spinmultinet_ase.magnetism.exchange import exchange_shells
from spinmultinet_ase.testing.models import exported_committee, random_model
from spinmultinet_ase.workflows.inputs import single_structure
from spinmultinet_ase.workflows.phonons import displaced_cells
from spinmultinet_ase.workflows.scan import (
    ExchangeReport,
    monte_carlo_neel_temperature,
    run_scan,
    scan_input,
)

SPREAD_COLUMNS = {
    "ideal_energy_std",
    "relaxed_energy_std",
    "ideal_relative_meV_per_ion_std",
    "relaxed_relative_meV_per_ion_std",
    "ideal_relative_meV_std",
    "relaxed_relative_meV_std",
}
SCAN = ["scan", "NiO", "--orderings", "FM", "AFM-II", "AFM-I", "--steps", "2", "--quiet"]


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> list[Path]:
    """Two small random models from different seeds, exported."""
    return exported_committee(tmp_path_factory.mktemp("members"), (31, 32))


@pytest.fixture(scope="module")
def singles(members) -> list[SpinMultiNetCalculator]:
    return [SpinMultiNetCalculator(path) for path in members]


def _run(argv: list[str]) -> None:
    assert main(argv) == 0


def _members_at(atoms: Atoms, singles) -> tuple[np.ndarray, np.ndarray]:
    """Each member's energy (M,) and forces (M, N, 3) at ``atoms``, one model at a time."""
    energies, forces = [], []
    for calc in singles:
        copy = atoms.copy()
        copy.calc = calc
        energies.append(copy.get_potential_energy())
        forces.append(copy.get_forces())
    return np.array(energies), np.array(forces)


def _largest_force_spread(forces: np.ndarray) -> float:
    """max over atoms of the root mean square over members of |F_k,i − F̄_i|."""
    deviation = forces - forces.mean(axis=0)
    return float(np.sqrt((deviation**2).sum(axis=2).mean(axis=0)).max())


@pytest.fixture(scope="module")
def scans(members, tmp_path_factory) -> dict[str, Path]:
    """The scan run with the committee and with each member alone (printed: ``stdout.txt``)."""
    runs = {"committee": members, "first": members[:1], "second": members[1:]}
    folders = {}
    for name, models in runs.items():
        folders[name] = tmp_path_factory.mktemp(f"scan_{name}")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            _run([*SCAN, "--output-dir", str(folders[name]), "--model", *map(str, models)])
        (folders[name] / "stdout.txt").write_text(printed.getvalue())
    return folders


def _csv(folder: Path) -> dict[str, dict]:
    with (folder / "scan.csv").open() as handle:
        return {row["ordering"]: row for row in csv.DictReader(handle)}


def test_scan_single_points_are_the_members_mean_and_spread(scans):
    committee = json.loads((scans["committee"] / "scan.json").read_text())
    assert "population standard deviation (ddof=0)" in committee["spread"]
    rows = {row["ordering"]: row for row in committee["orderings"]}
    members = [
        {
            row["ordering"]: row
            for row in json.loads((scans[n] / "scan.json").read_text())["orderings"]
        }
        for n in ("first", "second")
    ]
    # per magnetic ion, relative to the ordering lowest in the committee's mean
    per_ion = {
        name: np.array([m[name]["ideal_energy"] for m in members])
        * row["formula_units"]
        / row["magnetic_ions"]
        for name, row in rows.items()
    }
    reference = min(per_ion, key=lambda name: per_ion[name].mean())
    for name, row in rows.items():
        energies = np.array([m[name]["ideal_energy"] for m in members])
        assert row["ideal_energy"] == pytest.approx(energies.mean(), abs=1e-9)
        assert row["ideal_energy_std"] == pytest.approx(np.std(energies, ddof=0), abs=1e-9)
        relative = 1000 * (per_ion[name] - per_ion[reference])
        assert row["ideal_relative_meV_per_ion"] == pytest.approx(relative.mean(), abs=1e-6)
        assert row["ideal_relative_meV_per_ion_std"] == pytest.approx(np.std(relative), abs=1e-6)
        ions_per_fu = row["magnetic_ions"] / row["formula_units"]
        assert row["ideal_relative_meV_std"] == pytest.approx(
            np.std(relative) * ions_per_fu, abs=1e-6
        )
    assert rows[reference]["ideal_relative_meV_per_ion_std"] == 0.0
    # the correlated members: the relative spread is not the two energies' spreads combined
    others = [name for name in rows if name != reference]
    assert any(
        abs(
            rows[n]["ideal_relative_meV_per_ion_std"]
            - 1000 * np.hypot(np.std(per_ion[n]), np.std(per_ion[reference]))
        )
        > 1e-3
        for n in others
    )
    assert set(_csv(scans["committee"])["FM"]) >= SPREAD_COLUMNS


def test_scan_relaxed_spreads_are_the_members_at_the_committees_geometry(scans, singles):
    rows = {
        row["ordering"]: row
        for row in json.loads((scans["committee"] / "scan.json").read_text())["orderings"]
    }
    frames = {
        atoms.info["ordering"]: atoms for atoms in read(scans["committee"] / "relaxed.extxyz", ":")
    }
    per_ion = {}
    for name, atoms in frames.items():
        energies, forces = _members_at(atoms, singles)
        row = rows[name]
        assert atoms.info["energy_std"] == pytest.approx(np.std(energies), abs=1e-6)
        np.testing.assert_allclose(atoms.arrays["forces_std"], forces.std(axis=0), atol=1e-6)
        assert row["relaxed_energy"] == pytest.approx(
            energies.mean() / row["formula_units"], abs=1e-6
        )
        assert row["relaxed_energy_std"] == pytest.approx(
            np.std(energies) / row["formula_units"], abs=1e-6
        )
        per_ion[name] = energies / row["magnetic_ions"]
    reference = min(per_ion, key=lambda name: per_ion[name].mean())
    for name, row in rows.items():
        relative = 1000 * (per_ion[name] - per_ion[reference])
        assert row["relaxed_relative_meV_per_ion_std"] == pytest.approx(np.std(relative), abs=1e-4)


def test_scan_exchange_spread_is_that_of_the_members_own_fits(scans):
    """Each member's J's are those of the scan with that member alone (its own energies at the
    same ideal geometries); the committee's J is the fit of the mean energies, which, the fit
    being linear in the energies, is the members' mean J."""
    committee = json.loads((scans["committee"] / "scan.json").read_text())["exchange"]
    alone = [
        json.loads((scans[n] / "scan.json").read_text())["exchange"] for n in ("first", "second")
    ]
    assert (
        "exchange: JS2_meV_std"
        in json.loads((scans["committee"] / "scan.json").read_text())["spread"]
    )
    printed = (scans["committee"] / "stdout.txt").read_text()
    for k, shell in enumerate(committee["shells"]):
        members = np.array([a["shells"][k]["JS2_meV"] for a in alone])
        assert shell["JS2_meV"] == pytest.approx(members.mean(), abs=1e-9)
        assert shell["JS2_meV_std"] == pytest.approx(np.std(members, ddof=0), abs=1e-9)
        assert f"J{k + 1} S² = {shell['JS2_meV']:8.2f} ± {shell['JS2_meV_std']:.2f} meV" in printed
    assert any(shell["JS2_meV_std"] > 1e-6 for shell in committee["shells"])
    mean_field = np.array([a["mean_field_temperature_K"] for a in alone])
    assert committee["mean_field_temperature_K_std"] == pytest.approx(np.std(mean_field), abs=1e-9)
    assert (
        f"{committee['mean_field_temperature_K']:.0f} ± "
        f"{committee['mean_field_temperature_K_std']:.0f} K" in printed
    )
    assert "monte_carlo_neel_temperature_K_std" in committee  # None: no Monte Carlo asked
    assert committee["monte_carlo_neel_temperature_K_std"] is None


def test_scan_monte_carlo_spread_is_that_of_the_members_own_runs(members):
    """T_N of member k (from 1) is the Monte Carlo of the scan's fit with that member alone,
    run with the same sweeps and the seed k (the mean-energy model's being 0)."""
    orderings = ["FM", "AFM-II", "AFM-I"]
    options = dict(orderings=orderings, steps=0, progress=False)
    committee = run_scan(
        "NiO", SpinMultiNetCalculator(members), monte_carlo=True, monte_carlo_sweeps=10, **options
    ).exchange
    shells = exchange_shells(scan_input("NiO", orderings).reference, 2)
    temperatures = []
    for seed, member in enumerate(members, start=1):
        alone = run_scan("NiO", SpinMultiNetCalculator(member), **options).exchange
        monte_carlo_neel_temperature(alone, shells, sweeps=10, seed=seed)
        assert alone.monte_carlo_neel_temperature_K_std is None
        temperatures.append(alone.monte_carlo_neel_temperature_K)
    assert np.std(temperatures) > 0
    assert committee.monte_carlo_neel_temperature_K_std == pytest.approx(
        np.std(temperatures, ddof=0), abs=1e-9
    )
    assert committee.monte_carlo_sweeps == 10


def _report(JS2_meV: list[float], members: list[list[float]] | None = None) -> ExchangeReport:
    """An exchange report of the NiO shells with the given J |S|² (meV), no Monte Carlo yet."""
    return ExchangeReport(
        shells=[{"JS2_meV": j} for j in JS2_meV],
        E0_eV_per_ion=0.0,
        rms_residual_meV_per_ion=0.0,
        condition=1.0,
        degrees_of_freedom=0,
        orderings=3,
        mean_field_temperature_K=None,
        member_JS2_meV=members,
    )


def test_identical_members_show_the_monte_carlo_noise_in_the_spread():
    """Members that agree exactly still spread in T_N by the Monte Carlo's own noise: each
    member's run has a seed of its own (a shared seed would report 0 K, hiding that noise)."""
    shells = exchange_shells(scan_input("NiO", ["FM"]).reference, 2)
    model = [1.0, 10.0]
    report = monte_carlo_neel_temperature(_report(model, [model] * 3), shells, sweeps=4)
    alone = [
        monte_carlo_neel_temperature(_report(model), shells, sweeps=4, seed=seed)
        for seed in range(4)
    ]
    temperatures = [a.monte_carlo_neel_temperature_K for a in alone]
    assert report.monte_carlo_neel_temperature_K == temperatures[0]  # seed 0: the mean's
    assert report.monte_carlo_neel_temperature_K_std == pytest.approx(np.std(temperatures[1:]))
    assert report.monte_carlo_neel_temperature_K_std > 0


def test_a_member_the_monte_carlo_cannot_follow_leaves_the_spread_out_with_a_warning():
    shells = exchange_shells(scan_input("NiO", ["FM"]).reference, 2)
    # the second member orders at no temperature
    report = _report([0.5, 5.0], [[1.0, 10.0], [0.0, 0.0]])
    monte_carlo_neel_temperature(report, shells, sweeps=4)
    assert report.monte_carlo_neel_temperature_K > 0
    assert report.monte_carlo_neel_temperature_K_std is None
    (warning,) = report.warnings
    assert warning.startswith("no Monte Carlo T_N spread: committee member 2's model: ")


def test_scan_of_one_model_writes_what_it_wrote_before(scans, capsys):
    for name in ("first", "second"):
        summary = json.loads((scans[name] / "scan.json").read_text())
        assert "spread" not in summary
        exchange = summary["exchange"]
        assert not [key for key in exchange if key.endswith("_std")]
        assert not [key for shell in exchange["shells"] for key in shell if key.endswith("_std")]
        assert "±" not in (scans[name] / "stdout.txt").read_text()
        assert not SPREAD_COLUMNS & set(summary["orderings"][0])
        assert not SPREAD_COLUMNS & set(_csv(scans[name])["FM"])
        for atoms in read(scans[name] / "relaxed.extxyz", ":"):
            assert "energy_std" not in atoms.info and "forces_std" not in atoms.arrays


def test_scan_table_shows_the_spread_only_for_a_committee(members, tmp_path, capsys):
    argv = [*SCAN[:3], "FM", "AFM-II", "--steps", "1", "--quiet"]
    _run([*argv, "--output-dir", str(tmp_path / "c"), "--model", *map(str, members)])
    table = capsys.readouterr().out
    assert " ± " in table and "population std" in table
    _run([*argv, "--output-dir", str(tmp_path / "s"), "--model", str(members[0])])
    assert "±" not in capsys.readouterr().out


def test_relax_writes_and_prints_the_spread_at_the_final_geometry(
    members, singles, tmp_path, capsys
):
    argv = ["relax", "NiO", "--ordering", "AFM-II", "--steps", "3", "--quiet"]
    output = tmp_path / "committee.extxyz"
    _run([*argv, "--output", str(output), "--model", *map(str, members)])
    printed = capsys.readouterr().out
    relaxed = read(output)
    energies, forces = _members_at(relaxed, singles)
    assert relaxed.get_potential_energy() == pytest.approx(energies.mean(), abs=1e-6)
    assert relaxed.info["energy_std"] == pytest.approx(np.std(energies, ddof=0), abs=1e-6)
    np.testing.assert_allclose(relaxed.arrays["forces_std"], forces.std(axis=0), atol=1e-6)
    assert f"{energies.mean():.4f} ± {np.std(energies):.4f} eV" in printed
    assert f"largest per-atom force spread {_largest_force_spread(forces):.4f} eV/Å" in printed

    single = tmp_path / "single.extxyz"
    _run([*argv, "--output", str(single), "--model", str(members[0])])
    assert "±" not in capsys.readouterr().out
    alone = read(single)
    assert "energy_std" not in alone.info and "forces_std" not in alone.arrays


@pytest.mark.parametrize("ensemble", ["nve", "nvt"])
def test_md_frames_and_log_carry_the_spread(members, singles, tmp_path, capsys, ensemble):
    argv = [
        "md",
        "NiO",
        "--ensemble",
        ensemble,
        "--steps",
        "4",
        "--interval",
        "2",
        "--dtype",
        "float64",
    ]
    argv += ["--quiet"]
    _run([*argv, "--output-dir", str(tmp_path / "c"), "--model", *map(str, members)])
    assert "committee spread over the sampled frames" in capsys.readouterr().out
    frames = read(tmp_path / "c" / "md.traj", ":")
    log = (tmp_path / "c" / "md.log").read_text().splitlines()
    assert log[0].split()[-2:] == ["σE[eV]", "σFmax[eV/Å]"]
    trace = json.loads((tmp_path / "c" / "md.json").read_text())["trace"]
    assert len(frames) == len(log) - 1 == len(trace["max_force_std"]) == 3
    for atoms, line, std_per_atom, force_std in zip(
        frames, log[1:], trace["energy_std_per_atom"], trace["max_force_std"], strict=True
    ):
        energies, forces = _members_at(atoms, singles)
        assert atoms.get_potential_energy() == pytest.approx(energies.mean(), abs=1e-9)
        assert atoms.info["energy_std"] == pytest.approx(np.std(energies), abs=1e-9)
        assert atoms.info["max_force_std"] == pytest.approx(_largest_force_spread(forces), abs=1e-9)
        assert std_per_atom == pytest.approx(np.std(energies) / len(atoms), abs=1e-9)
        assert force_std == pytest.approx(atoms.info["max_force_std"], abs=1e-12)
        columns = [float(x) for x in line.split()]
        assert columns[2] == pytest.approx(energies.mean(), abs=1e-4)  # Epot
        assert columns[-2:] == pytest.approx(
            [np.std(energies), _largest_force_spread(forces)], abs=1e-4
        )

    _run([*argv, "--output-dir", str(tmp_path / "s"), "--model", str(members[0])])
    assert "committee" not in capsys.readouterr().out
    header = (tmp_path / "s" / "md.log").read_text().splitlines()[0].split()
    assert header == ["Time[ps]", "Etot[eV]", "Epot[eV]", "Ekin[eV]", "T[K]"]  # ASE's own
    assert all("energy_std" not in a.info for a in read(tmp_path / "s" / "md.traj", ":"))
    trace = json.loads((tmp_path / "s" / "md.json").read_text())["trace"]
    assert "energy_std_per_atom" not in trace and "max_force_std" not in trace


def test_phonons_report_the_largest_force_spread_of_the_displaced_cells(
    members, singles, tmp_path, capsys
):
    argv = [
        "phonons",
        "NiO",
        "--orderings",
        "FM",
        "--no-relax",
        "--phonon-supercell",
        "1",
        "1",
        "1",
    ]
    _run([*argv, "--quiet", "--output-dir", str(tmp_path / "c"), "--model", *map(str, members)])
    printed = capsys.readouterr().out
    (result,) = json.loads((tmp_path / "c" / "phonons.json").read_text())
    _, cells = displaced_cells(single_structure("NiO", "FM", None, None), np.eye(3, dtype=int))
    expected = max(_largest_force_spread(_members_at(cell, singles)[1]) for cell in cells)
    assert result["max_force_std"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert f"displaced supercells {expected:.4f} eV/Å" in printed

    _run([*argv, "--quiet", "--output-dir", str(tmp_path / "s"), "--model", str(members[0])])
    assert "spread" not in capsys.readouterr().out
    (alone,) = json.loads((tmp_path / "s" / "phonons.json").read_text())
    assert "max_force_std" not in alone


@pytest.fixture(scope="module")
def other_cutoff(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mismatch") / "cutoff4.pt"
    export_model(random_model(seed=33, cutoff=4.0, lmax=1, num_layers=1), path)
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["scan", "NiO", "--output-dir", "out"],
        ["relax", "NiO", "--output", "out/relaxed.extxyz"],
        ["md", "NiO", "--output-dir", "out"],
        ["phonons", "NiO", "--output-dir", "out"],
    ],
    ids=["scan", "relax", "md", "phonons"],
)
def test_mismatched_members_are_one_line_and_exit_code_2(
    command, members, other_cutoff, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--quiet", "--model", str(members[0]), str(other_cutoff)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err + captured.out
    assert lines[0].startswith(f"spinmultinet {command[0]}: error: committee model 2 has cutoff")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_one_model_on_a_committees_output_carries_no_stale_spread(members, tmp_path, capsys):
    """A structure written by a committee run, read back by a one-model run: its spread was
    another calculator's, so neither the relaxed structure nor the MD frames keep it."""
    committee = tmp_path / "committee.extxyz"
    relax = ["relax", "--steps", "2", "--quiet"]
    _run(
        [*relax[:1], "NiO", "--ordering", "AFM-II", *relax[1:], "--output", str(committee)]
        + ["--model", *map(str, members)]
    )
    assert "energy_std" in read(committee).info and "forces_std" in read(committee).arrays
    capsys.readouterr()
    single = tmp_path / "single.extxyz"
    _run(
        [*relax[:1], str(committee), *relax[1:], "--output", str(single)]
        + ["--model", str(members[0])]
    )
    printed = capsys.readouterr().out
    assert "±" not in printed and "the committee's spread" not in printed
    alone = read(single)
    assert "energy_std" not in alone.info and "forces_std" not in alone.arrays
    md = ["md", str(committee), "--steps", "4", "--interval", "2", "--quiet"]
    _run([*md, "--output-dir", str(tmp_path / "md"), "--model", str(members[0])])
    assert all("energy_std" not in a.info for a in read(tmp_path / "md" / "md.traj", ":"))


@pytest.mark.parametrize(
    "command",
    [["scan", "NiO", "--output-dir", "out"], ["relax", "NiO", "--output", "out/relaxed.extxyz"]],
    ids=["scan", "relax"],
)
def test_one_model_given_twice_is_one_line_and_exit_code_2(
    command, members, tmp_path, monkeypatch, capsys
):
    """The same model twice (here under two names) would report a spread too small (zero for
    a committee of one model): refused before any output."""
    monkeypatch.chdir(tmp_path)
    copy = tmp_path / "copy.pt"
    copy.write_bytes(members[0].read_bytes())
    argv = [*command, "--quiet", "--model", str(members[0]), str(members[1]), str(copy)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err + captured.out
    assert f"committee model 3 ({copy}) is model 1 again" in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_structure_can_follow_the_model_files_after_a_double_dash(members, tmp_path):
    output = tmp_path / "relaxed.extxyz"
    argv = ["relax", "--steps", "1", "--quiet", "--output", str(output)]
    _run([*argv, "--model", *map(str, members), "--", "NiO"])
    assert read(output).info["energy_std"] > 0
