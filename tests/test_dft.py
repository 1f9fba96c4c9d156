"""The GPAW labelling pipeline, run for real on a tiny cell with cheap settings."""

from __future__ import annotations

import numpy as np
import pytest
from ase.io import read, write
from ase.units import GPa

from spinmultinet_ase.dft.label import (
    STATUS,
    STATUS_OK,
    label_file,
    magnetic_state_problem,
    rejected_path,
)
from spinmultinet_ase.dft.protocol import DFTProtocol
from spinmultinet_ase.dft.structures import reference_structures
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered

CHEAP = DFTProtocol(
    ecut_ev=300.0,
    kpoint_density=1.0,
    energy_convergence_ev=1e-4,
    density_convergence=1e-3,
    pulay_stress={"NiO": -1.0},
)


def test_pulay_stress_correction():
    protocol = DFTProtocol(pulay_stress={"NiO": 2.0})
    assert protocol.pulay_stress_correction("NiO", 4, 80.0) == pytest.approx(0.1)
    assert DFTProtocol(pulay_stress=None).pulay_stress_correction("CoO", 4, 80.0) == 0.0
    with pytest.raises(ValueError, match="no Pulay-stress calibration for CoO"):
        protocol.pulay_stress_correction("CoO", 4, 80.0)


def test_magnetic_state_problems():
    symbols = ["Ni", "O", "Ni", "O"]
    initial = np.array([2.0, 0.0, -2.0, 0.0])
    assert magnetic_state_problem(symbols, initial, np.array([1.7, 0.01, -1.7, 0.0])) == ""
    assert "flipped" in magnetic_state_problem(symbols, initial, np.array([1.7, 0, 1.7, 0]))
    assert "collapsed" in magnetic_state_problem(symbols, initial, np.array([0.1, 0, -1.7, 0]))


def test_reference_structures_are_tagged_and_unique():
    frames = reference_structures(("NiO",))
    ids = [a.info["structure_id"] for a in frames]
    assert len(set(ids)) == len(ids)
    assert {len(a) for a in frames} == {2, 4, 8, 16}
    guesses = np.concatenate([np.abs(a.get_initial_magnetic_moments()[::2]) for a in frames])
    assert guesses.min() < 1.5 and guesses.max() > 2.5  # imperfect guesses around 2 μB


def test_gpaw_labelling_end_to_end(tmp_path):
    pytest.importorskip("gpaw")
    atoms = rocksalt_ordered("NiO", "FM")
    atoms.rattle(0.03, seed=0)
    atoms.info["structure_id"] = "tiny-NiO-FM"
    write(tmp_path / "in.extxyz", atoms)
    out = tmp_path / "out.extxyz"
    label_file(tmp_path / "in.extxyz", out, protocol=CHEAP)

    frames = read(out, index=":")
    assert len(frames) == 1 and not rejected_path(out).exists()
    labelled = frames[0]
    assert labelled.info[STATUS] == STATUS_OK
    assert labelled.info["dft_ecut_ev"] == 300.0
    assert labelled.info["dft_code"].startswith("gpaw-")
    assert np.allclose(labelled.get_initial_magnetic_moments(), [2.0, 0.0])
    assert labelled.get_forces().shape == (2, 3)
    assert labelled.get_stress().shape == (6,)
    correction = -1.0 / atoms.get_volume()  # p · n_fu / V with p = -1 eV, one formula unit
    assert labelled.info["dft_pulay_stress_gpa"] * GPa == pytest.approx(correction)
    assert np.isfinite(labelled.get_potential_energy())
    assert 1.0 < labelled.get_magnetic_moments()[0] < 2.0  # a converged Ni moment
    assert (tmp_path / "out_logs" / "tiny-NiO-FM.txt").exists()

    label_file(tmp_path / "in.extxyz", out, protocol=CHEAP)  # resumes: nothing left to do
    assert len(read(out, index=":")) == 1


def test_data_card_from_the_shipped_data(tmp_path):
    """The card is written from the data files: counts and sections follow what is there."""
    import shutil
    from pathlib import Path

    from spinmultinet_ase.dft.card import write_card

    data = Path(__file__).parents[1] / "data"
    for name in ("structures.extxyz", "reference.extxyz", "convergence.json"):
        shutil.copy(data / name, tmp_path / name)
    text = write_card(tmp_path)
    labelled = len(read(tmp_path / "reference.extxyz", index=":"))
    assert f"{labelled} of {len(read(tmp_path / 'structures.extxyz', index=':'))}" in text
    assert "## Convergence of the protocol" in text and "Pulay correction" in text
    assert (tmp_path / "README.md").read_text() == text
