"""Orderings, the ordering scan and exchange fits, checked against independent oracles."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from spinmultinet_ase.cli import main
from spinmultinet_ase.magnetism.exchange import fit_exchange, pair_counts, shell_radii
from spinmultinet_ase.magnetism.orderings import (
    enumerate_collinear_orderings,
    magnetic_sites,
    site_permutations,
)
from spinmultinet_ase.magnetism.rocksalt import (
    DEFAULT_MOMENT_MAGNITUDES,
    rocksalt_ordered,
    rocksalt_primitive,
)
from spinmultinet_ase.magnetism.scan import scan_orderings
from spinmultinet_ase.testing.symmetry import evaluate

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
    found = enumerate_collinear_orderings(rocksalt_primitive("NiO"), CUBIC)
    assert [a.info["ordering"] for a in found] == ["uuuu", "uuud", "uudd"]
    moments = found[2].get_initial_magnetic_moments()
    assert sorted(moments[moments != 0]) == [-2, -2, 2, 2]


@pytest.mark.parametrize("matrix", [2 * np.eye(3, dtype=int), np.diag([2, 1, 1])])
def test_enumeration_agrees_with_burnside(matrix):
    from ase.build import make_supercell

    found = enumerate_collinear_orderings(rocksalt_primitive("NiO"), matrix)
    cell = make_supercell(rocksalt_primitive("NiO"), matrix)
    permutations = site_permutations(cell, magnetic_sites(cell, DEFAULT_MOMENT_MAGNITUDES))
    assert len(found) == _burnside_count(permutations)


def test_no_magnetic_atoms():
    with pytest.raises(ValueError, match="no magnetic atoms"):
        enumerate_collinear_orderings(bulk("MgO", "rocksalt", a=4.2))


def test_orderings_of_a_molecule_are_refused(exported_path, molecule_file, capsys):
    argv = ["scan", str(molecule_file), "--model", str(exported_path), "--quiet"]
    assert main(argv) == 2
    assert "periodic in all three directions" in capsys.readouterr().err


def test_exchange_fit_recovers_heisenberg_constants():
    structures = [rocksalt_ordered("MnO", o) for o in ("FM", "AFM-I", "AFM-II", "AFM-III")]
    j1, j2, e0 = 0.0031, 0.0057, -7.5
    # energies per ion from E = E0 + Σ_<ij> J S_i·S_j summed over an explicit large cluster
    energies = []
    for atoms in structures:
        big = atoms.repeat(3)
        radii = shell_radii(big, 2)
        counts = pair_counts(big, radii)
        energies.append(e0 + j1 * counts[0] + j2 * counts[1])
    assert np.allclose(pair_counts(structures[0], shell_radii(structures[0], 2)), [6, 3])
    fit = fit_exchange(structures, energies)
    assert fit["J1S2"] == pytest.approx(j1, abs=1e-12)
    assert fit["J2S2"] == pytest.approx(j2, abs=1e-12)
    assert fit["E0"] == pytest.approx(e0, abs=1e-12)


def test_exchange_fit_needs_enough_orderings():
    structures = [rocksalt_ordered("NiO", o) for o in ("FM", "AFM-II")]
    with pytest.raises(ValueError, match="cannot determine"):
        fit_exchange(structures, [0.0, -0.1])


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
    assert "AFM-II" in out and "J1 S²" in out
    for name in ("scan.csv", "scan.json", "scan.png", "relaxed.extxyz"):
        assert (tmp_path / name).exists()


def test_scan_cli_bad_target(exported_path, capsys):
    assert main(["scan", "CuO2", "--model", str(exported_path), "--quiet"]) == 2
    assert "neither a rocksalt formula" in capsys.readouterr().err


def test_monte_carlo_neel_temperature_matches_simple_cubic_heisenberg():
    """J1 = 0: AFM-II is four independent simple-cubic antiferromagnets, T_N = 1.443 J2 S²/k_B
    for classical Heisenberg spins (the literature value this checks against)."""
    from ase.units import kB

    from spinmultinet_ase.magnetism.montecarlo import heisenberg_monte_carlo

    j2s2 = 0.004
    temperatures = np.array([0.9, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 2.2]) * j2s2 / kB
    result = heisenberg_monte_carlo(0.0, j2s2, temperatures, cells=6, sweeps=500, equilibration=500)
    assert 1.3 <= result.neel_temperature * kB / j2s2 <= 1.7
    assert result.order_parameter[0] > 0.6 and result.order_parameter[-1] < 0.25
