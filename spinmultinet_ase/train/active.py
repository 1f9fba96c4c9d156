"""Active learning: spend DFT where a committee of models disagrees, retrain, repeat.

Each round has three stages, and ``OUTPUT/state.json`` (written atomically) records the last
one finished, so a kill at any instant resumes at the stage it interrupted:

1. **select**: score the pool by the committee's disagreement (``score``: on forces, the
   default, on energies or both, :func:`pool_scores`), then pick greedily by score among the
   structures not picked before, skipping those within ``min_distance`` of one already picked
   (:func:`fingerprint`); ``round_K/candidates.extxyz``.
   With ``selection: random`` (the baseline a retrospective study compares against) they are
   taken in a random order instead, seeded by the training config's ``seed`` and the round.
   With ``add_partner_sources``, each picked structure brings along its ordering partner's
   source (the pool structure its ``info['partner_of']`` names, e.g. the FM frame of its
   supercell shape) unless that was picked before (:func:`with_partner_sources`), so the
   labelled frame's energy is fitted relative to the same geometry in another ordering.
2. **label**: GPAW (:func:`spinmultinet_ase.dft.label.label_file`, itself resumable frame by
   frame) into ``round_K/labelled.extxyz``; or, for a retrospective study, the picked frames
   are taken from an already-labelled pool (``labelled_pool``). Then the partner groups of
   FeO and CoO (a source and the frames whose ``partner_of`` names it: one geometry) with
   frames in this round are checked across the campaign (:meth:`ActiveLearning._check_partners`):
   with the round's frames, the group's accepted frames in ``initial_data`` and the earlier
   rounds' ``labelled.extxyz`` (not ``test``: its frames are never trained on, and
   ``scripts/active_split.py`` keeps partner groups out of it), as the labeller does within
   one file (:func:`~spinmultinet_ase.dft.label.wrong_states`). A frame of this round in a
   higher electronic state than another of its geometry is moved to
   ``round_K/labelled.rejected.extxyz`` with its status; an earlier frame in a higher state
   stays in its file (the input of a finished round), is listed in ``OUTPUT/wrong_states.json``
   with the round that found it, and is left out of the training sets of that round and all
   later ones (one line is printed per frame). The check runs again whole on a rerun of the
   stage, so a kill at any instant of it resumes to the same files.
3. **train**: each committee member is fine-tuned from its previous self (its own seed) on all
   frames labelled so far but those ``wrong_states.json`` lists (``round_K/train.extxyz``)
   into ``round_K/member_M/model.pt``; a member killed mid-training resumes from its last
   checkpoint. The training config's random
   test share is set to 0 (its validation share stays), so only frames its explicit rules
   hold out (``test_orderings``, ``test_cells``, ``test_yardsticks``) are kept from training.

With ``source`` instead of ``committee``, every committee is fine-tuned from that one model:
the starting one (``round_0``, on ``initial_data``) by the run itself, and each round's member
M again from ``source`` (seed ``seed + M``), not from its previous self. The state records, per
round, what its committee was trained on (the sha256 of ``round_K/train.extxyz``, each
member's ``init_from`` and seed, and the :func:`~spinmultinet_ase.train.dataset.data_fingerprint`
of the frames it learned from, replay files included), so a member whose ``model.pt`` is
missing when it is needed (an output folder copied without its model files) is trained again
from that record, resuming from its checkpoint if one is left.

The state names models by where they are in the run, not by a path that a moved folder or
another spelling of ``output_dir`` would change: ``source`` and ``committee[I]`` for the
config's models, ``round_K/member_M/model.pt`` (relative to ``output_dir``) for the run's own
(:meth:`ActiveLearning.model_file` turns a name into a file).

After each round (and once before the first) a row is added to ``OUTPUT/curve.csv``: frames
labelled by the rounds' DFT (``dft_frames``) and rejected by it (``dft_rejected``), frames
given to training (``training_frames``: ``initial_data`` and ``dft_frames``, less the frames
``wrong_states.json`` lists by then), structures left
to pick (``pool_left``), the committee's mean and largest force disagreement on the whole
pool (picked structures included, so they fall only when the committee agrees more; with a
``score`` other than ``forces`` its energy disagreement too), and (with a test file) its
errors there per material (:func:`curve_errors`).

A run resumes only with the inputs it was started with (:func:`input_digests`), except
``rounds``: raising it continues a finished run.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from ase import Atoms
from ase.io import read, write
from ase.neighborlist import neighbor_list

from spinmultinet_ase.committee import atom_force_spreads
from spinmultinet_ase.data.partners import geometry_of
from spinmultinet_ase.dft.label import (
    STATUS,
    STRUCTURE_ID,
    failures_path,
    label_file,
    move_to_rejected,
    read_output,
    rejected_path,
    wrong_states,
)
from spinmultinet_ase.dft.protocol import DFTProtocol
from spinmultinet_ase.dft.scf_budget import check_scf_budget
from spinmultinet_ase.export import load_model
from spinmultinet_ase.magnetism.sites import magnetic_sites
from spinmultinet_ase.magnetism.yardsticks import yardstick_table
from spinmultinet_ase.outputs import atomic_path, write_text_atomic
from spinmultinet_ase.train.config import load_config
from spinmultinet_ase.train.evaluate import material_of
from spinmultinet_ase.train.finetune import load_source

STAGES = ("selected", "labelled", "trained")
FINGERPRINT_CUTOFF = 4.5  # Å
FINGERPRINT_BINS = 18  # 0.25 Å wide
MAGNETIC_MOMENT = 1e-3  # μB: a smaller initial moment counts as none in the fingerprint
SELECTIONS = ("disagreement", "random")
SCORES = ("forces", "energy", "combined")
# labelling jobs per round under MPI: each GPAW abort on a recorded frame costs one more
MPI_LABEL_ATTEMPTS = 5


@dataclass(frozen=True)
class ActiveConfig:
    """An active-learning run, read from YAML by :func:`load_active_config`.

    Attributes:
        pool: extxyz of candidate structures with ``initial_magmoms`` (ids are made if absent).
        train_config: training YAML with the committee's ``model.spin_mode``; its
            ``data.path``, ``init_from``, ``seed`` and ``output_dir`` are set per member and
            round, and ``data.test_fraction`` to 0.
        committee: the starting committee's model files (two or more), or none with ``source``.
        source: a model file or checkpoint every committee is fine-tuned from (instead of
            ``committee``; needs ``committee_size`` and ``initial_data``).
        committee_size: members per committee with ``source`` (two or more).
        per_round: structures labelled per round.
        selection: ``disagreement`` (the committee's most disputed first) or ``random`` (a
            baseline: a random order seeded by the training config's ``seed`` and the round).
        score: what the disagreement measures (:func:`pool_scores`): ``forces`` (the largest
            per-atom force spread), ``energy`` (the energy spread per magnetic ion) or
            ``combined`` (each divided by its median over the structures to pick, the larger).
        rounds: number of rounds.
        add_partner_sources: label, with each picked structure, the pool structure its
            ``info['partner_of']`` names if not picked before (on top of ``per_round``).
        min_distance: fingerprint distance below which two structures count as the same.
        protocol: overrides of the DFT protocol's fields (``spinmultinet_ase/dft/protocol.py``).
        dft_processes: MPI ranks of the labelling (over 1: a separate ``mpiexec -n N`` job per
            round; the selection and training stay in this single process).
        mpiexec: the ``mpiexec`` of the MPI GPAW was built with (e.g. ``/usr/bin/mpiexec``).
        max_scf_steps: labelling budget of the rounds' DFT, SCF steps per frame (None: the
            protocol's limit): a frame not converged within it is rejected early
            (:func:`~spinmultinet_ase.dft.label.label_structure`). Not part of the protocol
            nor of :func:`input_digests`: it may change between rounds (frames already
            labelled keep their verdicts).
        labelled_pool: extxyz already holding DFT labels of the pool (by ``structure_id``): the
            label stage takes the picked frames from it instead of running GPAW.
        initial_data: labelled frames to train on besides those of the rounds.
        test: labelled frames the curve reports errors on.
        output_dir: where the state, the rounds and the curve go.
    """

    pool: str
    train_config: str
    committee: tuple[str, ...] = ()
    source: str = ""
    committee_size: int = 0
    per_round: int = 10
    selection: str = "disagreement"
    score: str = "forces"
    rounds: int = 1
    add_partner_sources: bool = False
    min_distance: float = 0.1
    protocol: dict[str, Any] = field(default_factory=dict)
    dft_processes: int = 1
    mpiexec: str = "mpiexec"
    max_scf_steps: int | None = None
    labelled_pool: str = ""
    initial_data: str = ""
    test: str = ""
    output_dir: str = "active"


def load_active_config(path: str | Path) -> ActiveConfig:
    """Read and check an active-learning YAML file.

    Raises:
        FileNotFoundError: the file, or a file it names, does not exist.
        ValueError: an unknown key, a value of the wrong kind, or fewer than two models.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no active-learning config at {path}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: an active-learning config is a mapping of keys to values")
    known = [f.name for f in dataclasses.fields(ActiveConfig)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; known: {', '.join(known)}")
    try:
        committee = values.get("committee", ())
        if isinstance(committee, list):
            committee = tuple(committee)
        config = ActiveConfig(**{**values, "committee": committee})
    except TypeError as error:
        raise ValueError(f"{path}: {error}") from None
    check_active_config(config)
    return config


def check_active_config(config: ActiveConfig) -> None:
    """Raise a one-line error if ``config`` cannot run (before any work is done).

    Raises:
        FileNotFoundError: a file it names does not exist.
        ValueError: a value of the wrong kind, a committee member that is not a model file, a
            ``source`` with a committee, fewer than two members or no ``initial_data``, a
            ``structure_id`` both in the pool and in ``initial_data``, or a training config
            whose ``model.spin_mode`` is not the committee's (the source's).
    """
    paths = (
        "pool",
        "train_config",
        "source",
        "labelled_pool",
        "initial_data",
        "test",
        "output_dir",
    )
    for name in (*paths, "mpiexec"):
        value = getattr(config, name)
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a path (a string), got {value!r}")
    committee = config.committee
    if not isinstance(committee, tuple | list) or not all(isinstance(p, str) for p in committee):
        raise ValueError(f"committee must be a list of model files, got {committee!r}")
    size = config.committee_size
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"committee_size must be a whole number, got {size!r}")
    if config.source:
        if committee:
            raise ValueError(
                "give either source (every committee fine-tuned from it) or committee, not both"
            )
        if size < 2:
            raise ValueError(
                f"committee_size must be 2 or more with source (the disagreement needs two "
                f"members), got {size}"
            )
        if not config.initial_data:
            raise ValueError(
                "source needs initial_data: the starting committee is fine-tuned on it"
            )
    elif size:
        raise ValueError("committee_size applies only with source; a committee is its files")
    elif len(committee) < 2:
        raise ValueError("committee needs two or more model files (the disagreement needs them)")
    for name in ("per_round", "rounds", "dft_processes"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    if config.selection not in SELECTIONS:
        raise ValueError(
            f"selection must be one of {', '.join(SELECTIONS)}, got {config.selection!r}"
        )
    if config.score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {config.score!r}")
    if not isinstance(config.add_partner_sources, bool):
        raise ValueError(
            f"add_partner_sources must be true or false, got {config.add_partner_sources!r}"
        )
    if not isinstance(config.min_distance, int | float) or config.min_distance < 0:
        raise ValueError(f"min_distance must be a number ≥ 0, got {config.min_distance!r}")
    files = [config.pool, config.train_config, *config.committee]
    files += [p for p in (config.labelled_pool, config.initial_data, config.test) if p]
    for name in files:
        if not Path(name).is_file():
            raise FileNotFoundError(f"no file at {name} (named in the active-learning config)")
    known = {f.name for f in dataclasses.fields(DFTProtocol)}
    if not isinstance(config.protocol, dict) or set(config.protocol) - known:
        raise ValueError(f"protocol overrides must be among {sorted(known)}, got {config.protocol}")
    check_scf_budget(config.max_scf_steps, DFTProtocol(**config.protocol).max_scf_iterations)
    if config.source and not Path(config.source).is_file():
        raise FileNotFoundError(f"no model file or checkpoint at {config.source} (source)")
    if config.initial_data:
        initial = {a.info.get(STRUCTURE_ID) for a in read(config.initial_data, index=":")}
        shared = set(_pool_ids(config.pool)) & (initial - {None})
        if shared:
            raise ValueError(
                f"structure_id {min(shared)!r} is in both {config.pool} and "
                f"{config.initial_data}: a labelled pool frame would join another geometry's "
                "partner group (give the pool other ids)"
            )
    spin_mode = load_config(config.train_config).model.spin_mode
    modes = {path: load_model(path).metadata["spin_mode"] for path in config.committee}
    if config.source:
        modes[config.source] = load_source(config.source).config["spin_mode"]
    for path, member in modes.items():
        if member != spin_mode:
            raise ValueError(
                f"{path} is a {member} model but {config.train_config} sets "
                f"model.spin_mode: {spin_mode} (fine-tuning keeps the spin mode)"
            )


def input_digests(config: ActiveConfig) -> dict[str, str]:
    """What a run depends on, by name: the sha256 of each input file, the protocol,
    ``per_round``, ``min_distance``, ``selection`` unless it is ``disagreement``, ``score``
    unless it is ``forces`` and ``add_partner_sources`` if set (they decide the picks; a state
    from before any existed thus resumes) and, with ``source``, ``committee_size``. Not
    ``rounds``: raising it continues a finished run."""
    files = {
        "pool": config.pool,
        "train_config": config.train_config,
        "source": config.source,
        "labelled_pool": config.labelled_pool,
        "initial_data": config.initial_data,
        "test": config.test,
        **{f"committee[{i}]": path for i, path in enumerate(config.committee)},
    }
    digests = {
        name: hashlib.sha256(Path(path).read_bytes()).hexdigest()
        for name, path in files.items()
        if path
    }
    digests["protocol"] = json.dumps(config.protocol, sort_keys=True)
    digests["per_round"] = str(config.per_round)
    digests["min_distance"] = repr(float(config.min_distance))
    if config.selection != "disagreement":
        digests["selection"] = config.selection
    if config.score != "forces":
        digests["score"] = config.score
    if config.add_partner_sources:
        digests["add_partner_sources"] = "true"
    if config.source:
        digests["committee_size"] = str(config.committee_size)
    return digests


def spreads(atoms: Atoms, calc) -> tuple[float, float]:
    """The committee's disagreement on ``atoms``: its force spread (eV/Å) and its energy
    spread per magnetic ion (eV).

    The force spread is the largest per-atom one,
    :func:`~spinmultinet_ase.committee.atom_force_spreads` (the members' standard deviation per
    component, then the norm over x, y, z): forces are what a potential is used for, and the
    largest atom flags a single bad environment that a per-structure mean would dilute. The
    energy spread is the members' standard deviation of the total energy divided by
    :func:`magnetic_ions`: ordering energies are per formula unit, a fixed number of magnetic
    ions, so this is the uncertainty of the quantity they are differences of, comparable across
    cell sizes. Per atom would rank one material's cells the same but weigh materials by their
    oxygen share.
    """
    atoms = atoms.copy()
    atoms.calc = calc
    atoms.get_potential_energy()
    force = float(atom_force_spreads(calc.results["forces_std"]).max())
    return force, float(calc.results["energy_std"]) / magnetic_ions(atoms)


def magnetic_ions(atoms: Atoms) -> int:
    """What an energy spread (or error) is divided by to be per magnetic ion: the number of
    magnetic sites (:func:`magnetic_sites`), or of all atoms in a structure without one
    (which has no ordering energy)."""
    try:
        return len(magnetic_sites(atoms))
    except ValueError:
        return len(atoms)


def pool_scores(pool_spreads: Sequence[tuple[float, float]], score: str) -> np.ndarray:
    """The selection score of each structure from its :func:`spreads`.

    ``forces``: the force spread (eV/Å); ``energy``: the energy spread per magnetic ion (eV);
    ``combined``: each spread divided by its median over ``pool_spreads`` (in a run, the
    structures still to pick; a zero median leaves it as it is), then the larger of the two
    (dimensionless), so a structure ranks high if either spread is large for this committee.
    """
    values = np.asarray(pool_spreads, dtype=float).reshape(-1, 2)
    if score == "forces":
        return values[:, 0]
    if score == "energy":
        return values[:, 1]
    medians = np.median(values, axis=0) if len(values) else np.ones(2)
    return (values / np.where(medians > 0, medians, 1.0)).max(axis=1)


def fingerprint(atoms: Atoms, species: Sequence[str]) -> np.ndarray:
    """A structural and magnetic fingerprint, invariant to rotations, translations, atom order
    and reversing all moments.

    For each species pair, the histogram of neighbour distances up to
    :data:`FINGERPRINT_CUTOFF` (per atom), and the same histogram weighted by
    ``m̂_i · m̂_j``, the cosine of the angle between the two initial moments (zero for an atom
    with ``|m| ≤`` :data:`MAGNETIC_MOMENT`; for collinear moments ``sign(m_i) sign(m_j)``), so
    the magnetic ordering counts as much as the geometry. Rotating moments and structure
    together changes nothing, and so does rotating all moments alone: orientations that
    differ only through spin–orbit coupling count as the same. Distances are Euclidean norms
    of differences of fingerprints.
    """
    first, second, distance = neighbor_list("ijd", atoms, FINGERPRINT_CUTOFF)
    symbols = np.array(atoms.get_chemical_symbols())
    moments = atoms.get_initial_magnetic_moments().reshape(len(atoms), -1)  # (N, 1) or (N, 3)
    sizes = np.linalg.norm(moments, axis=1, keepdims=True)
    units = np.where(sizes > MAGNETIC_MOMENT, moments / np.maximum(sizes, MAGNETIC_MOMENT), 0.0)
    edges = np.linspace(0.0, FINGERPRINT_CUTOFF, FINGERPRINT_BINS + 1)
    parts = []
    for a, b in combinations_with_replacement(species, 2):
        pair = ((symbols[first] == a) & (symbols[second] == b)) | (
            (symbols[first] == b) & (symbols[second] == a)
        )
        spin = np.einsum("ij,ij->i", units[first[pair]], units[second[pair]])
        parts.append(np.histogram(distance[pair], edges)[0] / len(atoms))
        parts.append(np.histogram(distance[pair], edges, weights=spin)[0] / len(atoms))
    return np.concatenate(parts)


def select(
    pool: Sequence[Atoms],
    calc,
    n: int,
    min_distance: float,
    scores: Sequence[float] | None = None,
    rng: np.random.Generator | None = None,
    score: str = "forces",
) -> tuple[list[int], np.ndarray]:
    """Pick up to ``n`` structures of ``pool`` the committee ``calc`` disagrees on most, or,
    with ``rng``, at random.

    Greedy: in order of decreasing score (:func:`pool_scores` of ``pool``; with ``rng``: in
    the order of ``rng.permutation``), take a structure unless its :func:`fingerprint` lies
    within ``min_distance`` of one already taken.

    Args:
        scores: the pool's scores if already computed with ``calc``.
        rng: the generator of a random selection (the baseline of active learning).
        score: what the scores measure when they are computed here (``forces``, ``energy``
            or ``combined``).

    Returns:
        the picked indices into ``pool`` (in the order taken) and every score.
    """
    if scores is None:
        scores = pool_scores([spreads(atoms, calc) for atoms in pool], score)
    scores = np.asarray(scores, dtype=float)
    species = calc.model.metadata["species"]
    prints = [fingerprint(atoms, species) for atoms in pool]
    order = np.argsort(-scores, kind="stable") if rng is None else rng.permutation(len(pool))
    picked: list[int] = []
    for index in order:
        if len(picked) == n:
            break
        if all(np.linalg.norm(prints[index] - prints[p]) >= min_distance for p in picked):
            picked.append(int(index))
    return picked, scores


def with_partner_sources(
    chosen: Sequence[Atoms], pool: Sequence[Atoms], taken: set[str]
) -> list[Atoms]:
    """``chosen`` with, right before the first structure that names it, each partner source
    (the structure of ``pool`` whose ``structure_id`` a chosen one's ``info['partner_of']``
    is) that is neither in ``taken`` (picked in an earlier round) nor chosen itself.

    A source outside the pool (e.g. in the initial data) is not added: its frame is trained on
    anyway, and the partner group forms there.
    """
    by_id = {atoms.info[STRUCTURE_ID]: atoms for atoms in pool}
    added = set(taken) | {atoms.info[STRUCTURE_ID] for atoms in chosen}
    result: list[Atoms] = []
    for atoms in chosen:
        source = atoms.info.get("partner_of")
        if source in by_id and source not in added:
            result.append(by_id[source])
            added.add(source)
        result.append(atoms)
    return result


def _read_pool(path: str) -> list[Atoms]:
    """The pool's structures, each with a unique ``structure_id`` (``pool-INDEX`` if absent)."""
    frames = read(path, index=":")
    for index, atoms in enumerate(frames):
        atoms.info.setdefault(STRUCTURE_ID, f"pool-{index}")
    ids = [atoms.info[STRUCTURE_ID] for atoms in frames]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: structure_id values repeat; each pool structure needs its own")
    return frames


def _pool_ids(path: str) -> list[str]:
    """The ``structure_id`` of each pool frame (``pool-INDEX`` if absent, as
    :func:`_read_pool` names them)."""
    return [
        atoms.info.get(STRUCTURE_ID, f"pool-{index}")
        for index, atoms in enumerate(read(path, index=":"))
    ]


class ActiveLearning:
    """One active-learning run in ``config.output_dir``; :meth:`run` resumes where it stopped.

    Args:
        config: the run's settings.
        progress: print a line per stage and show training progress bars.
        hook: called as ``hook(round, stage)`` after each stage's state is written (and after
            each member with stage ``member_M``); tests stop the run there.
    """

    def __init__(
        self,
        config: ActiveConfig,
        progress: bool = True,
        hook: Callable[[int, str], None] | None = None,
    ) -> None:
        check_active_config(config)
        if int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("PMI_SIZE", "1"))) > 1:
            raise ValueError(
                "run active-learn as one process (not under mpiexec); dft_processes sets the "
                "ranks of its GPAW jobs"
            )
        self.config = config
        self.progress = progress
        self.hook = hook or (lambda round_, stage: None)
        self.output = Path(config.output_dir)
        self.pool = _read_pool(config.pool)
        self.state_path = self.output / "state.json"
        self.wrong_states_path = self.output / "wrong_states.json"
        self._committee: tuple[tuple[str, ...], Any, dict[str, tuple[float, float]]] | None = None
        inputs = input_digests(config)
        if self.state_path.is_file():
            self.state = json.loads(self.state_path.read_text(encoding="utf-8"))
            self.state.setdefault("trainings", {})
            changed = sorted(
                name
                for name in set(inputs) | set(self.state["inputs"])
                if inputs.get(name) != self.state["inputs"].get(name)
            )
            if changed:
                raise ValueError(
                    f"{self.output} was started with other inputs ({', '.join(changed)} "
                    "changed); restore them to resume, or give a new output_dir"
                )
        else:
            self.state = {
                "inputs": inputs,
                "round": 1,
                "stage": "start",
                "committee": [f"committee[{i}]" for i in range(len(config.committee))],
                "picked": [],
                "members_done": [],
                "trainings": {},
                "curve": [],
            }

    # ---- state ---------------------------------------------------------------------------
    def _save(self, **changes: Any) -> None:
        self.state.update(changes)
        write_text_atomic(self.state_path, json.dumps(self.state, indent=2))
        rows = self.state["curve"]
        if rows:
            text = io.StringIO()
            columns = list(dict.fromkeys(column for row in rows for column in row))
            writer = csv.DictWriter(text, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
            write_text_atomic(self.output / "curve.csv", text.getvalue())

    def _say(self, message: str) -> None:
        if self.progress:
            print(f"round {self.state['round']}: {message}", flush=True)

    def _round_dir(self, round_: int) -> Path:
        return self.output / f"round_{round_}"

    @staticmethod
    def _member_name(round_: int, member: int) -> str:
        return f"round_{round_}/member_{member}/model.pt"

    def model_file(self, name: str) -> Path:
        """The file of the model the state calls ``name``: ``source``, ``committee[I]`` (the
        config's) or a member's path relative to ``output_dir``."""
        config_models = {f"committee[{i}]": path for i, path in enumerate(self.config.committee)}
        if self.config.source:
            config_models["source"] = self.config.source
        return Path(config_models[name]) if name in config_models else self.output / name

    def _calculator(self):
        """The current committee (one calculator per committee, reused)."""
        from spinmultinet_ase.calculator import SpinMultiNetCalculator

        committee = tuple(self.state["committee"])
        for name in committee:
            self._ensure(name)
        if self._committee is None or self._committee[0] != committee:
            files = [str(self.model_file(name)) for name in committee]
            self._committee = (committee, SpinMultiNetCalculator(files), {})
        return self._committee[1]

    def _spreads(self) -> dict[str, tuple[float, float]]:
        """The current committee's :func:`spreads` on every pool structure, by id (computed
        once per committee)."""
        calc = self._calculator()
        known = self._committee[2]
        for atoms in self.pool:
            if atoms.info[STRUCTURE_ID] not in known:
                known[atoms.info[STRUCTURE_ID]] = spreads(atoms, calc)
        return known

    def _remaining(self) -> list[Atoms]:
        """The pool structures not picked yet."""
        picked = set(self.state["picked"])
        return [a for a in self.pool if a.info[STRUCTURE_ID] not in picked]

    # ---- stages --------------------------------------------------------------------------
    def _select(self, round_: int) -> None:
        remaining = self._remaining()
        known = self._spreads()
        scores = pool_scores([known[a.info[STRUCTURE_ID]] for a in remaining], self.config.score)
        if not remaining:
            raise ValueError(
                f"every pool structure was picked by round {round_ - 1}; add structures to "
                f"{self.config.pool} or lower rounds"
            )
        rng = None
        if self.config.selection == "random":
            seed = load_config(self.config.train_config).seed
            rng = np.random.default_rng([seed, round_])
        picked, scores = select(
            remaining,
            self._calculator(),
            self.config.per_round,
            self.config.min_distance,
            scores,
            rng,
        )
        chosen = [remaining[i] for i in picked]
        if self.config.add_partner_sources:
            chosen = with_partner_sources(chosen, self.pool, set(self.state["picked"]))
        with atomic_path(self._round_dir(round_) / "candidates.extxyz") as temporary:
            write(temporary, chosen, format="extxyz")
        ids = [a.info[STRUCTURE_ID] for a in chosen]
        scale, unit = {"forces": (1.0, "eV/Å"), "energy": (1e3, "meV/ion")}.get(
            self.config.score, (1.0, "× median")
        )
        values = ", ".join(f"{scale * scores[i]:.3f}" for i in picked)
        sources = f" and {len(ids) - len(picked)} partner sources" if len(ids) > len(picked) else ""
        self._say(
            f"picked {len(picked)} of {len(remaining)} (disagreement {values} {unit}){sources}"
        )
        self._save(stage="selected", picked=self.state["picked"] + ids)

    def _label(self, round_: int) -> None:
        folder = self._round_dir(round_)
        out = folder / "labelled.extxyz"
        if self.config.labelled_pool:
            wanted = [a.info[STRUCTURE_ID] for a in read(folder / "candidates.extxyz", ":")]
            known = {a.info.get(STRUCTURE_ID): a for a in read(self.config.labelled_pool, ":")}
            missing = [sid for sid in wanted if sid not in known]
            if missing:
                raise ValueError(f"{self.config.labelled_pool} has no frames {missing}")
            with atomic_path(out) as temporary:
                write(temporary, [known[sid] for sid in wanted], format="extxyz")
        elif self.config.dft_processes == 1:
            protocol = DFTProtocol(**self.config.protocol)
            label_file(
                folder / "candidates.extxyz",
                out,
                protocol=protocol,
                max_scf_steps=self.config.max_scf_steps,
            )
        else:
            _label_under_mpi(
                folder,
                self.config.protocol,
                self.config.dft_processes,
                self.config.mpiexec,
                self.config.max_scf_steps,
            )
        self._check_partners(round_)
        self._save(stage="labelled", members_done=[])

    def _labelled_files(self, round_: int) -> list[Path]:
        """The campaign's labelled files up to round ``round_``: ``initial_data``, then each
        round's ``labelled.extxyz``."""
        files = [Path(self.config.initial_data)] if self.config.initial_data else []
        return files + [self._round_dir(r) / "labelled.extxyz" for r in range(1, round_ + 1)]

    def _wrong_states(self, until: int) -> dict[str, dict[str, Any]]:
        """The frames ``wrong_states.json`` lists as found in a higher state by round
        ``until`` or before, by ``structure_id``: each with its ``round``, ``file`` and
        ``status``."""
        if not self.wrong_states_path.is_file():
            return {}
        listed = json.loads(self.wrong_states_path.read_text(encoding="utf-8"))
        return {sid: entry for sid, entry in listed.items() if entry["round"] <= until}

    def _check_partners(self, round_: int) -> None:
        """Check the partner groups with frames in round ``round_``'s labelled file against
        their accepted frames in the campaign's earlier labelled files (module docstring).

        The list is written first, then the frames of this round in a higher state are moved
        to the rejected file (:func:`~spinmultinet_ase.dft.label.move_to_rejected`): a kill
        leaves at most a frame in both, which the rerun moves again.
        """
        out = self._round_dir(round_) / "labelled.extxyz"
        new = read_output(out)[0]
        groups = {geometry_of(atoms) for atoms in new}
        listed = self._wrong_states(round_ - 1)
        earlier = [
            (path, atoms)
            for path in self._labelled_files(round_ - 1)
            for atoms in _read_frames(path)
            if STRUCTURE_ID in atoms.info
            and atoms.info[STRUCTURE_ID] not in listed
            and geometry_of(atoms) in groups
        ]
        wrong = wrong_states([atoms for _, atoms in earlier] + new)
        moved = []
        for index, status in sorted(wrong.items()):
            if index < len(earlier):
                path, atoms = earlier[index]
                sid = atoms.info[STRUCTURE_ID]
                listed[sid] = {"round": round_, "file": str(path), "status": status}
                self._say(f"{sid} ({path}) left out of training from now on: {status}")
            else:
                atoms = new[index - len(earlier)]
                atoms.info[STATUS] = status
                moved.append(atoms)
                self._say(f"{atoms.info[STRUCTURE_ID]} to {rejected_path(out)}: {status}")
        if listed or self.wrong_states_path.is_file():
            write_text_atomic(self.wrong_states_path, json.dumps(listed, indent=2, sort_keys=True))
        if moved:
            move_to_rejected(out, moved)

    def _training_data(self, round_: int) -> Path:
        """All frames labelled so far but those ``wrong_states.json`` lists by this round, in
        one file (rewritten atomically).

        Raises:
            ValueError: there are none, or two hold one ``structure_id`` (the training would
                take them for one geometry).
        """
        wrong = self._wrong_states(round_)
        frames: list[Atoms] = []
        origin: dict[str, Path] = {}
        for path in self._labelled_files(round_):
            for atoms in _read_frames(path):
                sid = atoms.info.get(STRUCTURE_ID)
                if sid is not None and sid in origin:
                    raise ValueError(
                        f"structure_id {sid!r} repeats ({origin[sid]} and {path}): two frames "
                        "of one id would be trained on as one geometry; give them their own ids"
                    )
                if sid is not None:
                    origin[sid] = path
                if sid not in wrong:
                    frames.append(atoms)
        if not frames:
            raise ValueError("no labelled frames to train on (every DFT run was rejected)")
        path = self._round_dir(round_) / "train.extxyz"
        with atomic_path(path) as temporary:
            write(temporary, frames, format="extxyz")
        return path

    def _train_committee(self, round_: int) -> list[str]:
        """Train round ``round_``'s committee (members done before are skipped), after
        recording what it is trained on in ``state['trainings']``; its members' names.

        Raises:
            ValueError: a record of the round (from before a stop) says otherwise.
        """
        base = load_config(self.config.train_config)
        data = self._training_data(round_)
        if self.config.source:
            sources = ["source"] * self.config.committee_size
        else:
            sources = list(self.state["committee"])
        record = {
            "data_sha256": _sha256(data),
            "init_from": sources,
            "seeds": [base.seed + member for member in range(len(sources))],
        }
        old = self.state["trainings"].get(str(round_))
        if old is None:
            self.state["trainings"][str(round_)] = record
            self._save()
        else:
            differ = [key for key, value in record.items() if old.get(key) != value]
            if differ:
                raise ValueError(
                    f"round {round_} was started on other training inputs ({', '.join(differ)} "
                    f"differ from its record in {self.state_path}); restore them to resume"
                )
        for member in range(len(sources)):
            if member in self.state["members_done"]:
                continue
            self._train_member(round_, member)
            self._save(members_done=self.state["members_done"] + [member])
            self.hook(round_, f"member_{member}")
        return [self._member_name(round_, member) for member in range(len(sources))]

    def _train_member(self, round_: int, member: int) -> None:
        """Fine-tune member ``member`` of round ``round_`` as its record says, on
        ``round_K/train.extxyz`` as it is (resuming from its checkpoint if there is one); the
        fingerprint of the frames it learns from is recorded the first time.

        Raises:
            ValueError: the frames differ from those recorded (a replay file changed).
        """
        from spinmultinet_ase.train.trainer import Trainer, has_checkpoint

        record = self.state["trainings"][str(round_)]
        source = record["init_from"][member]
        self._ensure(source)
        base = load_config(self.config.train_config)
        data = self._round_dir(round_) / "train.extxyz"
        output = self._round_dir(round_) / f"member_{member}"
        config = dataclasses.replace(
            base,
            data=dataclasses.replace(base.data, path=str(data), test_fraction=0.0),
            init_from=str(self.model_file(source)),
            seed=record["seeds"][member],
            output_dir=str(output),
        )
        resume = has_checkpoint(output)
        trainer = Trainer(config, resume=resume, overwrite=not resume, progress=self.progress)
        fingerprints = record.setdefault("data_fingerprints", [None] * len(record["seeds"]))
        if fingerprints[member] is None:
            fingerprints[member] = trainer.data_fingerprint
            self._save()
        elif fingerprints[member] != trainer.data_fingerprint:
            raise ValueError(
                f"cannot train {self._member_name(round_, member)} as recorded: its training "
                f"frames (train.extxyz and the replay files of {self.config.train_config}) "
                "are not those it was trained on; restore them"
            )
        trainer.run()

    def _ensure(self, name: str) -> None:
        """Train the model the state calls ``name`` again from its record if its file is
        missing (then the disagreement cache, which may be of the lost model, is dropped).

        Raises:
            FileNotFoundError: it is missing and no round's record names it.
            ValueError: its round's training frames are no longer those it was trained on.
        """
        path = self.model_file(name)
        if path.is_file():
            return
        for key, record in self.state["trainings"].items():
            round_ = int(key)
            for member in range(len(record["init_from"])):
                if self._member_name(round_, member) != name:
                    continue
                self._say(f"training {path} again (missing) as recorded")
                data = self._training_data(round_)
                if _sha256(data) != record["data_sha256"]:
                    raise ValueError(
                        f"cannot rebuild {path}: {data} no longer holds the frames it was "
                        "trained on (restore the rounds' labelled files and initial_data)"
                    )
                self._train_member(round_, member)
                self._committee = None
                return
        raise FileNotFoundError(f"no model at {path} and no record of its training to redo")

    def _train(self, round_: int) -> None:
        members = self._train_committee(round_)
        self.state["committee"] = members
        self._add_curve_row(round_)
        self._save(stage="trained")

    def _add_curve_row(self, round_: int) -> None:
        pool = np.array(list(self._spreads().values()))
        labelled = [self._round_dir(r) / "labelled.extxyz" for r in range(1, round_ + 1)]
        frames = sum(_frame_count(path) for path in labelled)
        initial = _frame_count(Path(self.config.initial_data)) if self.config.initial_data else 0
        row = {
            "round": round_,
            "dft_frames": frames,
            "dft_rejected": sum(_frame_count(rejected_path(path)) for path in labelled),
            "training_frames": initial + frames - len(self._wrong_states(round_)),
            "pool_left": len(self._remaining()),
            "pool_disagreement_mean_eV_per_A": float(np.mean(pool[:, 0])),
            "pool_disagreement_max_eV_per_A": float(np.max(pool[:, 0])),
        }
        if self.config.score != "forces":
            row["pool_energy_disagreement_mean_meV_per_ion"] = 1e3 * float(np.mean(pool[:, 1]))
            row["pool_energy_disagreement_max_meV_per_ion"] = 1e3 * float(np.max(pool[:, 1]))
        if self.config.test:
            row.update(curve_errors(self.config.test, self._calculator()))
        self.state["curve"] = [r for r in self.state["curve"] if r["round"] != round_] + [row]

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run the rounds not yet done; returns the final state."""
        if not self.state["curve"]:
            if self.config.source:
                self.state["committee"] = self._train_committee(0)
            self._add_curve_row(0)
            self._save(members_done=[])
        while self.state["round"] <= self.config.rounds:
            round_, stage = self.state["round"], self.state["stage"]
            if stage == "start":
                self._select(round_)
            elif stage == "selected":
                self._label(round_)
            elif stage == "labelled":
                self._train(round_)
            else:  # trained: the next round
                self._save(round=round_ + 1, stage="start")
                continue
            self._say(f"{self.state['stage']}")
            self.hook(round_, self.state["stage"])
        return self.state


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_frames(path: Path) -> list[Atoms]:
    """The frames of the extxyz file at ``path`` (none if there is no file or it is empty)."""
    return read(path, ":") if path.is_file() and path.stat().st_size else []


def _frame_count(path: Path) -> int:
    """How many frames the extxyz file at ``path`` holds (0 if there is none)."""
    return len(_read_frames(path))


def _label_under_mpi(
    folder: Path,
    protocol: dict[str, Any],
    processes: int,
    mpiexec: str,
    max_scf_steps: int | None = None,
) -> None:
    """Label ``folder/candidates.extxyz`` into ``folder/labelled.extxyz`` with an
    ``mpiexec -n processes`` job (``max_scf_steps``: its labelling budget); its output goes to
    ``folder/label.log``. A job GPAW aborted after recording the frame it failed on (in
    ``labelled.extxyz.failures``) is run again: the rerun rejects that frame and goes on (up
    to :data:`MPI_LABEL_ATTEMPTS` jobs).

    Raises:
        ValueError: a job failed without recording a new failure (e.g. on a record it cannot
            read), or every attempt failed (the log's last line says why).
    """
    code = (
        "import json, sys; from spinmultinet_ase.dft.label import label_file; "
        "from spinmultinet_ase.dft.protocol import DFTProtocol; "
        "label_file(sys.argv[1], sys.argv[2], protocol=DFTProtocol(**json.loads(sys.argv[3])), "
        "max_scf_steps=json.loads(sys.argv[4]))"
    )
    command = [mpiexec, "-n", str(processes), sys.executable, "-c", code]
    command += [str(folder / "candidates.extxyz"), str(folder / "labelled.extxyz")]
    command += [json.dumps(protocol), json.dumps(max_scf_steps)]
    log = folder / "label.log"
    failures = failures_path(folder / "labelled.extxyz")
    for _ in range(MPI_LABEL_ATTEMPTS):
        recorded = failures.read_bytes() if failures.exists() else None
        with log.open("a", encoding="utf-8") as stream:
            done = subprocess.run(
                command,
                stdout=stream,
                stderr=subprocess.STDOUT,
                env={**os.environ, "GPAW_MPI_BACKEND": "cgpaw"},
                check=False,
            )
        if not done.returncode or not failures.exists() or failures.read_bytes() == recorded:
            break
    if done.returncode:
        lines = log.read_text(encoding="utf-8").splitlines()
        said = [line.strip() for line in lines if any(c.isalnum() for c in line)] or [""]
        raise ValueError(
            f"the labelling job failed (exit code {done.returncode}; see {log}): {said[-1]}"
        )


def curve_errors(path: str, calc) -> dict[str, float | bool]:
    """Learning-curve columns on the labelled frames at ``path``, for the committee ``calc``.

    Per material (``info['material']``, else ``all``): the committee mean's energy (meV/atom)
    and force (meV/Å) mean absolute errors. Per yardstick entry
    (:func:`~spinmultinet_ase.magnetism.yardsticks.yardstick_table` of the frames): the
    largest error of an ordering energy against DFT (meV/f.u.) and, where DFT's lowest
    ordering is determined, whether the committee's is the same.
    """
    frames = read(path, ":")
    energies: dict[str, list[float]] = {}
    forces: dict[str, list[float]] = {}
    for atoms in frames:
        copy = atoms.copy()
        copy.calc = calc
        material = material_of(atoms)
        error = copy.get_potential_energy() - atoms.get_potential_energy()
        energies.setdefault(material, []).append(abs(error) / len(atoms))
        forces.setdefault(material, []).append(
            np.abs(copy.get_forces() - atoms.get_forces()).mean()
        )
    row: dict[str, float | bool] = {}
    for material in sorted(energies):
        row[f"{material}_energy_mae_meV_per_atom"] = 1e3 * float(np.mean(energies[material]))
        row[f"{material}_forces_mae_meV_per_A"] = 1e3 * float(np.mean(forces[material]))

    def model_energy(atoms: Atoms) -> float:
        copy = atoms.copy()
        copy.calc = calc
        return copy.get_potential_energy()

    dft = yardstick_table(frames)
    model = yardstick_table(frames, model_energy)
    for key, entry in dft.items():
        mine = model[key]["orderings_meV_per_fu"]
        row[f"{key}_ordering_error_max_meV_per_fu"] = max(
            abs(mine[ordering] - value) for ordering, value in entry["orderings_meV_per_fu"].items()
        )
        if "lowest" in entry:
            row[f"{key}_lowest_agrees"] = model[key]["lowest"] == entry["lowest"]
    return row
