"""Label structures with GPAW (spin-polarised PBE+U plane waves), resumably, under MPI.

Run on both cores with ``mpiexec -n 2 spinmultinet label IN.extxyz OUT.extxyz``. Frames that
did not converge (within the protocol's SCF limit, or a lower labelling budget:
:func:`label_structure`), whose converged moments left the magnetic state that was asked for,
or (FeO, CoO) that landed in another electronic state (``spinmultinet_ase/dft/states.py``) go
to ``OUT.rejected.extxyz`` with the reason, never into ``OUT``; so do frames on which GPAW
failed (the queue goes on; under MPI, where the job aborts, on the next run: ``OUT.failures``),
and FeO and CoO frames in a higher electronic state than another frame of their geometry (an
ordering partner), moved there from ``OUT`` if they were in it (:func:`move_to_rejected`). Each
frame is written atomically, so a kill at any instant loses at most the frame being computed (a
frame being moved is left in both files, and the rerun takes it out of ``OUT``), and a rerun
resumes after the last frame written.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, NoReturn

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.formula import Formula
from ase.io import read, write
from ase.units import GPa

from spinmultinet_ase.data.partners import STRUCTURE_ID, geometry_of
from spinmultinet_ase.dft.orientation import canonical_rotation, rotate_back, rotated
from spinmultinet_ase.dft.protocol import DEFAULT_PROTOCOL, DFTProtocol
from spinmultinet_ase.dft.rank0 import on_rank0
from spinmultinet_ase.dft.scf_budget import check_scf_budget
from spinmultinet_ase.dft.states import (
    band_gap,
    higher_states,
    minority_d_occupations,
    needs_broken_symmetry,
    state_problem,
)
from spinmultinet_ase.magnetism.sites import MOMENT_THRESHOLD, default_magnitude
from spinmultinet_ase.outputs import (
    appending,
    atomic_path,
    check_outputs,
    sole_writer,
    temporaries_of,
)
from spinmultinet_ase.stacklevel import user_stacklevel

if TYPE_CHECKING:
    from spinmultinet_ase.dft.orbital_bias import OrbitalBias

STATUS = "dft_status"
STATUS_OK = "ok"
# ``info`` key of the labelling budget (SCF steps) a frame was labelled under, if any.
SCF_BUDGET = "dft_scf_budget"
# ``info['dft_start']`` of frames whose run started with an orbital bias (FeO, CoO).
ORBITAL_BIAS_START = "orbital-bias"

# A converged moment below this fraction of the element's nominal magnitude has collapsed.
COLLAPSE_FRACTION = 0.4


def rejected_path(out_path: Path) -> Path:
    """Where frames kept out of the training set go, beside ``out_path``."""
    return out_path.with_name(out_path.stem + ".rejected" + out_path.suffix)


def failures_path(out_path: Path) -> Path:
    """Where the ranks of an MPI labeller record a GPAW failure before the job aborts, beside
    ``out_path`` (:func:`record_failure`)."""
    return out_path.with_name(out_path.name + ".failures")


def record_failure(path: Path, failed: Atoms, rank: int) -> None:
    """Append the failed frame ``failed``'s record to ``path``: one JSON line with its structure
    id, ``rank`` and its ``dft_*`` info (the reason in ``info[dft_status]``), synced to disk."""
    info = {key: value for key, value in failed.info.items() if key.startswith("dft_")}
    line = json.dumps({STRUCTURE_ID: failed.info[STRUCTURE_ID], "rank": rank, "info": info})
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, (line + "\n").encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_failures(path: Path) -> dict[str, dict]:
    """The ``dft_*`` info of each structure id recorded in ``path`` (:func:`record_failure`),
    from the lowest rank that recorded it (ranks can fail at different k-points, with
    different messages). A torn last line is left out.

    Raises:
        ValueError: a whole line is not a failure record.
    """
    if not path.exists():
        return {}
    records: dict[str, tuple[int, dict]] = {}
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        if not line.endswith("\n"):
            break
        try:
            record = json.loads(line)
            sid, rank, info = record[STRUCTURE_ID], int(record["rank"]), dict(record["info"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"{path}: line {number} is not a failure record ({error}); repair or move the file"
            ) from None
        if sid not in records or rank < records[sid][0]:
            records[sid] = (rank, info)
    return {sid: info for sid, (_, info) in records.items()}


def _abort_rank(failed: Atoms, failures: Path | None, rank: int, error: Exception) -> NoReturn:
    """Record ``failed`` in ``failures`` if given (:func:`record_failure`) and raise a
    RuntimeError from ``error``.

    Not one of the CLI's user errors (ValueError, OSError, ...): on those a rank prints one line
    and exits normally, and then waits in MPI_Finalize, forever, for a rank stuck in GPAW. An
    uncaught error makes GPAW's exception hook abort every rank instead. A record that cannot
    be written is said in the message; the frame is then labelled again on the next run.
    """
    unrecorded = ""
    if failures is not None:
        try:
            record_failure(failures, failed, rank)
        except (OSError, TypeError, ValueError) as record_error:
            unrecorded = f" (not recorded in {failures}: {record_error})"
    raise RuntimeError(
        f"{failed.info.get(STRUCTURE_ID)} on rank {rank}: {failed.info[STATUS]}{unrecorded}"
    ) from error


def magnetic_state_problem(symbols: list[str], initial: np.ndarray, final: np.ndarray) -> str:
    """Why the converged moments ``final`` are not the state asked for by ``initial`` ('' if ok).

    Only magnetic sites (a nonzero initial moment) are judged: a sign different from the
    initial one means the ordering flipped; a magnitude below :data:`COLLAPSE_FRACTION` of the
    element's nominal moment (its default guess, else the initial moment) means the moment
    collapsed.
    """
    problems = []
    for index, (symbol, m0, m) in enumerate(zip(symbols, initial, final, strict=True)):
        if abs(m0) <= MOMENT_THRESHOLD:
            continue
        if abs(m) < COLLAPSE_FRACTION * (default_magnitude(symbol) or abs(m0)):
            problems.append(f"moment of atom {index} ({symbol}) collapsed to {m:.2f}")
        elif np.sign(m) != np.sign(m0):
            problems.append(f"moment of atom {index} ({symbol}) flipped sign to {m:.2f}")
    return "; ".join(problems)


def gpaw_calculator(atoms: Atoms, protocol: DFTProtocol, txt: str | Path, **extra):
    """A GPAW plane-wave calculator following ``protocol`` (``extra``: more GPAW keywords)."""
    from gpaw import GPAW, PW

    from spinmultinet_ase.dft.scf import rank_agreed_convergence

    return GPAW(
        mode=PW(protocol.ecut_ev),
        xc=protocol.xc,
        setups=protocol.setups(set(atoms.get_chemical_symbols())),
        kpts={"density": protocol.kpoint_density, "gamma": True, "even": True},
        occupations={"name": protocol.smearing, "width": protocol.smearing_ev},
        spinpol=True,
        convergence=rank_agreed_convergence(
            protocol.energy_convergence_ev, protocol.density_convergence
        ),
        maxiter=protocol.max_scf_iterations,
        txt=str(txt),
        **extra,
    )


def start_bias(work: Atoms) -> OrbitalBias | None:
    """The orbital bias the labeller starts the run of ``work`` with, or None (a plain start
    from the initial moments).

    FeO and CoO frames (:func:`~spinmultinet_ase.dft.states.needs_broken_symmetry`) get an
    :class:`~spinmultinet_ase.dft.orbital_bias.OrbitalBias` on the minority target orbitals
    of every metal, about the 3-fold axis of ``work``'s magnetic structure in ``work``'s own
    Cartesian frame (:func:`~spinmultinet_ase.dft.orbital_bias.three_fold_axis`), each metal's
    minority spin opposite to its initial moment.

    Args:
        work: the frame GPAW runs on (bond-aligned: :mod:`~spinmultinet_ase.dft.orientation`).

    Raises:
        ValueError: a metal of an FeO or CoO frame has no initial moment (no minority spin),
            or its cell is not a bond-aligned rocksalt supercell.
    """
    formula = str(Formula(work.get_chemical_formula()).reduce()[0])
    if not needs_broken_symmetry(formula):
        return None
    from spinmultinet_ase.dft.orbital_bias import OrbitalBias, bias_targets, three_fold_axis

    return OrbitalBias(bias_targets(work, three_fold_axis(work)))


def frame_calculator(
    work: Atoms,
    protocol: DFTProtocol,
    txt: str | Path,
    bias: OrbitalBias | None,
    scf: dict | None = None,
    max_scf_steps: int | None = None,
):
    """The GPAW calculator the labeller runs ``work`` with, started with ``bias``
    (:func:`start_bias`), its SCF step limit the protocol's or ``max_scf_steps`` if lower
    (a labelling budget: :func:`~spinmultinet_ase.dft.scf_budget.check_scf_budget`).

    With a bias, GPAW's point-group symmetry is off (time reversal kept): the frames are
    strained, rattled or supercells of any ordering, whose symmetry operations would not in
    general keep the bias (``orbital_bias.check_symmetric``); the material's mixer and
    eigensolver settings (:data:`~spinmultinet_ase.dft.orbital_bias.SCF_KEYWORDS`) apply, or
    ``scf`` (GPAW keywords) in their place when given (a study of other SCF settings).
    """
    if max_scf_steps is not None and max_scf_steps < protocol.max_scf_iterations:
        protocol = replace(protocol, max_scf_iterations=max_scf_steps)
    if bias is None:
        return gpaw_calculator(work, protocol, txt)
    from spinmultinet_ase.dft.orbital_bias import SCF_KEYWORDS

    formula = str(Formula(work.get_chemical_formula()).reduce()[0])
    return gpaw_calculator(
        work,
        protocol,
        txt,
        symmetry={"point_group": False},
        extensions=[bias],
        **(SCF_KEYWORDS.get(formula, {}) if scf is None else scf),
    )


def frame_status(atoms: Atoms, magmoms: np.ndarray, electronic_problem: str = "") -> str:
    """The labeller's verdict (``info[dft_status]``) on a converged run of ``atoms`` that ended
    with the moments ``magmoms``: a wrong magnetic state (:func:`magnetic_state_problem`)
    first, else ``electronic_problem`` (``states.state_problem``; '' for a plain start), else
    :data:`STATUS_OK`."""
    problem = magnetic_state_problem(
        atoms.get_chemical_symbols(), atoms.get_initial_magnetic_moments(), magmoms
    )
    if problem:
        return f"wrong magnetic state: {problem}"
    if electronic_problem:
        return f"wrong electronic state: {electronic_problem}"
    return STATUS_OK


class ElectronicState(NamedTuple):
    """Where a converged run from an orbital-bias start ended (:func:`electronic_state`)."""

    gap: float
    occupations: dict[int, np.ndarray]
    filling: dict[int, float]
    problem: str


def electronic_state(calc, formula: str, magmoms: np.ndarray, targets) -> ElectronicState:
    """The band gap, each metal's minority d occupation matrix, the electrons each metal holds
    in its target orbitals ``targets`` (those of the labeller's bias) and why the material's
    rule rejects the state ('' if it does not: ``states.state_problem``), for a converged
    GPAW ``calc`` of the material ``formula`` (reduced) that ended with the moments
    ``magmoms``."""
    from spinmultinet_ase.dft.orbital_bias import current_target_occupations

    gap = band_gap(calc)
    occupations = minority_d_occupations(calc, magmoms)
    filling = current_target_occupations(calc.dft, targets)
    return ElectronicState(
        gap, occupations, filling, state_problem(formula, gap, occupations, filling)
    )


def _protocol_info(protocol: DFTProtocol) -> dict:
    import gpaw

    return {
        "dft_code": f"gpaw-{gpaw.__version__}",
        "dft_xc": protocol.xc,
        "dft_ecut_ev": protocol.ecut_ev,
        "dft_kpoint_density": protocol.kpoint_density,
        "dft_smearing": protocol.smearing,
        "dft_smearing_ev": protocol.smearing_ev,
        "dft_hubbard_u": ",".join(f"{k}:{v}" for k, v in sorted(protocol.hubbard_u_ev.items())),
        "dft_bonds_along_axes": protocol.align_bonds,
    }


def _start_info(formula: str) -> dict:
    """The start rule of runs of the material ``formula`` (reduced): recorded with each of its
    frames and compared on resume, like the protocol; empty for a plain start."""
    if not needs_broken_symmetry(formula):
        return {}
    from spinmultinet_ase.dft.orbital_bias import SCF_KEYWORDS, STRENGTH_EV, scf_record

    start = {"dft_start": ORBITAL_BIAS_START, "dft_bias_strength_ev": STRENGTH_EV}
    if formula in SCF_KEYWORDS:
        start["dft_scf"] = scf_record(SCF_KEYWORDS[formula])
    return start


def label_structure(
    atoms: Atoms,
    protocol: DFTProtocol,
    txt: str | Path,
    failures: Path | None = None,
    max_scf_steps: int | None = None,
) -> Atoms:
    """One GPAW single point of ``atoms``; returns a labelled copy with ``info[dft_status]``.

    With a labelling budget ``max_scf_steps``
    (:func:`~spinmultinet_ase.dft.scf_budget.check_scf_budget`) the run stops after
    that many SCF steps, biased and free together, or the protocol's limit if that comes
    first; a frame it stops is rejected ("not converged in N SCF steps (labelling budget;
    ...)"), and a frame that converges within it is the frame the protocol gives. The copy
    records it in ``info['dft_scf_budget']``; it is not part of the protocol.

    When GPAW raises (other than not converging), a serial run returns the copy without
    results, its status ``GPAW failed: Type: message``. Under MPI this rank appends that copy's
    record to ``failures`` (:func:`record_failure`) if given and raises a RuntimeError, which
    GPAW's exception hook turns into an abort of every rank (another may wait inside GPAW).

    The copy keeps ``initial_magmoms`` (the input guess) and carries energy, free_energy,
    forces, stress and the converged ``magmoms`` as its calculator results, in the frame of
    ``atoms`` (GPAW may run on a copy turned into its canonical orientation:
    ``protocol.align_bonds``). Materials with orbitally degenerate ions (FeO, CoO) start with
    an orbital bias (:func:`start_bias`, released after the first SCF steps:
    ``info['dft_start']``, ``info['dft_bias_strength_ev']``, ``info['dft_bias_steps']``; FeO
    with its own mixer and eigensolver settings, ``info['dft_scf']``) and must land in the
    insulating state of their rule (``states.STATE_RULES``: CoO's minority electrons in the
    target orbitals, FeO's in one whole orbital per Fe, whichever it is); their band gap goes
    into ``info['dft_gap_ev']`` and the least number of electrons any metal holds in its
    target orbitals into ``info['dft_target_filling']`` (checked for CoO, recorded for FeO).
    """
    from gpaw import KohnShamConvergenceError
    from gpaw.mpi import world

    labelled = atoms.copy()
    labelled.info.update(_protocol_info(protocol))
    formula, formula_units = Formula(atoms.get_chemical_formula()).reduce()
    labelled.info.update(_start_info(str(formula)))
    if max_scf_steps is not None:
        labelled.info[SCF_BUDGET] = max_scf_steps
    pulay = protocol.pulay_stress_correction(str(formula), formula_units, atoms.get_volume())
    start = time.perf_counter()
    rotation = canonical_rotation(atoms) if protocol.align_bonds else np.eye(3)
    work = rotated(atoms, rotation)
    try:
        bias = start_bias(work)
    except ValueError as error:  # no minority spin or no bond-aligned cell to bias
        return _failed(labelled, f"no orbital-bias start: {error}", start)
    bias_steps = 0
    try:
        work.calc = frame_calculator(work, protocol, txt, bias, max_scf_steps=max_scf_steps)
        if bias is not None:
            from spinmultinet_ase.dft.orbital_bias import run_biased_start

            biased = run_biased_start(work.calc, work, bias, total_steps=max_scf_steps)
            bias_steps = biased.steps
            labelled.info["dft_bias_steps"] = biased.steps
        results = {
            "energy": work.get_potential_energy(),
            "free_energy": work.get_potential_energy(force_consistent=True),
            "forces": work.get_forces(),
            "stress": work.get_stress() + pulay * np.array([1, 1, 1, 0, 0, 0]),
            "magmoms": work.get_magnetic_moments(),
            "magmom": work.get_magnetic_moment(),
        }
        results = rotate_back(results, rotation)
    except KohnShamConvergenceError as error:
        detail = f": {error}" if str(error) else ""
        steps = protocol.max_scf_iterations
        if max_scf_steps is not None and max_scf_steps - bias_steps < steps:
            detail = f" (labelling budget; the protocol allows {steps}){detail}"
            steps = max_scf_steps
        return _failed(labelled, f"not converged in {steps} SCF steps{detail}", start)
    except Exception as error:  # GPAW failed on this frame: reject it, the queue goes on
        failed = _failed(labelled, f"GPAW failed: {type(error).__name__}: {error}", start)
        if world.size > 1:  # the other ranks may wait in GPAW: let GPAW's handler abort all
            _abort_rank(failed, failures, world.rank, error)
        return failed
    labelled.info["dft_wall_s"] = time.perf_counter() - start
    labelled.info["dft_pulay_stress_gpa"] = pulay / GPa
    electronic_problem = ""
    if bias is not None:
        state = electronic_state(work.calc, str(formula), results["magmoms"], bias.targets)
        labelled.info["dft_gap_ev"] = state.gap
        labelled.info["dft_target_filling"] = min(state.filling.values())
        electronic_problem = state.problem
    labelled.info[STATUS] = frame_status(atoms, results["magmoms"], electronic_problem)
    labelled.calc = SinglePointCalculator(labelled, **results)
    return labelled


def _failed(labelled: Atoms, reason: str, start: float) -> Atoms:
    """``labelled`` without results, its status the one-line ``reason``."""
    labelled.info[STATUS] = " ".join(reason.split())
    labelled.info["dft_wall_s"] = time.perf_counter() - start
    return labelled


# Wall time of a run grows about as (number of atoms)^1.5 at a fixed k-point density (median
# times of the labelled data, MnO and NiO: 2 -> 4 atoms ×2.0-2.2, 4 -> 8 ×2.6-3.1, 8 -> 16
# ×3.6-10); estimates use it where no frame of the same material and size is labelled yet.
COST_EXPONENT = 1.5


def _cost_group(atoms: Atoms) -> tuple[str, int]:
    return Formula(atoms.get_chemical_formula()).reduce()[0].format("metal"), len(atoms)


def estimated_hours(labelled: list[Atoms], todo: list[Atoms]) -> float | None:
    """Wall time (h) to label ``todo``: each frame at the mean ``dft_wall_s`` of the labelled
    frames of its material and size (means, not medians: the total is a sum, and slow
    low-symmetry frames are common); otherwise at the mean time per atom^1.5. None without
    any labelled frame to go by."""
    times: dict[tuple[str, int], list[float]] = {}
    for atoms in labelled:
        if "dft_wall_s" in atoms.info:
            times.setdefault(_cost_group(atoms), []).append(atoms.info["dft_wall_s"])
    if not times:
        return None
    per_cost = np.mean([t / n**COST_EXPONENT for (_, n), ts in times.items() for t in ts])
    seconds = 0.0
    for atoms in todo:
        group = _cost_group(atoms)
        seconds += (
            np.mean(times[group]) if group in times else per_cost * len(atoms) ** COST_EXPONENT
        )
    return float(seconds) / 3600


def read_output(path: Path) -> tuple[list[Atoms], int]:
    """The whole frames of an extxyz output and the number of bytes they fill.

    A torn last frame (a file cut short by a killed writer) is left out; an unreadable frame
    before the last one is an error. The calling rank reads the file itself (ASE's MPI
    broadcast is off), so rank 0 alone may call it.

    Raises:
        ValueError: a frame other than the last cannot be read.
    """
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    frames: list[Atoms] = []
    start, size = 0, 0
    while start < len(lines):
        try:
            count = int(lines[start])
        except ValueError:
            count = -1
        chunk = lines[start : start + count + 2]
        last = start + count + 2 >= len(lines)
        try:
            if count < 0 or len(chunk) < count + 2 or not chunk[-1].endswith(b"\n"):
                raise ValueError("incomplete frame")
            frames.append(read(StringIO(b"".join(chunk).decode()), format="extxyz", parallel=False))
        except Exception as error:  # ASE raises many types for a damaged frame
            if last:
                break
            raise ValueError(
                f"{path}: frame {len(frames) + 1} cannot be read ({error}); repair or move the file"
            ) from None
        size += sum(len(line) for line in chunk)
        start += count + 2
    return frames, size


def _tidy_output(path: Path, size: int) -> None:
    """Remove temporaries of killed appends to ``path`` and cut a torn last frame off it
    (``size``: the bytes its whole frames fill), with a warning."""
    for temporary in temporaries_of(path):
        temporary.unlink()
    if path.exists() and size < path.stat().st_size:
        warnings.warn(
            f"{path}: dropped a torn last frame left by an interrupted write; its structure "
            "is labelled again",
            stacklevel=user_stacklevel(),
        )
        with atomic_path(path) as temporary:
            temporary.write_bytes(path.read_bytes()[:size])


def protocol_mismatch(labelled: list[Atoms], protocol: DFTProtocol) -> str:
    """How the first frame of ``labelled`` labelled with other settings differs ('' if none).

    Protocol settings a frame does not record are not compared; U is compared on its own
    elements (adding U for another element changes nothing for it). The start rule of its
    material (:func:`_start_info`) is compared whether recorded or not: a frame of FeO or CoO
    without it was labelled by an earlier rule.
    """
    expected = _protocol_info(protocol)
    for atoms in labelled:
        present = set(atoms.get_chemical_symbols())
        for key, value in expected.items():
            if key not in atoms.info:
                continue
            recorded = atoms.info[key]
            if key == "dft_hubbard_u":
                recorded, value = (_hubbard_u(u, present) for u in (recorded, value))
            if recorded != value:
                return f"{atoms.info[STRUCTURE_ID]} has {key}={recorded}, this run {value}"
        formula = str(Formula(atoms.get_chemical_formula()).reduce()[0])
        for key, value in _start_info(formula).items():
            recorded = atoms.info.get(key)
            if recorded != value:
                return f"{atoms.info[STRUCTURE_ID]} has {key}={recorded}, this run {value}"
    return ""


def _hubbard_u(text: str, symbols: set[str]) -> str:
    """The ``dft_hubbard_u`` record ``text`` cut down to the elements ``symbols``."""
    return ",".join(item for item in str(text).split(",") if item.partition(":")[0] in symbols)


def _read_structures(in_path: Path) -> list[Atoms]:
    """The structures to label, each with a unique structure id (one-line errors)."""
    if not in_path.is_file():
        raise FileNotFoundError(f"no structure file at {in_path}")
    try:
        frames = read(in_path, index=":", format="extxyz")
    except Exception as error:  # ASE raises many types for unreadable files
        raise ValueError(
            f"cannot read structures from {in_path} ({type(error).__name__}: {error})"
        ) from None
    missing = [index for index, a in enumerate(frames) if STRUCTURE_ID not in a.info]
    if missing:
        raise ValueError(
            f"{in_path}: frame {missing[0] + 1} has no info['{STRUCTURE_ID}'] to resume by"
        )
    ids = [a.info[STRUCTURE_ID] for a in frames]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"{in_path}: structure id {repeated[0]} is not unique")
    return frames


def _check_calibrated(frames: list[Atoms], protocol: DFTProtocol) -> None:
    """Every frame's material has a Pulay-stress calibration (ValueError before any run)."""
    for atoms in frames:
        formula, formula_units = Formula(atoms.get_chemical_formula()).reduce()
        protocol.pulay_stress_correction(str(formula), formula_units, atoms.get_volume())


def unlabelled(structures: list[Atoms], labelled: list[Atoms]) -> list[Atoms]:
    """The structures, in order, whose structure id no frame of ``labelled`` carries."""
    done = {atoms.info[STRUCTURE_ID] for atoms in labelled}
    return [atoms for atoms in structures if atoms.info[STRUCTURE_ID] not in done]


def wrong_states(frames: Sequence[Atoms]) -> dict[int, str]:
    """The frames of ``frames`` in a higher electronic state than another frame of their
    partner group: index -> the status "wrong electronic state: ...".

    A partner group is a source and every frame whose ``partner_of`` names it (one geometry),
    labelled with the same Hamiltonian (:func:`_hamiltonian`: total energies of other settings,
    such as another U, are not comparable); within each, the frames more than the threshold
    above the lowest are the higher ones
    (:func:`~spinmultinet_ase.dft.states.higher_states`). Only frames of the materials with
    several electronic states (``needs_broken_symmetry``) are judged: the ordering energies of
    others, such as α-Fe2O3, can exceed the threshold.

    Args:
        frames: accepted frames with DFT energies.
    """
    groups: dict[tuple, list[int]] = {}
    for index, atoms in enumerate(frames):
        if needs_broken_symmetry(str(Formula(atoms.get_chemical_formula()).reduce()[0])):
            groups.setdefault((geometry_of(atoms), _hamiltonian(atoms)), []).append(index)
    wrong = {}
    for members in groups.values():
        formula_units = Formula(frames[members[0]].get_chemical_formula()).reduce()[1]
        energies = [frames[index].get_potential_energy() for index in members]
        for position, problem in higher_states(energies, formula_units).items():
            wrong[members[position]] = f"wrong electronic state: {problem}"
    return wrong


# The recorded settings (:func:`_protocol_info`) that change a frame's total energy.
HAMILTONIAN_KEYS = (
    "dft_xc",
    "dft_ecut_ev",
    "dft_kpoint_density",
    "dft_smearing",
    "dft_smearing_ev",
    "dft_hubbard_u",
)


def _hamiltonian(atoms: Atoms) -> tuple:
    """The values of :data:`HAMILTONIAN_KEYS` ``atoms`` records (None where it records none),
    U cut down to its own elements."""
    present = set(atoms.get_chemical_symbols())
    values = {key: atoms.info.get(key) for key in HAMILTONIAN_KEYS}
    if values["dft_hubbard_u"] is not None:
        values["dft_hubbard_u"] = _hubbard_u(values["dft_hubbard_u"], present)
    return tuple(values.values())


def _check_partners(result: Atoms, labelled: list[Atoms]) -> list[Atoms]:
    """Reject the frames of ``result``'s partner group in a higher electronic state: among its
    accepted frames in ``labelled`` and ``result``, those :func:`wrong_states` names get its
    status.

    Returns:
        The frames of ``labelled`` rejected now (to move out of the output).
    """
    if result.info[STATUS] != STATUS_OK:
        return []
    group = geometry_of(result)
    accepted = [
        a
        for a in labelled
        if a.info[STATUS] == STATUS_OK and a.calc is not None and geometry_of(a) == group
    ]
    frames = [*accepted, result]
    wrong = wrong_states(frames)
    for index, status in wrong.items():
        frames[index].info[STATUS] = status
    return [accepted[index] for index in wrong if index < len(accepted)]


def move_to_rejected(out_path: Path, frames: Sequence[Atoms]) -> None:
    """Move ``frames`` (their status set) from ``out_path`` to its rejected file
    (:func:`rejected_path`), by structure id.

    The rejected file grows first, by the frames whose id it does not hold yet, then
    ``out_path`` is rewritten without their ids if it holds any, each write atomic: a kill
    between the two leaves a frame in both files, never in neither, and a second call with
    the same frames (as the labeller's resume makes: :func:`_interrupted_moves`)
    finishes the move.
    """
    rejected = rejected_path(out_path)
    there = {atoms.info[STRUCTURE_ID] for atoms in read_output(rejected)[0]}
    adding = [atoms for atoms in frames if atoms.info[STRUCTURE_ID] not in there]
    if adding:
        with appending(rejected) as temporary:
            write(temporary, adding, format="extxyz", append=True, parallel=False)
    gone = {atoms.info[STRUCTURE_ID] for atoms in frames}
    held = read_output(out_path)[0]
    kept = [atoms for atoms in held if atoms.info[STRUCTURE_ID] not in gone]
    if len(kept) < len(held):
        with atomic_path(out_path) as temporary:
            write(temporary, kept, format="extxyz", parallel=False)


def _interrupted_moves(accepted: list[Atoms], rejected: list[Atoms]) -> list[Atoms]:
    """The frames of ``rejected`` (a rejected file's) whose id ``accepted`` (its output's)
    holds too: left in both by a kill during :func:`move_to_rejected`. The rejected frame
    wins: the labeller's resume moves them again."""
    accepted_ids = {atoms.info[STRUCTURE_ID] for atoms in accepted}
    return [atoms for atoms in rejected if atoms.info[STRUCTURE_ID] in accepted_ids]


def _write_result(result: Atoms, moved: list[Atoms], out_path: Path) -> None:
    """Move the frames ``moved`` from ``out_path`` to its rejected file
    (:func:`move_to_rejected`), then add ``result`` to ``out_path`` (accepted) or, with them,
    to the rejected file."""
    if result.info[STATUS] == STATUS_OK:
        if moved:
            move_to_rejected(out_path, moved)
        with appending(out_path) as temporary:
            write(temporary, [result], format="extxyz", append=True, parallel=False)
    else:
        move_to_rejected(out_path, [*moved, result])


def label_file(
    in_path: str | Path,
    out_path: str | Path,
    log_dir: str | Path | None = None,
    protocol: DFTProtocol = DEFAULT_PROTOCOL,
    limit: int | None = None,
    max_scf_steps: int | None = None,
) -> None:
    """Label every frame of ``in_path`` not yet in ``out_path``, appending as each finishes.

    One labeller at a time writes an output: rank 0 holds ``OUT.lock`` (:func:`sole_writer`)
    from before the output is read until the run ends.

    A frame GPAW raised on is rejected (``GPAW failed: ...``) and the run goes on; under MPI
    the job aborts instead, after each failing rank recorded the frame in ``OUT.failures``
    (:func:`failures_path`), and the next run moves the recorded frames still unlabelled to
    the rejected output, removes ``OUT.failures`` and goes on. A killed run records nothing:
    its frame is labelled again.

    Args:
        in_path: extxyz of structures with ``initial_magmoms`` and a unique ``structure_id``.
        out_path: extxyz the accepted frames are appended to.
        log_dir: folder for one GPAW text log per structure (default: ``OUT_logs/``).
        protocol: the DFT settings.
        limit: stop after this many new frames (0 or more).
        max_scf_steps: a labelling budget, SCF steps per frame (:func:`label_structure`); a
            file may hold frames labelled with and without one.

    Raises:
        ValueError: before the first GPAW run, if the structures cannot be read or lack unique
            ids, ``max_scf_steps`` is not a budget
            (:func:`~spinmultinet_ase.dft.scf_budget.check_scf_budget`), an output cannot be
            written, another labeller is writing it, the output or a failure record holds
            frames of another protocol, ``OUT.failures`` holds a line that is not a record, or
            a material to label has no Pulay-stress calibration.
        OSError: an output could not be written. Under MPI every rank raises rank 0's error
            in writing (:func:`on_rank0`), so none is left waiting.
    """
    from gpaw.mpi import world

    if limit is not None and limit < 0:
        raise ValueError(f"limit (--limit) must be 0 or more, got {limit}")
    check_scf_budget(max_scf_steps, protocol.max_scf_iterations)
    in_path, out_path = Path(in_path), Path(out_path)
    log_dir = Path(log_dir) if log_dir else out_path.with_name(out_path.stem + "_logs")
    frames = _read_structures(in_path)
    outputs = [out_path, rejected_path(out_path), failures_path(out_path), log_dir / "log.txt"]
    check_outputs(outputs, overwrite=True)
    with _sole_labeller(out_path, world):
        _label_unlabelled(frames, out_path, log_dir, protocol, limit, max_scf_steps, world)


@contextmanager
def _sole_labeller(out_path: Path, world) -> Iterator[None]:
    """Rank 0 holds the lock of ``out_path`` inside the block; if another labeller holds it or
    it cannot be taken, every rank raises a one-line ValueError (:func:`on_rank0`)."""
    with ExitStack() as stack:
        on_rank0(world, _lock, stack, out_path)
        yield


def _lock(stack: ExitStack, out_path: Path) -> None:
    """Enter the lock of ``out_path`` (:func:`sole_writer`) on ``stack``.

    Raises:
        ValueError: another labeller holds it, or it cannot be taken (any OSError).
    """
    try:
        stack.enter_context(sole_writer(out_path))
    except OSError as error:
        raise ValueError(f"cannot lock {out_path} for writing: {error}") from None


def _recorded_failures(frames: list[Atoms], labelled: list[Atoms], path: Path) -> list[Atoms]:
    """The frames of ``frames`` without a frame in ``labelled`` that ``path`` records as failed
    (:func:`read_failures`), each with its recorded info: as the run that failed would have
    rejected them."""
    records = read_failures(path)
    failed = []
    for atoms in unlabelled(frames, labelled):
        if atoms.info[STRUCTURE_ID] in records:
            rejected = atoms.copy()
            rejected.info.update(records[atoms.info[STRUCTURE_ID]])
            failed.append(rejected)
    return failed


def _label_unlabelled(
    frames: list[Atoms],
    out_path: Path,
    log_dir: Path,
    protocol: DFTProtocol,
    limit: int | None,
    max_scf_steps: int | None,
    world,
) -> None:
    """The work of :func:`label_file` once its arguments are checked and its output locked."""
    outputs = {path: read_output(path) for path in (out_path, rejected_path(out_path))}
    accepted, rejected = (frames for frames, _ in outputs.values())
    interrupted = _interrupted_moves(accepted, rejected)
    moving = {atoms.info[STRUCTURE_ID] for atoms in interrupted}
    labelled = [a for a in accepted if a.info[STRUCTURE_ID] not in moving] + rejected
    failed = _recorded_failures(frames, labelled, failures_path(out_path))
    labelled += failed
    mismatch = protocol_mismatch(labelled, protocol)
    if mismatch:
        raise ValueError(
            f"{out_path} holds frames of another DFT protocol ({mismatch}); label into a "
            "new output file"
        )
    pending = unlabelled(frames, labelled)
    todo = pending[:limit]
    _check_calibrated(todo, protocol)
    world.barrier()  # every rank has read the outputs before rank 0 changes them
    sizes = {path: size for path, (_, size) in outputs.items()}
    summary = f"{len(frames) - len(pending)} of {len(frames)} already labelled; {len(todo)} to do"
    on_rank0(world, _start, out_path, log_dir, sizes, interrupted, failed, summary)
    spent = 0.0
    for count, atoms in enumerate(todo, start=1):
        sid = atoms.info[STRUCTURE_ID]
        result = label_structure(
            atoms, protocol, log_dir / f"{sid}.txt", failures_path(out_path), max_scf_steps
        )
        spent += result.info["dft_wall_s"]
        moved = _check_partners(result, labelled)
        labelled.append(result)
        report = (
            f"[{count}/{len(todo)}] {sid} ({len(atoms)} atoms) "
            f"{result.info['dft_wall_s']:.0f} s: {result.info[STATUS]} "
            f"(ETA {estimated_hours(labelled, todo[count:]):.1f} h)"
        )
        on_rank0(world, _save, result, moved, out_path, report)
    done = f"done: {len(todo)} frames in {spent / 3600:.2f} h"
    on_rank0(world, print, done, file=sys.stderr, flush=True)


def _start(
    out_path: Path,
    log_dir: Path,
    sizes: dict[Path, int],
    interrupted: list[Atoms],
    failed: list[Atoms],
    summary: str,
) -> None:
    """Rank 0's start of a run: tidy the outputs up after a killed or aborted run (``sizes``:
    the bytes their whole frames fill, :func:`_tidy_output`), finish the ``interrupted`` moves
    to the rejected file, reject the ``failed`` frames that ``OUT.failures`` records and remove
    it, make ``log_dir`` and print ``summary``."""
    for path, size in sizes.items():
        _tidy_output(path, size)
    if interrupted:
        moving = ", ".join(sorted({atoms.info[STRUCTURE_ID] for atoms in interrupted}))
        warnings.warn(
            f"{out_path}: took out {moving}, also in {rejected_path(out_path)} (a move to the "
            "rejected file was interrupted)",
            stacklevel=user_stacklevel(),
        )
        move_to_rejected(out_path, interrupted)
    for result in failed:
        _write_result(result, [], out_path)
        print(f"{result.info[STRUCTURE_ID]} (recorded failure): {result.info[STATUS]}", flush=True)
    failures_path(out_path).unlink(missing_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    print(summary, flush=True)


def _save(result: Atoms, moved: list[Atoms], out_path: Path, report: str) -> None:
    """Write ``result`` and move ``moved`` (:func:`_write_result`), then print ``report`` and
    the moves."""
    _write_result(result, moved, out_path)
    print(report, flush=True)
    if moved:
        moves = "; ".join(f"{a.info[STRUCTURE_ID]} to rejected: {a.info[STATUS]}" for a in moved)
        print(f"moved {moves}", flush=True)
