"""The partner-group check of an active-learning campaign: a geometry whose frames were
labelled in different rounds (or one in the initial data) is checked as the labeller checks
one file, a kill at any write of the run resumes to the same files, and only FeO and CoO are
judged.

Energies are the study's (data/studies/feo_coo_states.md, as in tests/test_dft.py), written
as labelled frames: the check reads the labelled energies, so no GPAW run is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.dft import label
from spinmultinet_ase.dft.label import wrong_states
from spinmultinet_ase.export import export_model
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.testing.models import TINY_CONFIG, random_model
from spinmultinet_ase.train import active
from spinmultinet_ase.train.active import ActiveLearning, load_active_config, select

SPECIES = ("O", "Mn", "Fe")
# Ideal AFM-II FeO, 4-atom cell, eV per formula unit: the insulating broken-symmetry state,
# the trigonal a1g insulator, the metal the symmetric start keeps; FM in the a1g state.
FEO_AFM_II_INSULATOR = -15.18327
FEO_AFM_II_A1G = -15.16845
FEO_AFM_II_METAL = -14.25469
FEO_FM_A1G = -15.1448


@pytest.fixture(scope="module")
def committee(tmp_path_factory) -> list[Path]:
    """Two tiny random models that differ, as files."""
    folder = tmp_path_factory.mktemp("committee")
    paths = [folder / f"member{seed}.pt" for seed in (1, 2)]
    for seed, path in zip((1, 2), paths, strict=True):
        export_model(random_model(seed=seed, species=SPECIES, **TINY_CONFIG), path)
    return paths


def _frame(sid: str, ordering: str, per_fu: float, partner_of: str = "", formula="FeO") -> Atoms:
    """A labelled frame of ``formula`` in the 4-atom AFM-II cell with ``ordering``'s moments
    (FM or AFM-II), ``per_fu`` eV per formula unit (two in the cell), strained and rattled
    as its source id says (a partner, ``SOURCE-as-FM``, shares its source's geometry)."""
    atoms = rocksalt_ordered(formula, "AFM-II")
    seed = sum(map(ord, sid.split("-as-")[0]))
    atoms.set_cell(atoms.cell * (1 + 0.01 * (seed % 5)), scale_atoms=True)
    atoms.rattle(0.05, seed=seed)
    if ordering == "FM":
        atoms.set_initial_magnetic_moments(np.abs(atoms.get_initial_magnetic_moments()))
    atoms.info.update(structure_id=sid, material=formula, dft_status="ok")
    if partner_of:
        atoms.info["partner_of"] = partner_of
    zeros = np.zeros((len(atoms), 3))
    atoms.calc = SinglePointCalculator(
        atoms,
        energy=2 * per_fu,
        forces=zeros,
        stress=np.zeros(6),
        magmoms=atoms.get_initial_magnetic_moments(),
    )
    return atoms


def _config(folder: Path, committee, pool: list[Atoms], initial: list[Atoms], **changes) -> Path:
    """A retrospective campaign on ``pool`` (its own labelled pool), tiny training."""
    folder.mkdir()
    write(folder / "pool.extxyz", pool)
    write(folder / "initial.extxyz", initial)
    train = {
        "data": {"validation_fraction": 0.0, "test_fraction": 0.0, "guess_rescale": 0.0},
        "model": {**TINY_CONFIG, "species": list(SPECIES)},
        "optim": {"max_epochs": 1, "batch_size": 2},
        "dtype": "float64",
        "num_threads": 1,
    }
    (folder / "train.yaml").write_text(yaml.safe_dump(train))
    values = {
        "pool": str(folder / "pool.extxyz"),
        "labelled_pool": str(folder / "pool.extxyz"),
        "initial_data": str(folder / "initial.extxyz"),
        "committee": [str(p) for p in committee],
        "train_config": str(folder / "train.yaml"),
        "per_round": 1,
        "rounds": 2,
        "output_dir": str(folder / "run"),
        **changes,
    }
    (folder / "active.yaml").write_text(yaml.safe_dump(values))
    return folder / "active.yaml"


def _ids(path: Path) -> list[str]:
    return [a.info["structure_id"] for a in read(path, ":")] if path.stat().st_size else []


def _first_pick(committee, pool: list[Atoms]) -> int:
    """The index of the campaign's first pick (the starting committee's most disputed)."""
    calc = SpinMultiNetCalculator([str(p) for p in committee])
    return select(pool, calc, 1, 0.1)[0][0]


def _split_across_rounds(tmp_path, committee, name, first, second, formula="FeO"):
    """A source and its partner in a pool of two, labelled one per round: the one picked
    first at ``first`` eV per formula unit, the other at ``second``. Returns the run folder,
    the ids (first, second) and the final state."""
    pool = [
        _frame("g", "AFM-II", 0.0, formula=formula),
        _frame("g-as-FM", "FM", 0.0, "g", formula=formula),
    ]
    index = _first_pick(committee, pool)
    order = [index, 1 - index]
    for at, per_fu in zip(order, (first, second), strict=True):
        pool[at].calc.results["energy"] = 2 * per_fu
    other = _frame("other", "AFM-II", FEO_AFM_II_INSULATOR)
    path = _config(tmp_path / name, committee, pool, [other])
    state = ActiveLearning(load_active_config(path), progress=False).run()
    ids = [pool[i].info["structure_id"] for i in order]
    assert state["picked"] == ids
    return tmp_path / name / "run", ids, state


def test_a_later_frame_in_a_higher_state_is_rejected(tmp_path, committee):
    run, (first, second), state = _split_across_rounds(
        tmp_path, committee, "later-high", FEO_AFM_II_INSULATOR, FEO_AFM_II_METAL
    )
    assert _ids(run / "round_2" / "labelled.extxyz") == []
    (rejected,) = read(run / "round_2" / "labelled.rejected.extxyz", ":")
    assert rejected.info["structure_id"] == second
    assert rejected.info["dft_status"].startswith(
        "wrong electronic state: 0.93 eV per formula unit"
    )
    assert rejected.get_potential_energy() == pytest.approx(2 * FEO_AFM_II_METAL)
    assert not (run / "wrong_states.json").exists()
    assert _ids(run / "round_2" / "train.extxyz") == ["other", first]
    assert [r["dft_rejected"] for r in state["curve"]] == [0, 0, 1]
    assert [r["training_frames"] for r in state["curve"]] == [1, 2, 2]


def test_an_earlier_frame_in_a_higher_state_is_left_out_of_this_rounds_training(
    tmp_path, committee
):
    run, (first, second), state = _split_across_rounds(
        tmp_path, committee, "earlier-high", FEO_AFM_II_METAL, FEO_FM_A1G
    )
    listed = json.loads((run / "wrong_states.json").read_text())
    assert list(listed) == [first]
    assert listed[first]["round"] == 2
    assert listed[first]["file"] == str(run / "round_1" / "labelled.extxyz")
    assert listed[first]["status"].startswith("wrong electronic state: 0.89 eV per formula unit")
    # The finished round keeps its file and its training set; round 2 trains without it.
    assert _ids(run / "round_1" / "labelled.extxyz") == [first]
    assert _ids(run / "round_1" / "train.extxyz") == ["other", first]
    assert _ids(run / "round_2" / "labelled.extxyz") == [second]
    assert _ids(run / "round_2" / "train.extxyz") == ["other", second]
    assert not (run / "round_2" / "labelled.rejected.extxyz").exists()
    assert [r["training_frames"] for r in state["curve"]] == [1, 2, 2]


@pytest.mark.parametrize(
    ("formula", "first", "second"),
    [
        ("FeO", FEO_AFM_II_A1G, FEO_FM_A1G),  # one orbital order: 24 meV per formula unit
        ("MnO", FEO_AFM_II_INSULATOR, FEO_AFM_II_METAL),  # MnO has one state: not judged
    ],
)
def test_a_group_in_one_state_or_of_mno_is_left_as_it_is(
    tmp_path, committee, formula, first, second
):
    run, ids, state = _split_across_rounds(tmp_path, committee, formula, first, second, formula)
    assert not (run / "wrong_states.json").exists()
    assert not (run / "round_2" / "labelled.rejected.extxyz").exists()
    assert _ids(run / "round_2" / "train.extxyz") == ["other", *ids]
    assert [r["training_frames"] for r in state["curve"]] == [1, 2, 3]


def _initial_sources(tmp_path, committee, name: str) -> tuple[Path, list[str]]:
    """Two geometries whose sources are in the initial data and whose FM partners are the
    pool, one labelled per round: the first picked's source is in the metallic state (above
    its partner), the second picked's partner is (above its source). Returns the config and
    the pool ids in the order picked."""
    pool = [_frame("a-as-FM", "FM", 0.0, "a"), _frame("b-as-FM", "FM", 0.0, "b")]
    index = _first_pick(committee, pool)
    first, second = pool[index], pool[1 - index]
    first.calc.results["energy"] = 2 * FEO_FM_A1G
    second.calc.results["energy"] = 2 * FEO_AFM_II_METAL
    initial = [
        _frame(first.info["partner_of"], "AFM-II", FEO_AFM_II_METAL),
        _frame(second.info["partner_of"], "AFM-II", FEO_AFM_II_INSULATOR),
    ]
    path = _config(tmp_path / name, committee, pool, initial)
    return path, [first.info["structure_id"], second.info["structure_id"]]


class Stop(Exception):
    pass


def test_initial_data_is_checked_and_a_run_killed_at_any_write_of_the_check_resumes_alike(
    tmp_path, committee, monkeypatch, capsys
):
    path, (first, second) = _initial_sources(tmp_path, committee, "whole")
    whole = ActiveLearning(load_active_config(path), progress=True).run()
    run = tmp_path / "whole" / "run"
    source = first.removesuffix("-as-FM")
    printed = capsys.readouterr().out
    assert (
        f"round 1: {source} ({tmp_path / 'whole' / 'initial.extxyz'}) left out of training "
        "from now on: wrong electronic state: 0.89 eV per formula unit" in printed
    )
    assert (
        f"round 2: {second} to {run / 'round_2' / 'labelled.rejected.extxyz'}: wrong "
        "electronic state: 0.93 eV per formula unit" in printed
    )
    listed = json.loads((run / "wrong_states.json").read_text())
    assert {sid: entry["round"] for sid, entry in listed.items()} == {source: 1}
    others = second.removesuffix("-as-FM")
    assert _ids(run / "round_1" / "train.extxyz") == [others, first]  # this round ...
    assert _ids(run / "round_2" / "train.extxyz") == [others, first]  # ... and the later ones
    assert _ids(run / "round_2" / "labelled.rejected.extxyz") == [second]
    assert [r["training_frames"] for r in whole["curve"]] == [2, 2, 2]

    killed = _initial_sources(tmp_path, committee, "killed")[0]
    watched = {"labelled.extxyz", "labelled.rejected.extxyz", "wrong_states.json"}
    start: list[tuple] = []  # the stage a run resumes at, and its watched writes so far
    kills: list[tuple] = []

    def killing(original):
        """``original``, killed once before each watched write of each resumed stage."""

        def write_or_die(target, *args, **kwargs):
            if Path(target).name in watched:
                start[-1] = (*start[-1][:2], start[-1][2] + 1)
                if start[-1] not in kills:
                    kills.append(start[-1])
                    raise Stop
            return original(target, *args, **kwargs)

        return write_or_die

    writers = [(active, "atomic_path"), (active, "write_text_atomic")]
    writers += [(label, "atomic_path"), (label, "appending")]  # move_to_rejected's
    for module, name in writers:
        monkeypatch.setattr(module, name, killing(getattr(module, name)))
    for _ in range(30):
        learner = ActiveLearning(load_active_config(killed), progress=False)
        start.append((learner.state["round"], learner.state["stage"], 0))
        try:
            state = learner.run()
            break
        except Stop:
            continue
    # Killed before each watched write of each stage a run resumed at: round 1's labelled
    # file (from the labelled pool) and the list, round 2's labelled file (reached from round
    # 1) and in round 2 the labelled file, the list, the rejected file and the labelled file
    # rewritten.
    round_1 = [(1, "start", 1)] + [(1, "selected", n) for n in (1, 2, 3)]
    assert kills == round_1 + [(2, "selected", n) for n in (1, 2, 3, 4)]
    assert state["picked"] == whole["picked"] and state["curve"] == whole["curve"]
    mine = tmp_path / "killed" / "run"
    for name in (
        "round_1/labelled.extxyz",
        "round_2/labelled.extxyz",
        "round_2/labelled.rejected.extxyz",
        "round_1/train.extxyz",
        "round_2/train.extxyz",
    ):
        assert (mine / name).read_bytes() == (run / name).read_bytes(), name
    assert not (mine / "round_1" / "labelled.rejected.extxyz").exists()
    assert json.loads((mine / "wrong_states.json").read_text()) == {
        sid: {**entry, "file": entry["file"].replace("whole", "killed")}
        for sid, entry in listed.items()
    }


def test_frames_of_another_hamiltonian_are_not_compared():
    """0.93 eV per formula unit between a geometry's two frames is a wrong state only when
    both were labelled with one Hamiltonian: another U on Fe changes the total energy itself,
    another U on an element the frames lack changes nothing."""
    low = _frame("g", "AFM-II", FEO_AFM_II_INSULATOR)
    high = _frame("g-as-FM", "FM", FEO_AFM_II_METAL, "g")
    for atoms in (low, high):
        atoms.info.update(dft_xc="PBE", dft_hubbard_u="Co:3.32,Fe:5.3")
    (status,) = wrong_states([low, high]).values()
    assert status.startswith("wrong electronic state: 0.93 eV per formula unit")
    high.info["dft_hubbard_u"] = "Co:5.0,Fe:5.3"
    assert list(wrong_states([low, high])) == [1]
    high.info["dft_hubbard_u"] = "Co:3.32,Fe:4.0"
    assert wrong_states([low, high]) == {}
    high.info["dft_hubbard_u"] = "Co:3.32,Fe:5.3"
    high.info["dft_xc"] = "PBEsol"
    assert wrong_states([low, high]) == {}
