"""Orderings, the ordering scan and exchange fits, checked against independent oracles."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk

from spinmultinet_ase.cli import main
from spinmultinet_ase.magnetism import montecarlo
from spinmultinet_ase.magnetism.exchange import exchange_shells, fit_exchange
from spinmultinet_ase.magnetism.orderings import (
    enumerate_collinear_orderings,
    magnetic_cell,
    site_permutations,
)
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered, rocksalt_primitive
from spinmultinet_ase.magnetism.sites import magnetic_sites
from spinmultinet_ase.testing.symmetry import evaluate
from spinmultinet_ase.workflows.scan import (
    ExchangeReport,
    monte_carlo_neel_temperature,
    scan_input,
    scan_orderings,
)

CUBIC = np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]])


def _burnside_count(permutations: np.ndarray) -> int:
    """Orbits of ±1 patterns under the permutations and the global flip (Burnside's lemma)."""
    total = 0
    for permutation in permutations:
        cycles, seen = [], set()
        for start in range(len(permutation)):
            length, site = 0, start
            while site not in seen:
                seen.add(site)
                site = permutation[site]
                length += 1
            if length:
                cycles.append(length)
        total += 2 ** len(cycles)  # fixed by the permutation alone
        total += 2 ** len(cycles) if all(c % 2 == 0 for c in cycles) else 0  # with the flip
    return total // (2 * len(permutations))


def test_rocksalt_cubic_cell_has_three_orderings():
    """4 metals of the conventional cell: FM, one spin flipped, and AFM-I."""
    found = enumerate_collinear_orderings(magnetic_cell(rocksalt_primitive("NiO"), CUBIC))
    assert [a.info["ordering"] for a in found] == ["uuuu", "uuud", "uudd"]
    moments = found[2].get_initial_magnetic_moments()
    assert sorted(moments[moments != 0]) == [-2, -2, 2, 2]


@pytest.mark.parametrize("matrix", [2 * np.eye(3, dtype=int), np.diag([2, 1, 1])])
def test_enumeration_agrees_with_burnside(matrix):
    cell = magnetic_cell(rocksalt_primitive("NiO"), matrix)
    found = enumerate_collinear_orderings(cell)
    permutations = site_permutations(cell, magnetic_sites(cell))
    assert len(found) == _burnside_count(permutations)


def test_no_magnetic_atoms():
    with pytest.raises(ValueError, match="no magnetic site"):
        magnetic_cell(bulk("MgO", "rocksalt", a=4.2))


def test_magnetic_sites_come_from_the_moments_set():
    """Moments set by the user decide; the element table only fills in when none are set."""
    atoms = rocksalt_ordered("NiO", "AFM-II")
    assert list(magnetic_sites(atoms)) == [0, 2]
    moments = atoms.get_initial_magnetic_moments()
    moments[2] = 0.0
    atoms.set_initial_magnetic_moments(moments)
    assert list(magnetic_sites(atoms)) == [0]
    assert list(magnetic_sites(atoms, [1, 3])) == [1, 3]
    bare = bulk("MgO", "rocksalt", a=4.2)
    assert list(magnetic_sites(magnetic_cell(bare, magnitudes={"Mg": 1.0}))) == [0]


def test_orderings_of_a_molecule_are_refused(exported_path, molecule_file, capsys):
    argv = ["scan", str(molecule_file), "--model", str(exported_path), "--quiet"]
    assert main(argv) == 2
    assert "periodic in all three directions" in capsys.readouterr().err


def _heisenberg_energy_per_ion(atoms, couplings: dict[float, float]) -> float:
    """Σ_<ij> J S² s_i s_j per magnetic ion by brute force over all pairs, J by distance (Å)."""
    from ase.neighborlist import neighbor_list

    moments = atoms.get_initial_magnetic_moments()
    i, j, d = neighbor_list("ijd", atoms, max(couplings) + 0.01)
    signs = np.sign(moments[i] * moments[j])
    total = sum(value * signs[np.abs(d - r) < 1e-3].sum() for r, value in couplings.items())
    return 0.5 * total / np.count_nonzero(moments)


def test_exchange_fit_recovers_heisenberg_constants():
    structures = [rocksalt_ordered("MnO", o) for o in ("FM", "AFM-I", "AFM-II", "AFM-III")]
    a = 4.51
    j1, j2, e0 = 0.0031, 0.0057, -7.5
    energies = [e0 + _heisenberg_energy_per_ion(s, {a / np.sqrt(2): j1, a: j2}) for s in structures]
    shells = exchange_shells(structures[0], 2)
    assert np.allclose(shells.counts(structures[0]), [6, 3])
    fit = fit_exchange(shells, structures, energies)
    assert fit.JS2 == pytest.approx([j1, j2], abs=1e-12)
    assert fit.E0 == pytest.approx(e0, abs=1e-12)
    assert fit.rms_residual < 1e-12 and fit.degrees_of_freedom == 1
    # a third-neighbour coupling the fit leaves out shows as the rms departure
    j3 = 0.001
    energies3 = [
        e + _heisenberg_energy_per_ion(s, {a * np.sqrt(1.5): j3})
        for e, s in zip(energies, structures, strict=True)
    ]
    assert fit_exchange(shells, structures, energies3).rms_residual > 1e-4


def test_exchange_fit_says_which_shells_it_cannot_determine():
    structures = [rocksalt_ordered("NiO", o) for o in ("FM", "AFM-II")]
    fit = fit_exchange(exchange_shells(structures[0], 2), structures, [0.0, -0.1])
    assert fit.JS2[1] is None and "cannot determine shell(s) 2" in fit.warnings[0]
    with pytest.raises(ValueError, match="cannot determine any"):
        fit_exchange(exchange_shells(structures[0], 2), structures[:1] * 2, [0.0, 0.1])


def test_scan_energies_equal_single_points(calc):
    structures = {o: rocksalt_ordered("NiO", o) for o in ("FM", "AFM-II")}
    results, relaxed = scan_orderings(
        structures, calc, fmax=1e-3, cubic_parent=True, progress=False
    )
    for result in results:
        single = evaluate(calc, relaxed[result.ordering])
        assert result.relaxed_energy * result.formula_units == pytest.approx(
            float(single["energy"]), abs=1e-10
        )
        ideal = evaluate(calc, structures[result.ordering])
        assert result.ideal_energy * result.formula_units == pytest.approx(
            float(ideal["energy"]), abs=1e-10
        )
    assert min(r.relaxed_relative_meV for r in results) == 0.0


def test_afm2_relaxation_distorts_and_fm_stays_cubic(calc):
    """Spin-lattice coupling: AFM-II lowers the cubic symmetry, FM keeps it (same cell)."""
    cell = rocksalt_ordered("NiO", "AFM-II").cell.array  # the 4-atom AFM-II cell
    from spinmultinet_ase.dft.structures import CELLS

    structures = {o: rocksalt_ordered("NiO", o, CELLS["afm2-4"]) for o in ("FM", "AFM-II")}
    assert np.allclose(structures["FM"].cell.array, cell)
    results, _ = scan_orderings(
        structures, calc, fmax=1e-4, steps=300, cubic_parent=True, progress=False
    )
    angle = {r.ordering: r.pseudo_cubic_angle for r in results}
    assert abs(angle["FM"] - 90.0) < 1e-3
    assert abs(angle["AFM-II"] - 90.0) > 1e-3


def test_scan_cli(exported_path, tmp_path, capsys):
    assert (
        main(
            [
                "scan",
                "NiO",
                "--orderings",
                "FM",
                "AFM-I",
                "AFM-II",
                "--model",
                str(exported_path),
                "--output-dir",
                str(tmp_path),
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "AFM-II" in out and "J1 S²" in out and "rms departure" in out
    for name in ("scan.csv", "scan.json", "scan.png", "relaxed.extxyz"):
        assert (tmp_path / name).exists()


def test_scan_cli_monte_carlo_runs_the_sweeps_asked_and_says_so(exported_path, tmp_path, capsys):
    """``--monte-carlo-sweeps N``: T_N is that of the Monte Carlo of the fitted J's with N
    measured sweeps (the library run anew on scan.json's fit), and the output says N."""
    argv = ["scan", "NiO", "--orderings", "FM", "AFM-I", "AFM-II", "--steps", "0", "--quiet"]
    argv += ["--monte-carlo", "--monte-carlo-sweeps", "6", "--model", str(exported_path)]
    assert main([*argv, "--output-dir", str(tmp_path)]) == 0
    exchange = json.loads((tmp_path / "scan.json").read_text())["exchange"]
    assert exchange["monte_carlo_sweeps"] == 6
    assert f"({exchange['monte_carlo_method']}, 6 sweeps)" in capsys.readouterr().out
    shells = exchange_shells(scan_input("NiO", ["FM"]).reference, 2)
    again = monte_carlo_neel_temperature(ExchangeReport(**exchange), shells, sweeps=6)
    assert exchange["monte_carlo_neel_temperature_K"] == again.monte_carlo_neel_temperature_K


def test_scan_help_gives_the_default_sweeps_the_scan_runs_with(monkeypatch, capsys):
    """The help's default is the constant itself (a changed one shows), read from a module
    that does not import torch, as the CLI's startup reads it."""
    monkeypatch.setattr(montecarlo, "MONTE_CARLO_SWEEPS", 1234)
    assert main(["scan", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--monte-carlo-sweeps N with --monte-carlo:" in text
    assert "N/2 equilibration sweeps (default 1234);" in text
    check = "import sys, spinmultinet_ase.magnetism.montecarlo; print('torch' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    imported = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True)
    assert imported.stdout.decode().strip() == "False", imported.stderr.decode()


def test_scan_cli_bad_target(exported_path, capsys):
    assert main(["scan", "CuO2", "--model", str(exported_path), "--quiet"]) == 2
    assert "neither a known formula" in capsys.readouterr().err


def test_scan_cli_refuses_a_material_the_model_lacks_before_any_work(exported_path, capsys):
    """A scan of Cr2O3 with a model that knows no Cr is one line on stderr, before the
    progress bar of the first ordering."""
    assert main(["scan", "Cr2O3", "--model", str(exported_path)]) == 2
    err = capsys.readouterr().err
    assert "Cr not in this model" in err
    assert "orderings" not in err and len(err.strip().splitlines()) == 1
