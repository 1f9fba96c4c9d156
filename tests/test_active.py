"""Active learning: the committee's most disputed, distinct structures are picked, and a run
stopped after any stage resumes to the state of an uninterrupted one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ase.build import bulk
from ase.io import read, write
from scipy.spatial.transform import Rotation

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.cli import main
from spinmultinet_ase.export import export_model, load_model
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.testing.models import TINY_CONFIG, as_loaded, random_model
from spinmultinet_ase.train.active import (
    ActiveLearning,
    curve_errors,
    fingerprint,
    input_digests,
    load_active_config,
    pool_scores,
    select,
    spreads,
)
from spinmultinet_ase.train.config import config_from_dict, load_config
from spinmultinet_ase.train.dataset import split_of
from spinmultinet_ase.train.trainer import Trainer

ROOT = Path(__file__).parents[1]
REFERENCE = ROOT / "data" / "reference.extxyz"
SPECIES = ("O", "Mn", "Ni")
MPIEXEC = "/usr/bin/mpiexec"  # GPAW's (Debian OpenMPI)


def _members() -> list:
    """Two tiny random models that differ (seeds 1 and 2)."""
    return [random_model(seed=seed, species=SPECIES, **TINY_CONFIG) for seed in (1, 2)]


@pytest.fixture(scope="module")
def committee(tmp_path_factory) -> list[Path]:
    """The two models as files."""
    folder = tmp_path_factory.mktemp("committee")
    paths = [folder / f"member{seed}.pt" for seed in (1, 2)]
    for model, path in zip(_members(), paths, strict=True):
        export_model(model, path)
    return paths


@pytest.fixture(scope="module")
def reference() -> list:
    """Eight labelled MnO and NiO frames (rattled, strained, several orderings)."""
    every = read(REFERENCE, index=":")
    return every[16:20] + [a for a in every if a.get_chemical_symbols()[0] == "Ni"][16:20]


def _each_member(pool, members, result) -> list[list]:
    """``result(atoms)`` of every pool structure under each member run on its own."""
    singles = [SpinMultiNetCalculator(member) for member in members]
    results = []
    for atoms in pool:
        row = []
        for single in singles:
            copy = atoms.copy()
            copy.calc = single
            row.append(result(copy))
        results.append(row)
    return results


def _oracle_scores(pool, members) -> np.ndarray:
    """Largest per-atom force spread, from each member run on its own."""
    forces = _each_member(pool, members, lambda atoms: atoms.get_forces())
    return np.array([np.linalg.norm(np.std(f, axis=0), axis=1).max() for f in forces])


def _oracle_energy_spreads(pool, members) -> np.ndarray:
    """The members' energy standard deviation per atom with a nonzero initial moment (per atom
    in a structure without one), from each member run on its own."""
    energies = _each_member(pool, members, lambda atoms: atoms.get_potential_energy())
    return np.array(
        [
            np.std(e) / (np.count_nonzero(atoms.get_initial_magnetic_moments()) or len(atoms))
            for atoms, e in zip(pool, energies, strict=True)
        ]
    )


def test_energy_and_combined_scores_match_the_members_run_one_by_one(reference):
    """``energy`` is the members' energy spread per magnetic ion (per atom without moments),
    ``combined`` the larger of the two spreads each over its pool median; picks follow each."""
    members = [as_loaded(model) for model in _members()]
    nonmagnetic = reference[0].copy()
    nonmagnetic.set_initial_magnetic_moments(None)
    pool = [*reference, nonmagnetic]
    forces = _oracle_scores(pool, members)
    energy = _oracle_energy_spreads(pool, members)
    calc = SpinMultiNetCalculator(members)
    measured = np.array([spreads(atoms, calc) for atoms in pool])
    np.testing.assert_allclose(measured[:, 0], forces, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(measured[:, 1], energy, rtol=1e-6, atol=1e-12)
    combined = np.maximum(forces / np.median(forces), energy / np.median(energy))
    for score, oracle in (("forces", forces), ("energy", energy), ("combined", combined)):
        np.testing.assert_allclose(pool_scores(measured, score), oracle, rtol=1e-5)
        picked, _ = select(pool, calc, n=3, min_distance=0.0, score=score)
        assert picked == list(np.argsort(-oracle)[:3]), score
    assert list(np.argsort(-energy)[:3]) != list(np.argsort(-forces)[:3])


def test_disagreement_report_divides_energy_errors_like_the_spreads(reference):
    """scripts/al_disagreement_vs_error.py: a structure's energy error and spread are per
    magnetic ion, per atom in a structure without moments (as the ``energy`` score)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "al_disagreement_vs_error", ROOT / "scripts" / "al_disagreement_vs_error.py"
    )
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    calc = SpinMultiNetCalculator([as_loaded(model) for model in _members()])
    labelled = reference[0]
    nonmagnetic = labelled.copy()
    nonmagnetic.set_initial_magnetic_moments(None)
    for atoms, ions in (
        (labelled, np.count_nonzero(labelled.get_initial_magnetic_moments())),
        (nonmagnetic, len(labelled)),
    ):
        row = report.frame_row(atoms, labelled, calc)
        copy = atoms.copy()
        copy.calc = calc
        error = abs(copy.get_potential_energy() - labelled.get_potential_energy())
        assert row["energy_meV_per_ion"] == pytest.approx(1e3 * error / ions, rel=1e-9)
        assert row["energy_spread_meV_per_ion"] == pytest.approx(
            1e3 * calc.results["energy_std"] / ions, rel=1e-9
        )


def test_select_picks_the_most_disputed_and_never_a_duplicate(reference):
    members = [as_loaded(model) for model in _members()]
    oracle = _oracle_scores(reference, members)
    top = int(np.argmax(oracle))
    pool = [a.copy() for a in reference] + [reference[top].copy()]  # the duplicate: last
    calc = SpinMultiNetCalculator(members)
    picked, scores = select(pool, calc, n=4, min_distance=1e-6)
    np.testing.assert_allclose(scores[: len(reference)], oracle, rtol=1e-6, atol=1e-9)
    assert picked == list(np.argsort(-oracle)[:4])
    assert len(pool) - 1 not in picked
    # without the distance rule the duplicate, as disputed as the top one, is second
    assert select(pool, calc, n=2, min_distance=0.0)[0] == [top, len(pool) - 1]


def test_random_select_is_uniform_and_never_takes_a_duplicate(reference):
    """With a generator the first pick is uniform over the pool (counted over 160 seeds, each
    of 4 structures first 40 times on average), whatever the scores, and the distance rule
    holds."""
    calc = SpinMultiNetCalculator([as_loaded(model) for model in _members()])
    pool = [a.copy() for a in reference[:3]] + [reference[0].copy()]  # the duplicate: last
    scores = np.arange(len(pool), dtype=float)  # a disagreement order the picks must not follow
    first = np.zeros(len(pool), dtype=int)
    for seed in range(160):
        rng = np.random.default_rng(seed)
        picked, _ = select(pool, calc, n=len(pool), min_distance=1e-6, scores=scores, rng=rng)
        assert len(picked) == len(pool) - 1 and not {0, len(pool) - 1} <= set(picked)
        first[picked[0]] += 1
    assert first.min() > 20 and first.max() < 60, first  # binomial: 40 ± 5.5


def test_fingerprint_sees_orderings_not_rotations_or_global_spin_flips():
    afm = rocksalt_ordered("NiO", "AFM-II")
    afm.rattle(0.05, seed=1)
    turned = afm.copy()
    turned.rotate(37, "x", rotate_cell=True)
    turned.set_initial_magnetic_moments(-turned.get_initial_magnetic_moments())
    order = np.random.default_rng(0).permutation(len(afm))
    turned = turned[order]
    fm = afm.copy()
    fm.set_initial_magnetic_moments(np.abs(fm.get_initial_magnetic_moments()))
    assert np.linalg.norm(fingerprint(afm, SPECIES) - fingerprint(turned, SPECIES)) < 1e-12
    assert np.linalg.norm(fingerprint(afm, SPECIES) - fingerprint(fm, SPECIES)) > 0.5


def test_fingerprint_of_noncollinear_moments_weighs_pairs_by_the_cosine_of_their_angle():
    """Moments along x, along z and collinear scalars give one fingerprint; an AFM in the xy
    plane is not an FM; a two-sublattice state canted by α interpolates FM and AFM with
    (1 ± cos α)/2 (pairs within a sublattice weigh 1, across it cos α); rotating moments and
    structure together changes nothing."""
    afm = rocksalt_ordered("NiO", "AFM-II", matrix=2 * np.eye(3, dtype=int))
    afm.rattle(0.05, seed=1)
    signed = afm.get_initial_magnetic_moments()
    assert set(np.sign(signed)) == {-1.0, 0.0, 1.0}

    def with_moments(vectors: np.ndarray):
        copy = afm.copy()
        copy.set_initial_magnetic_moments(None)  # the shape may change: (N,) to (N, 3)
        copy.set_initial_magnetic_moments(vectors)
        return copy

    def distance(first, second) -> float:
        return float(np.linalg.norm(fingerprint(first, SPECIES) - fingerprint(second, SPECIES)))

    x, y, z = np.eye(3)
    along_x = with_moments(signed[:, None] * x)
    fm_xy = with_moments(np.abs(signed)[:, None] * (x + y) / np.sqrt(2))
    fm = with_moments(np.abs(signed))
    assert distance(along_x, afm) < 1e-12
    assert distance(with_moments(signed[:, None] * z), afm) < 1e-12
    assert distance(fm_xy, fm) < 1e-12
    assert distance(along_x, fm_xy) > 0.5

    alpha = np.radians(70.0)
    down = np.array([np.sin(alpha), 0.0, np.cos(alpha)])
    canted = with_moments(np.abs(signed)[:, None] * np.where(signed[:, None] < 0, down, z))
    expected = (1 + np.cos(alpha)) / 2 * fingerprint(fm, SPECIES) + (
        1 - np.cos(alpha)
    ) / 2 * fingerprint(afm, SPECIES)
    np.testing.assert_allclose(fingerprint(canted, SPECIES), expected, atol=1e-12)

    turn = Rotation.from_rotvec([0.4, -1.1, 0.7]).as_matrix()
    turned = canted.copy()
    turned.set_cell(canted.cell[:] @ turn.T)
    turned.positions = canted.positions @ turn.T
    turned.set_initial_magnetic_moments(canted.get_initial_magnetic_moments() @ turn.T)
    turned = turned[np.random.default_rng(0).permutation(len(turned))]
    assert distance(turned, canted) < 1e-12


def _config(
    folder: Path, committee, reference, output: str, data: dict | None = None, **changes
) -> Path:
    """A two-round retrospective run: the pool's labels are known, the training is tiny.

    Args:
        data: overrides of the training config's data section.
        changes: overrides of the active-learning config.
    """
    write(folder / "pool.extxyz", reference[:3])
    write(folder / "test.extxyz", reference[3])
    train = {
        "data": {
            "validation_fraction": 0.0,
            "test_fraction": 0.0,
            "guess_rescale": 0.0,
            **(data or {}),
        },
        "model": {**TINY_CONFIG, "species": list(SPECIES)},
        "optim": {"max_epochs": 1, "batch_size": 2},
        "dtype": "float64",
        "num_threads": 1,
    }
    (folder / f"{output}-train.yaml").write_text(yaml.safe_dump(train))
    active = {
        "pool": str(folder / "pool.extxyz"),
        "labelled_pool": str(folder / "pool.extxyz"),
        "test": str(folder / "test.extxyz"),
        "committee": [str(p) for p in committee],
        "train_config": str(folder / f"{output}-train.yaml"),
        "per_round": 1,
        "rounds": 2,
        "output_dir": str(folder / output),
        **changes,
    }
    path = folder / f"{output}.yaml"
    path.write_text(yaml.safe_dump(active))
    return path


class Stop(Exception):
    pass


def _weights(path: str) -> dict[str, torch.Tensor]:
    return load_model(path).module.state_dict()


def test_a_run_stopped_after_any_stage_resumes_to_the_uninterrupted_state(
    tmp_path, committee, reference
):
    whole = ActiveLearning(
        load_active_config(_config(tmp_path, committee, reference, "whole")), progress=False
    ).run()
    config = load_active_config(_config(tmp_path, committee, reference, "stopped"))
    seen: set[tuple[int, str]] = set()

    def stop_once(round_: int, stage: str) -> None:
        if (round_, stage) not in seen:
            seen.add((round_, stage))
            raise Stop

    for _ in range(20):
        try:
            state = ActiveLearning(config, progress=False, hook=stop_once).run()
            break
        except Stop:
            continue
    stages = {"selected", "labelled", "member_0", "member_1", "trained"}
    assert seen == {(r, s) for r in (1, 2) for s in stages}
    assert state["picked"] == whole["picked"] and len(set(whole["picked"])) == 2
    assert state["curve"] == whole["curve"] and [r["round"] for r in state["curve"]] == [0, 1, 2]
    assert [r["dft_frames"] for r in state["curve"]] == [0, 1, 2]
    assert (
        state["committee"] == whole["committee"] == [f"round_2/member_{m}/model.pt" for m in (0, 1)]
    )
    for name in state["committee"]:
        mine_weights = _weights(Path(config.output_dir) / name)
        for key, value in _weights(tmp_path / "whole" / name).items():
            torch.testing.assert_close(mine_weights[key], value, rtol=0, atol=0)
    saved = json.loads((Path(config.output_dir) / "state.json").read_text())
    assert saved["round"] == 3 or saved["stage"] == "trained"
    assert (Path(config.output_dir) / "curve.csv").read_text().count("\n") == 4


def test_resuming_with_changed_inputs_is_refused_in_one_line(
    tmp_path, committee, reference, capsys
):
    """A run stopped after selection, resumed with another pool, ``per_round`` or
    ``min_distance``, stops with exit 2; with more ``rounds`` it goes on."""
    path = _config(tmp_path, committee, reference, "changed")
    values = yaml.safe_load(path.read_text())

    def stop(round_: int, stage: str) -> None:
        raise Stop

    with pytest.raises(Stop):
        ActiveLearning(load_active_config(path), progress=False, hook=stop).run()
    write(tmp_path / "pool.extxyz", reference[:2])
    assert main(["active-learn", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "(labelled_pool, pool changed)" in error, error
    write(tmp_path / "pool.extxyz", reference[:3])
    for change, name in (({"per_round": 2}, "per_round"), ({"min_distance": 0.5}, "min_distance")):
        path.write_text(yaml.safe_dump({**values, **change}))
        assert main(["active-learn", str(path)]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and f"({name} changed)" in error, error
    path.write_text(yaml.safe_dump({**values, "rounds": 3}))
    resumed = ActiveLearning(load_active_config(path), progress=False, hook=stop)
    with pytest.raises(Stop):
        resumed.run()
    assert resumed.state["stage"] == "labelled"


def test_random_selection_is_a_function_of_the_seed_and_not_the_disagreement(
    tmp_path, committee, reference, capsys
):
    """Retrospective runs picking 2 of 3 pool structures in round 1 (stopped after the pick):

    - ``selection: random`` picks the same on a rerun in a fresh folder, and others with
      another training ``seed`` (seeds 0 and 3 give other pairs for this pool);
    - the disagreement run picks the committee's top two (members run one by one), which
      neither random run does;
    - a resume with ``selection`` changed is refused in one line, and a state recorded
      without ``selection`` (as before the key existed) resumes as ``disagreement``.
    """

    def stop(round_: int, stage: str) -> None:
        raise Stop

    def picks(output: str, selection: str, seed: int) -> list[str]:
        path = _config(
            tmp_path, committee, reference, output, selection=selection, per_round=2, rounds=1
        )
        train = tmp_path / f"{output}-train.yaml"
        train.write_text(yaml.safe_dump({**yaml.safe_load(train.read_text()), "seed": seed}))
        with pytest.raises(Stop):
            ActiveLearning(load_active_config(path), progress=False, hook=stop).run()
        return json.loads((tmp_path / output / "state.json").read_text())["picked"]

    ids = [a.info["structure_id"] for a in reference[:3]]
    oracle = _oracle_scores(reference[:3], [str(p) for p in committee])
    top = [ids[i] for i in np.argsort(-oracle)[:2]]
    assert picks("disagreement", "disagreement", 0) == top
    first = picks("random", "random", 0)
    assert picks("again", "random", 0) == first
    other = picks("other", "random", 3)
    assert len({frozenset(first), frozenset(other), frozenset(top)}) == 3

    again = tmp_path / "again.yaml"
    values = yaml.safe_load(again.read_text())
    again.write_text(yaml.safe_dump({**values, "selection": "disagreement"}))
    assert main(["active-learn", str(again)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "(selection changed)" in error, error

    state_path = tmp_path / "disagreement" / "state.json"
    state = json.loads(state_path.read_text())
    state["inputs"].pop("selection", None)
    state_path.write_text(json.dumps(state))
    resumed = ActiveLearning(
        load_active_config(tmp_path / "disagreement.yaml"), progress=False, hook=stop
    )
    with pytest.raises(Stop):
        resumed.run()
    assert resumed.state["stage"] == "labelled"


def test_an_energy_score_run_picks_by_energy_and_records_the_score_unless_forces(
    tmp_path, committee, reference, capsys
):
    """A run with ``score: energy`` picks the committee's top two by energy spread per
    magnetic ion (members run one by one) and adds its pool mean to the curve; its inputs
    record the score, a forces run's do not (so a state from before the key resumes), and a
    resume with the score changed is refused in one line."""

    def stop(round_: int, stage: str) -> None:
        raise Stop

    path = _config(tmp_path, committee, reference, "energy", score="energy", per_round=2, rounds=1)
    with pytest.raises(Stop):
        ActiveLearning(load_active_config(path), progress=False, hook=stop).run()
    state = json.loads((tmp_path / "energy" / "state.json").read_text())
    ids = [a.info["structure_id"] for a in reference[:3]]
    oracle = _oracle_energy_spreads(reference[:3], [str(p) for p in committee])
    assert state["picked"] == [ids[i] for i in np.argsort(-oracle)[:2]]
    row = state["curve"][0]
    assert row["pool_energy_disagreement_mean_meV_per_ion"] == pytest.approx(
        1e3 * oracle.mean(), rel=1e-6
    )
    assert state["inputs"]["score"] == "energy"
    forces = dataclasses.replace(load_active_config(path), score="forces")
    assert "score" not in input_digests(forces)
    values = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**values, "score": "combined"}))
    assert main(["active-learn", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "(score changed)" in error, error


def test_a_picked_partner_brings_its_source_along_once_if_asked(tmp_path, committee, reference):
    """With ``add_partner_sources`` the least disputed structure, named by the others'
    ``partner_of``, is labelled right before the top pick (and recorded as picked); without
    it only the top pick is; the key is among the inputs only when set."""
    oracle = _oracle_scores(reference[:3], [str(p) for p in committee])
    source, top = int(np.argmin(oracle)), int(np.argmax(oracle))
    ids = [a.info["structure_id"] for a in reference[:3]]

    def stop(round_: int, stage: str) -> None:
        if stage == "labelled":
            raise Stop

    for flag, expected in ((True, [source, top]), (False, [top])):
        name = f"partners-{flag}"
        path = _config(tmp_path, committee, reference, name, rounds=1, add_partner_sources=flag)
        pool = read(tmp_path / "pool.extxyz", ":")  # labelled: also the labelled_pool
        for index, atoms in enumerate(pool):
            if index != source:
                atoms.info["partner_of"] = ids[source]
        write(tmp_path / "pool.extxyz", pool)
        with pytest.raises(Stop):
            ActiveLearning(load_active_config(path), progress=False, hook=stop).run()
        state = json.loads((tmp_path / name / "state.json").read_text())
        assert state["picked"] == [ids[i] for i in expected]
        assert ("add_partner_sources" in state["inputs"]) == flag
        labelled = read(tmp_path / name / "round_1" / "labelled.extxyz", ":")
        assert [a.info["structure_id"] for a in labelled] == [ids[i] for i in expected]


def test_bad_configs_are_one_line_and_exit_2(tmp_path, committee, reference, capsys):
    """Each refused before any work: no output folder is made."""
    path = _config(tmp_path, committee, reference, "bad")
    values = yaml.safe_load(path.read_text())
    noncollinear = yaml.safe_load((tmp_path / "bad-train.yaml").read_text())
    noncollinear["model"]["spin_mode"] = "noncollinear"
    (tmp_path / "noncollinear.yaml").write_text(yaml.safe_dump(noncollinear))
    for change, message in (
        ({"committee": [str(committee[0])]}, "two or more"),
        ({"committee": str(committee[0])}, "committee must be a list of model files"),
        ({"committee": [str(committee[0]), 3]}, "committee must be a list of model files"),
        ({"per_round": 0}, "per_round"),
        ({"selection": "greedy"}, "selection must be one of disagreement, random"),
        ({"score": "stress"}, "score must be one of forces, energy, combined, got 'stress'"),
        ({"add_partner_sources": "yes"}, "add_partner_sources must be true or false"),
        ({"pool": str(tmp_path / "missing.extxyz")}, "no file at"),
        ({"pool": [values["pool"]]}, "pool must be a path"),
        ({"test": {"path": values["test"]}}, "test must be a path"),
        ({"output_dir": 7}, "output_dir must be a path"),
        ({"mpiexec": ["mpiexec", "-n", "2"]}, "mpiexec must be a path"),
        ({"protocol": {"ecut": 300}}, "ecut"),
        ({"max_scf_steps": 20}, "max_scf_steps (--max-scf-steps) must be a whole number from 21"),
        ({"max_scf_steps": 301}, "to the protocol's 300, got 301"),
        ({"max_scf_steps": 100, "protocol": {"max_scf_iterations": 80}}, "protocol's 80"),
        ({"max_scf_steps": "120"}, "got '120'"),
        ({"round": 2}, "unknown keys"),
        (
            {"train_config": str(tmp_path / "noncollinear.yaml")},
            "is a collinear model but",
        ),
    ):
        path.write_text(yaml.safe_dump({**values, **change}))
        assert main(["active-learn", str(path)]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and message in error, error
        assert not Path(values["output_dir"]).exists()


def test_curve_and_members_data_with_initial_data_and_a_labeller_that_rejects(
    tmp_path, committee, reference, monkeypatch
):
    """A run labelling through a stand-in for GPAW that rejects round 2's frame (into
    ``OUT.rejected.extxyz``, as the labeller does), from four initial frames:

    - the curve counts DFT frames, rejected runs and the frames trained on;
    - its disagreement columns are those of each round's members, run one by one, on the
      whole pool (picked structures too);
    - every member trains or validates on every frame no explicit rule (``test_cells``)
      holds out, although the training config asks for a random test share.
    """
    write(tmp_path / "initial.extxyz", reference[4:8])
    known = {a.info["structure_id"]: a for a in reference[:3]}
    budgets = []

    def stand_in(candidates: Path, out: Path, protocol, max_scf_steps) -> None:
        budgets.append(max_scf_steps)
        frames = [known[a.info["structure_id"]] for a in read(candidates, ":")]
        rejecting = out.parent.name == "round_2"
        write(out.with_name("labelled.rejected.extxyz") if rejecting else out, frames)

    monkeypatch.setattr("spinmultinet_ase.train.active.label_file", stand_in)
    held_out = ["prim-2"]
    data = {"validation_fraction": 0.2, "test_fraction": 0.5, "test_cells": held_out}
    initial = str(tmp_path / "initial.extxyz")
    path = _config(
        tmp_path,
        committee,
        reference,
        "curve",
        data,
        labelled_pool="",
        initial_data=initial,
        max_scf_steps=120,
    )
    curve = ActiveLearning(load_active_config(path), progress=False).run()["curve"]
    assert budgets == [120, 120]  # each round labels under the config's budget
    assert [r["dft_frames"] for r in curve] == [0, 1, 1]
    assert [r["dft_rejected"] for r in curve] == [0, 0, 1]
    assert [r["training_frames"] for r in curve] == [4, 5, 5]
    assert [r["pool_left"] for r in curve] == [3, 2, 1]
    output = tmp_path / "curve"
    for row in curve:
        round_ = row["round"]
        members = (
            committee
            if round_ == 0
            else [output / f"round_{round_}" / f"member_{m}" / "model.pt" for m in (0, 1)]
        )
        oracle = _oracle_scores(reference[:3], [str(m) for m in members])
        assert row["pool_disagreement_mean_eV_per_A"] == pytest.approx(oracle.mean(), rel=1e-6)
        assert row["pool_disagreement_max_eV_per_A"] == pytest.approx(oracle.max(), rel=1e-6)

    asked = load_config(tmp_path / "curve-train.yaml").data
    for round_ in (1, 2):
        frames = read(output / f"round_{round_}" / "train.extxyz", ":")
        assert len(frames) == curve[round_]["training_frames"]
        held = [a for a in frames if a.info["cell_name"] in held_out]
        free = [a for a in frames if a.info["cell_name"] not in held_out]
        assert held and any(split_of(a, asked) == "test" for a in free)  # not trivially true
        for member in (0, 1):
            folder = output / f"round_{round_}" / f"member_{member}"
            trained = load_model(folder / "model.pt").metadata["train_config"]
            used = config_from_dict(trained).data
            assert all(split_of(a, used) in ("train", "validation") for a in free)
            assert all(split_of(a, used) == "test" for a in held)
            counts = json.loads((folder / "summary.json").read_text())["num_frames"]
            assert counts["test"] == len(held)
            assert counts["train"] + counts["validation"] == len(free)


def test_labelling_under_mpiexec_gives_the_serial_labels(tmp_path, monkeypatch):
    """The label stage's ``mpiexec -n 2`` GPAW job labels as a serial run does (cheap bcc Li),
    under the labelling budget it is given."""
    pytest.importorskip("gpaw")
    from test_label_faults import CHEAP

    from spinmultinet_ase.dft.label import label_file
    from spinmultinet_ase.train.active import _label_under_mpi

    if not Path(MPIEXEC).exists():
        pytest.skip(f"needs {MPIEXEC} (GPAW's MPI)")
    monkeypatch.setenv("OMPI_ALLOW_RUN_AS_ROOT", "1")
    monkeypatch.setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    frames = []
    for index, scale in enumerate((0.98, 1.03)):
        atoms = bulk("Li", "bcc", a=3.44 * scale)
        atoms.set_initial_magnetic_moments([0.0])
        atoms.info["structure_id"] = f"Li-{index}"
        frames.append(atoms)
    write(tmp_path / "candidates.extxyz", frames)
    budget = CHEAP.max_scf_iterations  # the job gets the campaign's labelling budget
    _label_under_mpi(tmp_path, dataclasses.asdict(CHEAP), 2, MPIEXEC, budget)
    label_file(tmp_path / "candidates.extxyz", tmp_path / "serial.extxyz", protocol=CHEAP)
    parallel = read(tmp_path / "labelled.extxyz", ":")
    serial = read(tmp_path / "serial.extxyz", ":")
    assert [a.info["structure_id"] for a in parallel] == ["Li-0", "Li-1"]
    assert [a.info.get("dft_scf_budget") for a in parallel + serial] == [budget] * 2 + [None] * 2
    for mine, theirs in zip(parallel, serial, strict=True):
        assert abs(mine.get_potential_energy() - theirs.get_potential_energy()) < 1e-4
        np.testing.assert_allclose(mine.get_stress(), theirs.get_stress(), atol=1e-5)


def test_curve_errors_per_material_and_yardstick_match_the_members_run_one_by_one(tmp_path):
    """The learning-curve columns, against energies and forces of each member on its own:
    per-material MAEs of the members' mean, and MnO's ordering energies (AFM-I and AFM-II
    against FM in their own 4-atom cells) from those energies."""
    every = read(REFERENCE, index=":")
    ideal = {
        (a.info["cell_name"], a.info["ordering"]): a
        for a in every
        if a.info.get("yardstick")
        and a.info["material"] == "MnO"
        and a.info["rhombohedral_strain"] == 0.0
    }
    nio = [a for a in every if a.info["material"] == "NiO" and not a.info.get("yardstick")][:3]
    frames = [*ideal.values(), *nio]
    write(tmp_path / "test.extxyz", frames)
    members = [as_loaded(model) for model in _members()]
    singles = [SpinMultiNetCalculator(member) for member in members]

    def mean_of_members(atoms):
        energies, forces = [], []
        for single in singles:
            copy = atoms.copy()
            copy.calc = single
            energies.append(copy.get_potential_energy())
            forces.append(copy.get_forces())
        return np.mean(energies), np.mean(forces, axis=0)

    row = curve_errors(str(tmp_path / "test.extxyz"), SpinMultiNetCalculator(members))
    for material, group in (("MnO", list(ideal.values())), ("NiO", nio)):
        energy_errors, force_errors = [], []
        for atoms in group:
            energy, forces = mean_of_members(atoms)
            energy_errors.append(abs(energy - atoms.get_potential_energy()) / len(atoms))
            force_errors.append(np.abs(forces - atoms.get_forces()).mean())
        assert row[f"{material}_energy_mae_meV_per_atom"] == pytest.approx(
            1e3 * np.mean(energy_errors), rel=1e-6
        )
        assert row[f"{material}_forces_mae_meV_per_A"] == pytest.approx(
            1e3 * np.mean(force_errors), rel=1e-6
        )

    def orderings(energy_of) -> dict[str, float]:
        per_fu = {key: energy_of(atoms) / 2 for key, atoms in ideal.items()}  # 2 MnO per cell
        return {
            "FM": 0.0,
            "AFM-I": 1e3 * (per_fu[("afm1-4", "AFM-I")] - per_fu[("afm1-4", "FM")]),
            "AFM-II": 1e3 * (per_fu[("afm2-4", "AFM-II")] - per_fu[("afm2-4", "FM")]),
        }

    dft = orderings(lambda atoms: atoms.get_potential_energy())
    model = orderings(lambda atoms: mean_of_members(atoms)[0])
    largest = max(abs(model[name] - dft[name]) for name in dft)
    assert largest > 1.0  # random members: the check below is not trivially zero
    assert row["MnO_ordering_error_max_meV_per_fu"] == pytest.approx(largest, rel=1e-6)
    assert row["MnO_lowest_agrees"] == (min(model, key=model.get) == min(dft, key=dft.get))
    assert not any(column.startswith("NiO_ordering") for column in row)  # no NiO yardsticks


# ---- committees fine-tuned from one source model -------------------------------------------
COMMITTED = ("state.json", "curve.csv", "candidates.extxyz", "labelled.extxyz")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A tiny random model every committee is fine-tuned from."""
    path = tmp_path_factory.mktemp("source") / "source.pt"
    export_model(random_model(seed=5, species=SPECIES, **TINY_CONFIG), path)
    return path


def _source_config(
    folder: Path, source, reference, output: str, data: dict | None = None, **changes
) -> Path:
    """A two-round retrospective run in source mode (two members), from four initial frames.

    Args:
        data: overrides of the training config's data section.
        changes: overrides of the active-learning config.
    """
    write(folder / "initial.extxyz", reference[4:8])
    values = {
        "source": str(source),
        "committee_size": 2,
        "initial_data": str(folder / "initial.extxyz"),
        **changes,
    }
    return _config(folder, (), reference, output, data=data, **values)


def _refused(argv: list[str], message: str, capsys) -> None:
    """``spinmultinet`` run with ``argv`` stops with exit 2 and one line saying ``message``."""
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error, error


def _stop_at(round_: int, stage: str):
    def hook(at_round: int, at_stage: str) -> None:
        if (at_round, at_stage) == (round_, stage):
            raise Stop

    return hook


@pytest.fixture(scope="module")
def source_run(tmp_path_factory, source, reference) -> tuple[Path, dict]:
    """An uninterrupted two-round run in source mode: its folder and final state."""
    folder = tmp_path_factory.mktemp("source_run")
    path = _source_config(folder, source, reference, "source")
    return folder, ActiveLearning(load_active_config(path), progress=False).run()


def test_source_mode_trains_every_committee_from_the_source(
    tmp_path, source_run, source, reference
):
    """Round 0's members and the last round's are, weight for weight, the source fine-tuned
    by the Trainer on its own (seed ``seed + M``) on the initial frames plus those picked so
    far (round 1's are checked against this run by the rebuild test)."""
    folder, state = source_run
    assert [r["round"] for r in state["curve"]] == [0, 1, 2]
    assert [r["training_frames"] for r in state["curve"]] == [4, 5, 6]
    assert len(set(state["picked"])) == 2
    pool = {a.info["structure_id"]: a for a in reference[:3]}
    base = load_config(folder / "source-train.yaml")
    output = folder / "source"
    for round_ in (0, 2):
        record = state["trainings"][str(round_)]
        assert record["init_from"] == ["source"] * 2
        frames = reference[4:8] + [pool[sid] for sid in state["picked"][:round_]]
        data = tmp_path / f"oracle_{round_}.extxyz"
        write(data, frames)
        members = []
        for member in (0, 1):
            oracle = dataclasses.replace(
                base,
                data=dataclasses.replace(base.data, path=str(data), test_fraction=0.0),
                init_from=str(source),
                seed=base.seed + member,
                output_dir=str(tmp_path / f"oracle_{round_}_{member}"),
            )
            Trainer(oracle, progress=False).run()
            mine = _weights(output / f"round_{round_}" / f"member_{member}" / "model.pt")
            for key, value in _weights(Path(oracle.output_dir) / "model.pt").items():
                torch.testing.assert_close(mine[key], value, rtol=0, atol=0)
            members.append(mine)
        # the two seeds give two members (the disagreement is not trivially zero)
        assert any(not torch.equal(members[0][k], members[1][k]) for k in members[0])
    assert state["committee"] == [f"round_2/member_{m}/model.pt" for m in (0, 1)]


def test_source_mode_rebuilds_members_lost_with_the_uncommitted_files(
    tmp_path, source_run, source, reference, capsys, monkeypatch
):
    """Stopped after round 1, with only the files the docs say to commit kept, moved to
    another folder (``output_dir`` then relative) and the source moved with another model left
    at its old path, the run trains its members again from the source and picks and records
    what an uninterrupted run does. A resume with another committee_size, with a round's frames
    changed or without the record of a lost member is refused."""
    folder, whole = source_run
    first = tmp_path / "first" / "source.pt"
    first.parent.mkdir()
    first.write_bytes(source.read_bytes())
    path = _source_config(tmp_path, first, reference, "kept")
    with pytest.raises(Stop):
        ActiveLearning(load_active_config(path), progress=False, hook=_stop_at(1, "trained")).run()
    for file in sorted((tmp_path / "kept").rglob("*"), reverse=True):
        if file.is_file() and file.name not in COMMITTED:
            file.unlink()
        elif file.is_dir() and not any(file.iterdir()):
            file.rmdir()
    output = tmp_path / "moved" / "kept"
    output.parent.mkdir()
    (tmp_path / "kept").rename(output)
    assert not list(output.rglob("member_*")) and not list(output.rglob("*.pt"))
    moved = tmp_path / "second" / "source.pt"
    moved.parent.mkdir()
    first.rename(moved)
    export_model(random_model(seed=6, species=SPECIES, **TINY_CONFIG), first)
    monkeypatch.chdir(output.parent)
    values = {**yaml.safe_load(path.read_text()), "source": str(moved), "output_dir": "kept"}
    path.write_text(yaml.safe_dump({**values, "committee_size": 3}))
    _refused(["active-learn", str(path)], "(committee_size changed)", capsys)
    path.write_text(yaml.safe_dump(values))
    labelled = output / "round_1" / "labelled.extxyz"
    kept = labelled.read_bytes()
    write(labelled, reference[0])
    _refused(["active-learn", str(path)], "no longer holds the frames it was trained on", capsys)
    labelled.write_bytes(kept)
    state_file = output / "state.json"
    saved = state_file.read_text()
    state_file.write_text(json.dumps({**json.loads(saved), "trainings": {}}))
    _refused(["active-learn", str(path)], "no record of its training to redo", capsys)
    state_file.write_text(saved)
    state = ActiveLearning(load_active_config(path), progress=False).run()
    assert state["picked"] == whole["picked"]
    assert [r["round"] for r in state["curve"]] == [0, 1, 2]
    for mine, theirs in zip(state["curve"], whole["curve"], strict=True):
        assert mine.keys() == theirs.keys()
        for key, value in theirs.items():
            assert mine[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    rebuilt = _weights(output / "round_1" / "member_1" / "model.pt")
    for key, value in _weights(folder / "source" / "round_1" / "member_1" / "model.pt").items():
        torch.testing.assert_close(rebuilt[key], value, rtol=0, atol=1e-12)


def test_a_rebuild_on_changed_replay_data_is_refused_in_one_line(
    tmp_path, source_run, reference, capsys
):
    """A lost member of round 0 trained with replay data is not rebuilt once the replay file
    changed; nor is a round resumed whose record disagrees with its inputs."""
    folder, _ = source_run
    replay = tmp_path / "replay.extxyz"
    frames = read(REFERENCE, index=":")[:2]
    write(replay, frames)
    data = {"replay_paths": [str(replay)], "replay_fraction": 0.5}
    trained = folder / "source" / "round_0" / "member_0" / "model.pt"  # records its config
    path = _source_config(tmp_path, trained, reference, "replay", data=data)
    with pytest.raises(Stop):
        ActiveLearning(load_active_config(path), progress=False, hook=_stop_at(0, "member_1")).run()
    output = tmp_path / "replay"
    state_file = output / "state.json"
    saved = state_file.read_text()
    record = json.loads(saved)["trainings"]["0"]
    assert len(record["data_fingerprints"]) == 2 and None not in record["data_fingerprints"]
    other = json.loads(saved)
    other["trainings"]["0"]["seeds"] = [7, 8]
    state_file.write_text(json.dumps(other))
    _refused(["active-learn", str(path)], "round 0 was started on other training inputs", capsys)
    state_file.write_text(saved)
    for file in (output / "round_0" / "member_0").iterdir():
        file.unlink()
    for atoms in frames:
        atoms.calc.results["energy"] += 0.1
    write(replay, frames)
    _refused(["active-learn", str(path)], "are not those it was trained on", capsys)
    assert not (output / "round_0" / "member_0" / "model.pt").exists()


def test_a_pool_id_also_in_initial_data_is_refused_in_one_line(tmp_path, source, reference, capsys):
    """Refused before any work (no output folder), and a repeat inside initial_data when the
    training data are gathered."""
    path = _source_config(tmp_path, source, reference, "repeats")
    values = yaml.safe_load(path.read_text())
    initial = [a.copy() for a in reference[4:8]]
    for atoms, labelled in zip(initial, reference[4:8], strict=True):
        atoms.calc = labelled.calc
    shared = reference[0].info["structure_id"]
    initial[1].info["structure_id"] = shared
    write(tmp_path / "initial.extxyz", initial)
    _refused(["active-learn", str(path)], f"structure_id {shared!r} is in both", capsys)
    assert not Path(values["output_dir"]).exists()
    initial[1].info["structure_id"] = initial[0].info["structure_id"]
    write(tmp_path / "initial.extxyz", initial)
    message = f"structure_id {initial[0].info['structure_id']!r} repeats"
    _refused(["active-learn", str(path)], message, capsys)


def test_bad_source_configs_are_one_line_and_exit_2(tmp_path, committee, source, reference, capsys):
    path = _source_config(tmp_path, source, reference, "badsource")
    values = yaml.safe_load(path.read_text())
    for change, message in (
        ({"committee": [str(p) for p in committee]}, "either source"),
        ({"committee_size": 1}, "committee_size must be 2 or more"),
        ({"committee_size": 0}, "committee_size must be 2 or more"),
        ({"initial_data": ""}, "source needs initial_data"),
        ({"source": str(tmp_path / "missing.pt")}, "no model file or checkpoint at"),
        ({"source": "", "committee": [str(p) for p in committee]}, "applies only with source"),
    ):
        path.write_text(yaml.safe_dump({**values, **change}))
        assert main(["active-learn", str(path)]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and message in error, error
        assert not Path(values["output_dir"]).exists()


@pytest.mark.parametrize(
    "config", sorted((ROOT / "configs").glob("active_*.yaml")), ids=lambda p: p.name
)
def test_a_committed_campaign_still_has_the_inputs_it_was_started_with(config, monkeypatch):
    """A campaign's committed state resumes only on its recorded inputs (the shipped source
    model among them, byte for byte): a file rewritten under it (a re-export) stops it."""
    monkeypatch.chdir(ROOT)  # the configs' paths are relative to the repository
    values = yaml.safe_load(config.read_text())
    written = ("pool", "initial_data", "test")  # by scripts/active_learning.sh
    missing = [k for k in written if k in values and not Path(values[k]).is_file()]
    if missing:
        pytest.skip(f"{config.name}: {', '.join(missing)} not yet written (active_learning.sh)")
    active = load_active_config(config)
    state = Path(active.output_dir) / "state.json"
    if not state.is_file():
        pytest.skip(f"{active.output_dir} holds no campaign")
    assert input_digests(active) == json.loads(state.read_text())["inputs"]
