"""The GPAW labelling pipeline, run for real on a tiny cell with cheap settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.lj import LennardJones
from ase.io import read, write
from ase.neighborlist import neighbor_list
from ase.units import GPa

from spinmultinet_ase.dft.label import (
    STATUS,
    STATUS_OK,
    label_file,
    magnetic_state_problem,
    rejected_path,
)
from spinmultinet_ase.dft.orientation import bond_alignment_rotation, rotate_back, rotated
from spinmultinet_ase.dft.protocol import DFTProtocol
from spinmultinet_ase.dft.structures import (
    HELD_OUT_CELLS,
    HELD_OUT_ORDERINGS,
    PARTNER_RECIPE,
    reference_structures,
)
from spinmultinet_ase.magnetism.rocksalt import ROCKSALT_LATTICE_CONSTANTS, rocksalt_ordered
from spinmultinet_ase.testing.orderings import EXPECTED_PARALLEL, parallel_neighbour_counts
from spinmultinet_ase.testing.symmetry import random_orthogonal
from spinmultinet_ase.train.config import DataConfig
from spinmultinet_ase.train.dataset import split_of

MPIEXEC = "/usr/bin/mpiexec"

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
    # A site of an element without a default guess is judged against its initial moment.
    assert "collapsed" in magnetic_state_problem(["Zn"], np.array([1.0]), np.array([0.3]))
    assert magnetic_state_problem(["Zn"], np.array([1.0]), np.array([0.5])) == ""


def test_reference_structures_are_tagged_and_unique():
    frames = reference_structures(("NiO",))
    ids = [a.info["structure_id"] for a in frames]
    assert len(set(ids)) == len(ids)
    assert {len(a) for a in frames} == {2, 4, 8, 16}
    guesses = np.concatenate([np.abs(a.get_initial_magnetic_moments()[::2]) for a in frames])
    assert guesses.min() < 1.5 and guesses.max() > 2.5  # imperfect guesses around 2 μB
    # Frames the reference split keeps out of training whole are labelled last.
    config = DataConfig(test_orderings=HELD_OUT_ORDERINGS, test_cells=HELD_OUT_CELLS)
    held_out = [
        a.info["ordering"] in config.test_orderings or a.info["cell_name"] in config.test_cells
        for a in frames
    ]
    first = held_out.index(True)
    assert first > len(frames) // 2 and all(held_out[first:])


def test_ordering_partners_share_the_geometry_and_the_split_of_their_source():
    frames = reference_structures(("MnO",))
    ids = [a.info["structure_id"] for a in frames]
    by_id = dict(zip(ids, frames, strict=True))
    partners = [a for a in frames if "partner_of" in a.info]
    assert len(partners) == sum(count for *_, count in PARTNER_RECIPE)
    a = ROCKSALT_LATTICE_CONSTANTS["MnO"]
    checked_signs = 0
    for partner in partners:
        source = by_id[partner.info["partner_of"]]
        assert ids.index(partner.info["structure_id"]) == ids.index(source.info["structure_id"]) + 1
        assert partner.info["ordering"] != source.info["ordering"]
        np.testing.assert_array_equal(partner.positions, source.positions)
        np.testing.assert_array_equal(partner.cell.array, source.cell.array)
        config = DataConfig(test_orderings=HELD_OUT_ORDERINGS, test_cells=HELD_OUT_CELLS)
        assert split_of(partner, config) == split_of(source, config)
        if source.info["rattle_angstrom"] <= 0.1:  # neighbour shells stay apart
            for atoms in (source, partner):
                expected = EXPECTED_PARALLEL[atoms.info["ordering"]]
                assert set(parallel_neighbour_counts(atoms, a).values()) == {expected}
            checked_signs += 1
    assert checked_signs >= 10


@pytest.mark.parametrize("cell_name", ["prim-2", "afm1-4", "afm2-4", "afm3-8", "prim222-16"])
def test_bond_alignment_is_unique_up_to_a_cube_symmetry(cell_name):
    atoms = next(a for a in reference_structures(("NiO",)) if a.info["cell_name"] == cell_name)
    atoms.rattle(0.1, seed=1)
    turn = random_orthogonal(2)
    rotation = bond_alignment_rotation(atoms)
    rotation_of_turned = bond_alignment_rotation(rotated(atoms, turn))
    # Both end in one orientation, up to a signed permutation of the axes.
    between = rotation_of_turned @ turn @ rotation.T
    assert np.allclose(np.abs(between), np.abs(between).round(), atol=1e-9)
    assert np.allclose(np.abs(between).sum(axis=0), 1.0)


def test_an_axis_aligned_cell_is_not_turned():
    ideal = bulk("NiO", "rocksalt", a=4.17, cubic=True)
    assert np.allclose(bond_alignment_rotation(ideal), np.eye(3), atol=1e-9)
    # A sheared cubic cell turns by its small shear only: no 90° or 180° turn of the axes.
    sheared = next(a for a in reference_structures(("NiO",)) if a.info["cell_name"] == "cubic-8")
    assert np.trace(bond_alignment_rotation(sheared)) > 2.99


def test_ideal_bonds_end_exactly_on_the_axes():
    for ordering in ("FM", "AFM-I", "AFM-II"):
        atoms = rocksalt_ordered("NiO", ordering)
        turned = rotated(atoms, bond_alignment_rotation(atoms))
        bonds = neighbor_list("D", turned, 2.5)
        assert np.allclose(np.sort(np.abs(bonds), axis=1)[:, :2], 0.0, atol=1e-9)


def test_results_turn_back_into_the_original_frame():
    atoms = rocksalt_ordered("NiO", "AFM-II")
    atoms.rattle(0.1, seed=3)
    atoms.calc = LennardJones(sigma=2.0, rc=4.0)
    turn = random_orthogonal(4)
    turned = rotated(atoms, turn)
    turned.calc = LennardJones(sigma=2.0, rc=4.0)
    back = rotate_back({"forces": turned.get_forces(), "stress": turned.get_stress()}, turn)
    assert np.allclose(back["forces"], atoms.get_forces(), atol=1e-10)
    assert np.allclose(back["stress"], atoms.get_stress(), atol=1e-12)


def test_gpaw_labelling_end_to_end(tmp_path):
    pytest.importorskip("gpaw")
    atoms = rocksalt_ordered("NiO", "FM")
    atoms.rattle(0.03, seed=0)
    atoms.info["structure_id"] = "tiny-NiO-FM"
    # The same crystal turned: GPAW runs both in the bond-aligned frame.
    turn = random_orthogonal(5)
    turned = rotated(atoms, turn)
    turned.info["structure_id"] = "tiny-NiO-FM-turned"
    write(tmp_path / "in.extxyz", [atoms, turned])
    out = tmp_path / "out.extxyz"
    label_file(tmp_path / "in.extxyz", out, protocol=CHEAP)

    frames = read(out, index=":")
    assert len(frames) == 2 and not rejected_path(out).exists()
    labelled, labelled_turned = frames
    assert labelled.info["dft_bonds_along_axes"]
    energy = labelled.get_potential_energy()
    # Both runs see one crystal orientation (measured: equal to 1e-13 eV; without the
    # alignment the two energies differ by 6e-4 eV).
    assert labelled_turned.get_potential_energy() == pytest.approx(energy, abs=1e-6)
    assert np.allclose(labelled_turned.get_forces(), labelled.get_forces() @ turn.T, atol=1e-5)
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
    assert len(read(out, index=":")) == 2


def test_label_command_starts_under_mpiexec(tmp_path):
    """Both ranks of ``mpiexec -n 2 spinmultinet label`` bring up GPAW's MPI (as the queue does)."""
    pytest.importorskip("gpaw")
    # GPAW's MPI is Debian's OpenMPI: its mpiexec, not another MPI's first on PATH.
    if not Path(MPIEXEC).exists() or shutil.which("spinmultinet") is None:
        pytest.skip(f"needs {MPIEXEC} and the installed spinmultinet command")
    atoms = rocksalt_ordered("NiO", "FM")
    atoms.info["structure_id"] = "tiny-NiO-FM"
    write(tmp_path / "in.extxyz", atoms)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env.pop("GPAW_MPI_BACKEND", None)
    command = [MPIEXEC, "-n", "2", "spinmultinet", "label", "in.extxyz", "out.extxyz"]
    done = subprocess.run(
        [*command, "--limit", "0"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "0 of 1 already labelled; 0 to do" in done.stdout


def test_data_card_from_the_shipped_data(tmp_path):
    """The card is written from the data files: counts and sections follow what is there."""

    from spinmultinet_ase.reference.data_card import write_card

    data = Path(__file__).parents[1] / "data"
    for name in ("structures.extxyz", "reference.extxyz", "convergence.json"):
        shutil.copy(data / name, tmp_path / name)
    data = DataConfig(path=str(tmp_path / "reference.extxyz"), materials=("MnO", "NiO"))
    text = write_card(tmp_path, data)
    labelled = Counter(a.info["material"] for a in read(tmp_path / "reference.extxyz", index=":"))
    designed = Counter(a.info["material"] for a in read(tmp_path / "structures.extxyz", index=":"))
    for material in ("MnO", "NiO"):
        assert f"| {material} | {designed[material]} | {labelled[material]} | 0 |" in text
    assert "## Convergence of the protocol" in text and "Pulay correction" in text
    assert (tmp_path / "README.md").read_text() == text


def test_ordering_kpoint_summary_recovers_heisenberg_constants_and_the_cell_offset():
    """Yardsticks from Heisenberg energies (J from 3×3×3 clusters) with a k-mesh offset on one
    cell: the orderings are taken within a cell, so the offset shows only as the FM cell
    difference and J1, J2 come back exactly."""
    from spinmultinet_ase.dft.structures import CELLS
    from spinmultinet_ase.magnetism.exchange import exchange_shells
    from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
    from spinmultinet_ase.reference.convergence import (
        ORDERING_CELLS,
        cross_cell_key,
        summarise_ordering_kpoints,
    )

    j1, j2, cell_offset = 0.0004, 0.0112, {"afm1-4": 0.0008, "afm2-4": 0.0}
    results = {}
    for cell, ordering in ORDERING_CELLS:
        big = rocksalt_ordered("NiO", ordering, CELLS[cell]).repeat(3)
        counts = exchange_shells(big, 2).counts(big)
        energy = -12.7 + j1 * counts[0] + j2 * counts[1] + cell_offset[cell]
        results[cross_cell_key("NiO", ordering, cell, 4.0)] = {"energy_per_fu": energy, "wall_s": 1}
    row = summarise_ordering_kpoints(results)["NiO kdensity=4.0"]
    assert row["J1S2_meV"] == pytest.approx(1000 * j1, abs=1e-9)
    assert row["J2S2_meV"] == pytest.approx(1000 * j2, abs=1e-9)
    assert row["fm_cell_difference_meV_per_fu"] == pytest.approx(0.8, abs=1e-9)
    # per ion: FM 6 J1 + 3 J2, AFM-II −3 J2
    assert row["AFM-II"] == pytest.approx(-6000 * (j1 + j2), abs=1e-9)
    assert row["wall_s"] == 4


def test_yardstick_kpoint_errors_compare_each_cell_with_its_dense_mesh():
    from spinmultinet_ase.reference.convergence import (
        ORDERING_CELLS,
        ORDERING_DENSITIES,
        cross_cell_key,
        yardstick_kpoint_errors,
    )

    coarse, dense = ORDERING_DENSITIES[0], ORDERING_DENSITIES[-1]
    results = {}
    for index, (cell, ordering) in enumerate(ORDERING_CELLS):
        for density, energy in ((coarse, -12.7 + 0.0001 * index), (dense, -12.7)):
            key = cross_cell_key("NiO", ordering, cell, density)
            results[key] = {"energy_per_fu": energy, "wall_s": 1}
    del results[cross_cell_key("NiO", "FM", "afm1-4", dense)]  # a run not made is left out
    errors = yardstick_kpoint_errors(results)
    expected = {f"{c} {o}": 0.1 * i for i, (c, o) in enumerate(ORDERING_CELLS)}
    del expected["afm1-4 FM"]
    assert set(errors) == {"NiO"}
    assert errors["NiO"] == pytest.approx(expected, abs=1e-9)


def test_labelling_time_estimate_uses_the_mean_of_each_material_and_size():
    from spinmultinet_ase.dft.label import COST_EXPONENT, estimated_hours

    def frame(material, repeat, wall_s=None):
        atoms = rocksalt_ordered(material, "FM").repeat((repeat, 1, 1))
        if wall_s is not None:
            atoms.info["dft_wall_s"] = wall_s
        return atoms

    labelled = [frame("NiO", 1, 100.0), frame("NiO", 1, 300.0), frame("MnO", 1, 50.0)]
    assert estimated_hours([], [frame("NiO", 1)]) is None
    assert estimated_hours(labelled, []) == 0.0
    # two NiO 2-atom frames at their mean (200 s); an unseen size at the mean time per atom^1.5
    per_cost = np.mean([100.0, 300.0, 50.0]) / 2**COST_EXPONENT
    expected = 2 * 200.0 + per_cost * 4**COST_EXPONENT
    todo = [frame("NiO", 1), frame("NiO", 1), frame("MnO", 2)]
    assert estimated_hours(labelled, todo) == pytest.approx(expected / 3600)


def test_state_check_rejects_the_symmetric_feo_metal_and_accepts_whole_orbitals():
    """Numbers of real GPAW runs of ideal AFM-II FeO (data/studies/feo_coo_states.md), as
    diagonal occupation matrices."""
    from spinmultinet_ase.dft.states import state_problem

    # The symmetric start (protocol settings): the minority electron split over two orbitals,
    # the two e_g' of the trigonal cell (half an electron in the a1g target at most).
    split = {0: np.diag([0.461, 0.461, 0.068, 0.068, 0.029])}
    problem = state_problem("FeO", 0.134, split, {0: 0.07})
    assert "band gap 0.13 eV" in problem and "not 1 whole orbital" in problem
    assert "target orbitals" not in problem  # FeO's rule records the target filling only
    # Moments x 1.4 (protocol settings): one whole orbital, the a1g target.
    whole = {0: np.diag([0.973, 0.07, 0.07, 0.02, 0.02])}
    assert state_problem("FeO", 1.91, whole, {0: 0.973}) == ""
    # The same occupations are one electron short for Co2+ (two minority t2g electrons).
    assert "not 2 whole orbital" in state_problem("CoO", 1.91, whole, {0: 1.04})


def test_only_feo_and_coo_follow_the_orbital_state_rule():
    from spinmultinet_ase.dft.states import needs_broken_symmetry

    assert needs_broken_symmetry("FeO") and needs_broken_symmetry("CoO")
    assert not needs_broken_symmetry("NiO") and not needs_broken_symmetry("Fe2O3")


def test_partner_check_flags_a_pair_in_two_electronic_states():
    """AFM-II FeO from the symmetric and the broken-symmetry start (the study's energies) differ
    like two states; MnO's ordering energies (data/yardsticks.json) like one."""
    from spinmultinet_ase.dft.states import partner_problem

    assert "0.93 eV per formula unit" in partner_problem(-28.509389, -30.366545, 2)
    assert partner_problem(-0.0623 * 2, 0.0, 2) == ""


# Energies (eV per formula unit) of ideal AFM-II FeO, 4-atom cell, protocol settings
# (data/studies/feo_coo_states.md): the insulating broken-symmetry state, the trigonal a1g
# insulator, and the metal the symmetric start keeps; and FM in that cell in the a1g state.
FEO_AFM_II_INSULATOR = -15.18327
FEO_AFM_II_A1G = -15.16845
FEO_AFM_II_METAL = -14.25469
FEO_FM_A1G = -15.1448


def test_the_higher_states_of_a_partner_group_are_the_wrong_ones():
    from spinmultinet_ase.dft.states import higher_states

    def per_cell(*energies):  # two formula units in the cell
        return [2 * e for e in energies]

    source_high = higher_states(per_cell(FEO_AFM_II_METAL, FEO_AFM_II_INSULATOR), 2)
    assert list(source_high) == [0] and source_high[0].startswith("0.93 eV per formula unit")
    assert list(higher_states(per_cell(FEO_AFM_II_INSULATOR, FEO_AFM_II_METAL), 2)) == [1]
    three = per_cell(FEO_AFM_II_INSULATOR, FEO_AFM_II_METAL, FEO_AFM_II_A1G)
    assert list(higher_states(three, 2)) == [1]
    # AFM-II and FM in one orbital order: an exchange-sized 24 meV per formula unit apart.
    assert higher_states(per_cell(FEO_AFM_II_A1G, FEO_FM_A1G), 2) == {}
    assert higher_states([-1.0], 1) == {}


def _feo_frame(sid: str, ordering: str, energy: float | None = None, partner_of: str = ""):
    """Ideal FeO in the 4-atom AFM-II cell with ``ordering``'s moments (FM or AFM-II), with a
    DFT ``energy`` (eV) if given."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from spinmultinet_ase.dft.label import STRUCTURE_ID

    atoms = rocksalt_ordered("FeO", "AFM-II")
    if ordering == "FM":
        atoms.set_initial_magnetic_moments(np.abs(atoms.get_initial_magnetic_moments()))
    atoms.info[STRUCTURE_ID] = sid
    if partner_of:
        atoms.info["partner_of"] = partner_of
    if energy is not None:
        atoms.info[STATUS] = STATUS_OK
        atoms.calc = SinglePointCalculator(atoms, energy=energy)
    return atoms


def test_labeller_rejects_the_higher_frame_of_a_pair_in_two_electronic_states():
    from spinmultinet_ase.dft.label import _check_partners

    source = _feo_frame("src", "AFM-II", 2 * FEO_AFM_II_INSULATOR)
    far = _feo_frame("src-as-FM", "FM", 2 * FEO_AFM_II_METAL, partner_of="src")
    assert _check_partners(far, [source]) == []
    assert far.info[STATUS].startswith("wrong electronic state: 0.93 eV per formula unit")
    assert source.info[STATUS] == STATUS_OK

    source = _feo_frame("src", "AFM-II", 2 * FEO_AFM_II_METAL)
    near = _feo_frame("src-as-FM", "FM", 2 * FEO_AFM_II_INSULATOR, partner_of="src")
    assert _check_partners(near, [source]) == [source]
    assert source.info[STATUS].startswith("wrong electronic state: 0.93 eV per formula unit")
    assert near.info[STATUS] == STATUS_OK

    # Another geometry's frames are not compared, nor are frames rejected already.
    other = _feo_frame("other", "AFM-II", 2 * FEO_AFM_II_INSULATOR)
    failed = _feo_frame("src", "AFM-II", 2 * FEO_AFM_II_INSULATOR)
    failed.info[STATUS] = "not converged"
    metal = _feo_frame("src-as-FM", "FM", 2 * FEO_AFM_II_METAL, partner_of="src")
    assert _check_partners(metal, [other, failed]) == []
    assert metal.info[STATUS] == STATUS_OK


def _study_labeller(monkeypatch, in_path: Path) -> list[str]:
    """Write an FeO source (FeO-0) and its FM partner to ``in_path`` and put a stand-in for the
    hour-long GPAW run into the labeller: the study's energy of each frame's state, the source
    in the metallic AFM-II state, its partner in the insulating a1g state. Returns the list the
    stand-in appends each structure id it runs to."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from spinmultinet_ase.dft import label

    energies = {"FeO-0": 2 * FEO_AFM_II_METAL, "FeO-0-as-FM": 2 * FEO_FM_A1G}
    runs = []

    def study_run(atoms, protocol, txt, failures=None, max_scf_steps=None):
        sid = atoms.info[label.STRUCTURE_ID]
        runs.append(sid)
        result = atoms.copy()
        result.info.update({STATUS: STATUS_OK, "dft_wall_s": 1.0}, **label._start_info("FeO"))
        forces = np.zeros((len(atoms), 3))
        result.calc = SinglePointCalculator(result, energy=energies[sid], forces=forces)
        return result

    monkeypatch.setattr(label, "label_structure", study_run)
    source, partner = _feo_frame("FeO-0", "AFM-II"), _feo_frame("FeO-0-as-FM", "FM", None, "FeO-0")
    write(in_path, [source, partner])
    return runs


def test_labeller_moves_a_source_in_a_higher_state_than_its_partner_out_of_the_output(
    tmp_path, monkeypatch, capsys
):
    """A source in FeO's metallic AFM-II state, its FM partner in the insulating a1g state."""
    pytest.importorskip("gpaw")

    from spinmultinet_ase.dft import label

    runs = _study_labeller(monkeypatch, tmp_path / "in.extxyz")
    out = tmp_path / "out.extxyz"
    protocol = DFTProtocol(pulay_stress=None)
    label.label_file(tmp_path / "in.extxyz", out, protocol=protocol)

    printed = capsys.readouterr().out
    assert "[1/2] FeO-0 (4 atoms) 1 s: ok" in printed  # accepted first, then moved
    assert "moved FeO-0 to rejected: wrong electronic state: 0.89 eV per formula unit" in printed
    accepted = read(out, index=":")
    assert [a.info[label.STRUCTURE_ID] for a in accepted] == ["FeO-0-as-FM"]
    assert accepted[0].info[STATUS] == STATUS_OK
    assert accepted[0].get_potential_energy() == pytest.approx(2 * FEO_FM_A1G)
    assert np.array_equal(accepted[0].get_initial_magnetic_moments(), [4, 0, 4, 0])
    rejected = read(rejected_path(out), index=":")
    assert [a.info[label.STRUCTURE_ID] for a in rejected] == ["FeO-0"]
    assert rejected[0].info[STATUS].startswith("wrong electronic state: 0.89 eV per formula unit")
    assert rejected[0].get_potential_energy() == pytest.approx(2 * FEO_AFM_II_METAL)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.extxyz",
        "out.extxyz",
        "out.rejected.extxyz",
        "out_logs",
    ]

    files = {path: path.read_bytes() for path in (out, rejected_path(out))}
    runs.clear()
    label.label_file(tmp_path / "in.extxyz", out, protocol=protocol)  # resumes: nothing to do
    assert runs == []
    assert {path: path.read_bytes() for path in files} == files


class Kill(Exception):
    """Stands in for a kill of the labeller."""


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4])
def test_a_labeller_killed_at_any_write_loses_no_moved_frame_and_resumes_alike(
    tmp_path, monkeypatch, kill_at
):
    """Killed at the rename of each write to the output or its rejected file (source accepted;
    after its partner's run: source to the rejected file, out of the output, partner into it),
    then run again: only the frame being written is labelled again, a source found in both
    files is taken out of the output, and both files end byte for byte as an uninterrupted
    run's."""
    pytest.importorskip("gpaw")
    from spinmultinet_ase.dft import label

    in_path = tmp_path / "in.extxyz"
    runs = _study_labeller(monkeypatch, in_path)
    protocol = DFTProtocol(pulay_stress=None)
    writes: list[str] = []
    killing = {"at": 0}  # the watched write to kill at (its number), 0 for none
    replace = os.replace

    def replace_or_die(source, target):
        if Path(target).name in {"out.extxyz", "out.rejected.extxyz"}:
            writes.append(Path(target).name)
            if len(writes) == killing["at"]:
                raise Kill
        replace(source, target)

    monkeypatch.setattr(os, "replace", replace_or_die)
    whole = tmp_path / "whole" / "out.extxyz"
    label.label_file(in_path, whole, protocol=protocol)
    assert writes == ["out.extxyz", "out.rejected.extxyz", "out.extxyz", "out.extxyz"]

    out = tmp_path / "killed" / "out.extxyz"
    writes.clear()
    killing["at"] = kill_at
    with pytest.raises(Kill):
        label.label_file(in_path, out, protocol=protocol)
    held = [label.read_output(path)[0] for path in (out, rejected_path(out))]
    ids = [[a.info[label.STRUCTURE_ID] for a in frames] for frames in held]
    assert ids == {1: [[], []], 2: [["FeO-0"], []], 3: [["FeO-0"], ["FeO-0"]]}.get(
        kill_at, [[], ["FeO-0"]]
    )
    runs.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        label.label_file(in_path, out, protocol=protocol)
    taken_out = f"{out}: took out FeO-0, also in {rejected_path(out)}"
    assert any(str(w.message).startswith(taken_out) for w in caught) == (kill_at == 3)
    assert runs == (["FeO-0", "FeO-0-as-FM"] if kill_at == 1 else ["FeO-0-as-FM"])
    for path, reference in ((out, whole), (rejected_path(out), rejected_path(whole))):
        assert path.read_bytes() == reference.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        p.name for p in whole.parent.iterdir()
    )


RANK_SPLIT_DRIVER = """
import sys
from ase.build import bulk
from gpaw import GPAW, PW
from gpaw.convergence_criteria import Criterion
from gpaw.mpi import world
from spinmultinet_ase.dft.scf import RankAgreed


class RankZeroOnly(Criterion):
    name, tablename, description = "rankzero", "rank0", "met on rank 0 only"

    def __call__(self, context):
        return context.wfs.world.rank == 0, ""


criterion = RankZeroOnly() if sys.argv[1] == "plain" else RankAgreed(RankZeroOnly())
atoms = bulk("Li", "bcc", a=3.44)
atoms.calc = GPAW(mode=PW(200), kpts=(2, 2, 2), txt=None,
                  convergence={"custom": [criterion]})
energy = atoms.get_potential_energy()
if world.rank == 0:
    print(f"energy {energy!r}")
"""


def test_rank_agreed_criteria_keep_gpaw_from_aborting_when_ranks_disagree(tmp_path):
    """A criterion met on one rank only aborts a 2-rank GPAW run (GPAW asserts agreement);
    wrapped in RankAgreed, the run finishes and every rank follows rank 0's verdict."""
    pytest.importorskip("gpaw")
    if not Path(MPIEXEC).exists():
        pytest.skip(f"needs {MPIEXEC} (GPAW's MPI)")
    (tmp_path / "driver.py").write_text(RANK_SPLIT_DRIVER)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env.update(GPAW_MPI_BACKEND="cgpaw", PYTHONPATH=str(Path(__file__).parents[1]))
    runs = {
        variant: subprocess.run(
            [MPIEXEC, "-n", "2", sys.executable, "driver.py", variant],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        for variant in ("plain", "agreed")
    }
    assert runs["plain"].returncode != 0
    assert "nconverged" in runs["plain"].stderr + runs["plain"].stdout
    assert runs["agreed"].returncode == 0, runs["agreed"].stderr[-2000:]
    assert "energy" in runs["agreed"].stdout


def _stacking_axes(atoms, a: float) -> list[tuple[int, ...]]:
    """The body diagonals along which the metal moments of ``atoms`` (bonds along the axes)
    alternate between ferromagnetic (111) planes, AFM-II's stacking (in a 2x2x2 repeat)."""
    atoms = atoms.repeat((2, 2, 2))
    metals = np.array(atoms.get_chemical_symbols()) != "O"
    signs = np.sign(atoms.get_initial_magnetic_moments()[metals])
    axes = []
    for diagonal in ((1, 1, 1), (1, 1, -1), (1, -1, 1), (-1, 1, 1)):
        planes = np.rint(atoms.positions[metals] @ np.array(diagonal) / a).astype(int)
        if np.all(signs == signs[0] * (-1.0) ** (planes - planes[0])):
            axes.append(diagonal)
    return axes


def test_feo_frames_get_the_orbital_bias_about_their_own_axis_with_point_group_symmetry_off(
    tmp_path,
):
    """The labeller's calculator for pool frames of FeO (built, not run): on every Fe the
    minority spin of its initial moment and the a1g projector about the frame's AFM-II stacking
    axis in the bond-aligned frame GPAW runs on, also where that axis is not [111]; the FM
    partner in the same cell gets the same axis; GPAW uses no point-group operation, and FeO's
    capped MSR1 mixing with four PPCG steps per SCF step."""
    pytest.importorskip("gpaw")
    from spinmultinet_ase.dft.label import canonical_rotation, frame_calculator, start_bias
    from spinmultinet_ase.dft.orbital_bias import check_symmetric, trigonal_projector

    frames = reference_structures(("FeO",))
    by_id = {a.info["structure_id"]: a for a in frames}
    a = ROCKSALT_LATTICE_CONSTANTS["FeO"]

    def work_of(atoms):
        return rotated(atoms, canonical_rotation(atoms))

    turned = [
        atoms
        for atoms in frames
        if atoms.info["ordering"] == "AFM-II"
        and atoms.info["cell_name"] == "prim222-16"
        and _stacking_axes(work_of(atoms), a) != [(1, 1, 1)]
    ]
    partner = next(
        p
        for p in frames
        if p.info.get("ordering") == "FM"
        and by_id.get(p.info.get("partner_of"), p).info["ordering"] == "AFM-II"
        and _stacking_axes(work_of(by_id[p.info["partner_of"]]), a) != [(1, 1, 1)]
    )
    source = by_id[partner.info["partner_of"]]
    assert turned
    for atoms, axis_frame in [(t, t) for t in turned] + [(source, source), (partner, source)]:
        work = work_of(atoms)
        (diagonal,) = _stacking_axes(work_of(axis_frame), a)
        bias = start_bias(work)
        calc = frame_calculator(work, CHEAP, tmp_path / "gpaw.txt", bias)
        assert calc.params.extensions == [bias]
        mixer, eigensolver = calc.params.mixer, calc.params.eigensolver
        assert mixer.name == "msr1"
        assert {"max_A": 0.15, "trust_scale": 0.5, "nmaxold": 5}.items() <= (
            mixer.mixer_params.items()
        )
        assert (eigensolver.name, eigensolver.niter, eigensolver.min_niter) == ("ppcg", 4, 2)
        moments = work.get_initial_magnetic_moments()
        iron = [i for i, s in enumerate(work.get_chemical_symbols()) if s == "Fe"]
        assert sorted(bias.targets) == iron
        expected = trigonal_projector(1, np.array(diagonal) / np.sqrt(3.0))
        for i in iron:
            assert bias.targets[i].spin == (1 if moments[i] > 0 else 0)
            assert np.allclose(bias.targets[i].projector, expected, atol=1e-12)
        symmetries = calc.params.dft_component_builder(work, log=None).ibz.symmetries
        assert np.array_equal(symmetries.rotation_scc, [np.eye(3, dtype=int)])
        check_symmetric(bias.targets, symmetries)


@pytest.mark.filterwarnings("ignore:.*grid:UserWarning")
@pytest.mark.parametrize("formula", ["MnO", "NiO", "Cr2O3"])
def test_other_materials_get_no_orbital_bias_and_keep_gpaw_s_symmetry(formula, tmp_path):
    pytest.importorskip("gpaw")
    from spinmultinet_ase.dft.label import canonical_rotation, frame_calculator, start_bias
    from spinmultinet_ase.magnetism.corundum import corundum_cell

    atoms = corundum_cell(formula) if formula == "Cr2O3" else rocksalt_ordered(formula, "AFM-II")
    work = rotated(atoms, canonical_rotation(atoms))
    assert start_bias(work) is None
    calc = frame_calculator(work, CHEAP, tmp_path / "gpaw.txt", None)
    assert calc.params.extensions == []
    assert len(calc.params.dft_component_builder(work, log=None).ibz.symmetries) > 1


def test_an_feo_frame_without_a_minority_spin_to_bias_is_rejected_before_any_run(tmp_path):
    pytest.importorskip("gpaw")
    from spinmultinet_ase.dft.label import ORBITAL_BIAS_START, label_structure
    from spinmultinet_ase.dft.orbital_bias import STRENGTH_EV

    atoms = rocksalt_ordered("FeO", "AFM-II")
    atoms.set_initial_magnetic_moments([4.0, 0.0, 0.0, 0.0])
    protocol = DFTProtocol(ecut_ev=300.0, pulay_stress=None)
    result = label_structure(atoms, protocol, tmp_path / "gpaw.txt")
    assert result.info[STATUS].startswith("no orbital-bias start: Fe atom 2 has no initial moment")
    assert result.info["dft_start"] == ORBITAL_BIAS_START
    assert result.info["dft_bias_strength_ev"] == STRENGTH_EV
    assert result.calc is None and not (tmp_path / "gpaw.txt").exists()


def test_feo_and_coo_frames_of_another_start_rule_are_not_resumed(tmp_path):
    pytest.importorskip("gpaw")
    from spinmultinet_ase.dft.label import ORBITAL_BIAS_START, STRUCTURE_ID, protocol_mismatch
    from spinmultinet_ase.dft.orbital_bias import SCF_KEYWORDS, STRENGTH_EV, scf_record

    feo, mno = rocksalt_ordered("FeO", "AFM-II"), rocksalt_ordered("MnO", "AFM-II")
    feo.info[STRUCTURE_ID], mno.info[STRUCTURE_ID] = "FeO-0", "MnO-0"
    assert protocol_mismatch([mno], CHEAP) == ""  # a plain start records no start rule
    assert protocol_mismatch([feo], CHEAP) == (
        f"FeO-0 has dft_start=None, this run {ORBITAL_BIAS_START}"
    )
    feo.info.update(dft_start=ORBITAL_BIAS_START, dft_bias_strength_ev=STRENGTH_EV)
    # FeO's capped MSR1 belongs to its rule: a frame run with GPAW's default mixer differs,
    assert "dft_scf=None" in protocol_mismatch([feo], CHEAP)
    # and so does one labelled under FeO's earlier rule (damped Pulay mixing)
    earlier = {
        "mixer": {"backend": "pulay", "beta": 0.03, "nmaxold": 5, "weight": 50},
        "eigensolver": {"name": "ppcg", "niter": 4, "min_niter": 2},
    }
    feo.info["dft_scf"] = scf_record(earlier)
    write(tmp_path / "earlier.extxyz", feo)
    assert protocol_mismatch([read(tmp_path / "earlier.extxyz")], CHEAP) == (
        f"FeO-0 has dft_scf={scf_record(earlier)}, this run {scf_record(SCF_KEYWORDS['FeO'])}"
    )
    feo.info["dft_scf"] = scf_record(SCF_KEYWORDS["FeO"])
    assert protocol_mismatch([feo], CHEAP) == ""
    write(tmp_path / "feo.extxyz", feo)  # the record survives the output file
    assert protocol_mismatch([read(tmp_path / "feo.extxyz")], CHEAP) == ""
    feo.info["dft_bias_strength_ev"] = STRENGTH_EV / 2
    assert "dft_bias_strength_ev" in protocol_mismatch([feo], CHEAP)
    coo = rocksalt_ordered("CoO", "AFM-II")
    coo.info.update(dft_start=ORBITAL_BIAS_START, dft_bias_strength_ev=STRENGTH_EV)
    coo.info[STRUCTURE_ID] = "CoO-0"
    # CoO's capped MSR1 belongs to its rule too: a frame run with GPAW's default mixer differs
    assert protocol_mismatch([coo], CHEAP) == (
        f"CoO-0 has dft_scf=None, this run {scf_record(SCF_KEYWORDS['CoO'])}"
    )
    coo.info["dft_scf"] = scf_record(SCF_KEYWORDS["CoO"])
    assert protocol_mismatch([coo], CHEAP) == ""


def test_frame_status_puts_a_wrong_magnetic_state_before_a_wrong_electronic_one():
    from spinmultinet_ase.dft.label import frame_status

    atoms = rocksalt_ordered("NiO", "AFM-II")
    initial = atoms.get_initial_magnetic_moments()
    kept, flipped = 0.9 * initial, 0.9 * np.abs(initial)
    assert frame_status(atoms, kept) == STATUS_OK
    assert frame_status(atoms, kept, "band gap 0.10 eV below 0.5 eV") == (
        "wrong electronic state: band gap 0.10 eV below 0.5 eV"
    )
    status = frame_status(atoms, flipped, "band gap 0.10 eV below 0.5 eV")
    assert status.startswith("wrong magnetic state: ") and "flipped sign" in status


def test_frame_calculator_takes_other_scf_settings_in_place_of_the_materials(tmp_path):
    """What a study of other SCF settings (scripts/bias_release_study.py) runs: the labeller's
    calculator with only the mixer and eigensolver replaced."""
    pytest.importorskip("gpaw")
    from spinmultinet_ase.dft.label import canonical_rotation, frame_calculator, start_bias

    atoms = rocksalt_ordered("FeO", "AFM-II")
    work = rotated(atoms, canonical_rotation(atoms))
    bias = start_bias(work)
    own = frame_calculator(work, CHEAP, tmp_path / "own.txt", bias)
    other = frame_calculator(work, CHEAP, tmp_path / "other.txt", bias, {"mixer": {"beta": 0.02}})
    plain = frame_calculator(work, CHEAP, tmp_path / "plain.txt", bias, {})
    capped = {"max_A": 0.15, "trust_scale": 0.5, "nmaxold": 5}  # FeO's SCF_KEYWORDS
    assert own.params.mixer.name == "msr1"
    assert capped.items() <= own.params.mixer.mixer_params.items()
    assert own.params.eigensolver.niter == 4
    assert other.params.mixer.mixer_params["beta"] == 0.02
    for calc in (other, plain):
        assert not capped.items() & calc.params.mixer.mixer_params.items()
        assert "niter=4" not in repr(calc.params.eigensolver)
    for calc in (other, plain):
        assert calc.params.extensions == [bias]
        for name in ("symmetry", "kpts", "mode", "setups", "occupations", "maxiter"):
            assert repr(getattr(calc.params, name)) == repr(getattr(own.params, name)), name
