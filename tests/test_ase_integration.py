"""The calculator under ASE optimisers, ASE molecular dynamics and phonopy."""

from __future__ import annotations

import numpy as np
from ase import Atoms, units
from ase.filters import FrechetCellFilter
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS


def test_bfgs_with_cell_filter(calc, nio_afm2):
    nio_afm2.calc = calc
    start_energy = nio_afm2.get_potential_energy()
    moments = nio_afm2.get_initial_magnetic_moments().copy()
    optimizer = BFGS(FrechetCellFilter(nio_afm2), logfile=None)
    optimizer.run(fmax=2e-3, steps=200)
    assert optimizer.converged()
    assert nio_afm2.get_potential_energy() < start_energy
    assert np.abs(nio_afm2.get_forces()).max() < 2e-3
    # FrechetCellFilter's cell "forces" are the virial per atom: |σ| V / N < fmax
    stress_limit = 2e-3 * len(nio_afm2) / nio_afm2.get_volume()
    assert np.abs(nio_afm2.get_stress()).max() < stress_limit
    assert np.array_equal(nio_afm2.get_initial_magnetic_moments(), moments)


def test_nve_conserves_energy(calc, nio_afm2):
    atoms = nio_afm2.repeat(2)
    atoms.calc = calc
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dynamics = VelocityVerlet(atoms, timestep=1.0 * units.fs, logfile=None)
    energies = []
    for _ in range(40):
        dynamics.run(1)
        energies.append(atoms.get_total_energy())
    kinetic = atoms.get_kinetic_energy()
    assert kinetic > 0
    assert np.ptp(energies) < 1e-3 * len(atoms)


def test_langevin_runs(calc, nio_afm2):
    nio_afm2.calc = calc
    dynamics = Langevin(
        nio_afm2,
        1.0 * units.fs,
        temperature_K=300,
        friction=0.02,
        fixcm=False,
        logfile=None,
        rng=np.random.default_rng(1),
    )
    dynamics.run(10)
    assert np.all(np.isfinite(nio_afm2.get_positions()))


def test_phonopy_force_sets_obey_the_acoustic_sum_rule(calc, nio_afm2):
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = nio_afm2.copy()
    unit.calc = calc
    BFGS(unit, logfile=None).run(fmax=1e-6, steps=300)  # relax positions: a true minimum
    cell = PhonopyAtoms(
        symbols=unit.get_chemical_symbols(),
        cell=unit.cell.array,
        scaled_positions=unit.get_scaled_positions(),
        magnetic_moments=unit.get_initial_magnetic_moments(),
    )
    phonon = Phonopy(cell, supercell_matrix=2 * np.eye(3, dtype=int), primitive_matrix=np.eye(3))
    phonon.generate_displacements(distance=0.01)
    forces = []
    for displaced in phonon.supercells_with_displacements:
        atoms = Atoms(
            displaced.symbols,
            cell=displaced.cell,
            scaled_positions=displaced.scaled_positions,
            pbc=True,
            magmoms=displaced.magnetic_moments,
        )
        atoms.calc = calc
        forces.append(atoms.get_forces())
    phonon.forces = np.array(forces)
    phonon.produce_force_constants()
    frequencies = phonon.run_qpoints([[0.0, 0.0, 0.0]]).frequencies[0]
    assert np.sort(np.abs(frequencies))[:3].max() < 0.05  # THz: acoustic modes at Γ
