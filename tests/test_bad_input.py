"""Bad input gets a clear error that says what to fix."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.data.graph import MAX_NEIGHBORS, require_periodic


def test_unknown_element(calc):
    atoms = Atoms("CuO", positions=[[0, 0, 0], [1.8, 0, 0]], cell=[4, 4, 4], pbc=True)
    atoms.calc = calc
    with pytest.raises(ValueError, match="Cu not in this model"):
        atoms.get_potential_energy()


def test_vector_moments_for_collinear_model(calc, nio_afm2):
    nio_afm2.set_initial_magnetic_moments(None)
    nio_afm2.set_initial_magnetic_moments(np.ones((len(nio_afm2), 3)))
    nio_afm2.calc = calc
    with pytest.raises(ValueError, match="this model is collinear"):
        nio_afm2.get_potential_energy()


def test_non_finite_positions(calc, nio_afm2):
    nio_afm2.positions[1, 2] = np.nan
    nio_afm2.calc = calc
    with pytest.raises(ValueError, match="positions contain NaN"):
        nio_afm2.get_potential_energy()


def test_non_finite_moments(calc, nio_afm2):
    nio_afm2.set_initial_magnetic_moments([2.0, 0.0, np.inf, 0.0])
    nio_afm2.calc = calc
    with pytest.raises(ValueError, match="initial_magmoms contain NaN or infinity"):
        nio_afm2.get_potential_energy()


def test_stress_of_non_periodic_system(calc):
    atoms = Atoms("NiO", positions=[[0, 0, 0], [2.0, 0, 0]])
    atoms.calc = calc
    assert np.isfinite(atoms.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError, match="periodic in all three directions"):
        atoms.get_stress()


def test_zero_volume_periodic_cell(calc):
    atoms = Atoms("NiO", positions=[[0, 0, 0], [2.0, 0, 0]], cell=[4.0, 4.0, 0.0], pbc=True)
    atoms.calc = calc
    with pytest.raises(ValueError, match="zero length along a periodic direction"):
        atoms.get_stress()


def test_bad_dtype(exported_path):
    with pytest.raises(ValueError, match="dtype must be one of"):
        SpinMultiNetCalculator(exported_path, dtype="float16")


def test_changed_moments_trigger_recalculation(calc, nio_afm2):
    """check_state sees initial_magmoms: the FM energy is not the cached AFM one."""
    nio_afm2.calc = calc
    e_afm = nio_afm2.get_potential_energy()
    nio_afm2.set_initial_magnetic_moments(np.abs(nio_afm2.get_initial_magnetic_moments()))
    assert nio_afm2.get_potential_energy() != e_afm


def test_moments_of_wrong_shape(calc, nio_afm2):
    nio_afm2.set_initial_magnetic_moments(None)
    nio_afm2.set_initial_magnetic_moments(np.ones((len(nio_afm2), 2)))
    nio_afm2.calc = calc
    with pytest.raises(ValueError, match=r"initial_magmoms has shape \(4, 2\); expected \(4,\)"):
        nio_afm2.get_potential_energy()


def test_empty_structure(calc):
    atoms = Atoms(cell=[4.0, 4.0, 4.0], pbc=True)
    atoms.calc = calc
    with pytest.raises(ValueError, match="the structure has no atoms"):
        atoms.get_potential_energy()


def test_coplanar_periodic_cell(calc):
    """Three nonzero but coplanar cell vectors: no volume, so no 3-D lattice."""
    cell = [[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [4.0, 4.0, 0.0]]
    atoms = Atoms("NiO", positions=[[0, 0, 0], [2.0, 0, 0]], cell=cell, pbc=True)
    atoms.calc = calc
    with pytest.raises(ValueError, match="periodic cell vectors .* are linearly dependent"):
        atoms.get_potential_energy()
    with pytest.raises(ValueError, match="span no volume"):
        require_periodic(atoms, "computing phonons")


@pytest.mark.parametrize(
    ("second", "image"),
    [([0.0, 0.0, 0.0], ""), ([4.0, 0.0, 0.0], r" \(image shifted by \[-1, 0, 0\] cells\)")],
    ids=["same-cell", "periodic-image"],
)
def test_coincident_atoms(calc, second, image):
    atoms = Atoms("NiO", positions=[[0, 0, 0], second], cell=[4.0] * 3, pbc=True, magmoms=[2, 0])
    atoms.calc = calc
    with pytest.raises(ValueError, match=f"atoms 0 and 1{image} are 0 Å apart, closer than"):
        atoms.get_forces()


def test_cell_in_nanometres(calc):
    """NiO with its lattice constant typed in nm: refused before any neighbour is searched."""
    atoms = bulk("NiO", "rocksalt", a=0.417)
    atoms.calc = calc
    with pytest.raises(ValueError, match=f"neighbours per atom .* limit of {MAX_NEIGHBORS}"):
        atoms.get_potential_energy()


def test_complex_positions(calc, nio_afm2):
    nio_afm2.arrays["positions"] = nio_afm2.positions.astype(complex)
    nio_afm2.calc = calc
    with pytest.raises(ValueError, match="positions have dtype complex128"):
        nio_afm2.get_potential_energy()


def test_text_moments(calc, nio_afm2):
    nio_afm2.set_initial_magnetic_moments(None)
    nio_afm2.set_array("initial_magmoms", np.array(["up", "0", "down", "0"]))
    nio_afm2.calc = calc
    with pytest.raises(ValueError, match="initial_magmoms have dtype <U4; set the moments"):
        nio_afm2.get_potential_energy()


def test_structures_that_crash_the_neighbour_search(exported_path):
    """Inputs that made vesin divide by zero (a crash) or search for minutes get an error or
    a finite energy; run in a child process so that a crash fails the test, not the run."""
    script = textwrap.dedent(
        f"""
        import numpy as np
        from ase import Atoms
        from spinmultinet_ase.calculator import SpinMultiNetCalculator

        calc = SpinMultiNetCalculator({str(exported_path)!r})
        cases = [
            ("far", [[0, 0, 0], [1e7, 0, 0]], np.zeros((3, 3)), False),
            ("apart", [[0, 0, 0], [5e5, 0, 0]], np.zeros((3, 3)), False),
            ("wire", [[0, 0, 0], [1, 3e3, 3e3]], np.diag([5.0, 0, 0]), [True, False, False]),
            ("flat", [[0, 0, 0], [1, 0, 0]], np.diag([5.0, 3e3, 3e3]), True),
        ]
        for name, positions, cell, pbc in cases:
            atoms = Atoms("NiO", positions=positions, cell=cell, pbc=pbc, magmoms=[2, 0])
            atoms.calc = calc
            try:
                print(name, np.isfinite(atoms.get_potential_energy()), flush=True)
            except ValueError as error:
                print(name, "ValueError", error, flush=True)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    assert lines["far"].startswith("ValueError positions or cell entries beyond 1e+06 Å")
    assert lines["apart"] == "True"
    for name in ("wire", "flat"):
        assert lines[name].startswith("ValueError the atoms and cell span"), lines[name]


def test_overlapping_atoms_in_a_symmetry_search_are_one_line_and_no_warning(recwarn):
    """spglib's failure on two atoms at one place is a ValueError naming the material, with no
    deprecation warning from spglib, and spglib's global error mode is left as it was."""
    import spglib.error

    from spinmultinet_ase.magnetism.spacegroup import symmetry_operations

    before = spglib.error.OLD_ERROR_HANDLING
    cell = (4.0 * np.eye(3), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1e-5]]), np.array([28, 28]))
    with pytest.raises(ValueError, match="search failed on Ni2 .*too close"):
        symmetry_operations(cell, "Ni2", symprec=1e-4)
    simple_cubic = (4.0 * np.eye(3), np.zeros((1, 3)), np.array([28]))
    assert symmetry_operations(simple_cubic, "Ni", symprec=1e-4)["rotations"].shape == (48, 3, 3)
    assert spglib.error.OLD_ERROR_HANDLING == before
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_spglib_old_error_mode_from_the_environment_is_one_line_too(monkeypatch):
    """With spglib's old error mode chosen by its environment variable, a failed search still
    raises the one-line error instead of handing None on."""
    from spinmultinet_ase.magnetism.spacegroup import symmetry_dataset

    monkeypatch.setenv("SPGLIB_OLD_ERROR_HANDLING", "1")
    cell = (4.0 * np.eye(3), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1e-5]]), np.array([28, 28]))
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="no symmetry for Ni2"):
        symmetry_dataset(cell, "Ni2", symprec=1e-4)
