"""The GPAW labelling queue survives kills, GPAW failures and bad input: SIGKILL a real serial
GPAW labeller at random instants, resume, and get the uninterrupted run's output exactly; a
frame GPAW fails on is rejected with its reason, serially at once and under ``mpiexec -n 2``
(where the job aborts) on the resume; rank 0 failing to write an output stops every rank of
the MPI job in one line, not only itself; everything checkable is checked before the first GPAW
run."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from spinmultinet_ase.cli import main
from spinmultinet_ase.dft.label import (
    STATUS,
    STATUS_OK,
    _abort_rank,
    failures_path,
    label_file,
    protocol_mismatch,
    read_output,
    record_failure,
    rejected_path,
)
from spinmultinet_ase.dft.protocol import DEFAULT_PROTOCOL, DFTProtocol
from spinmultinet_ase.outputs import is_temporary
from spinmultinet_ase.train.active import _label_under_mpi

pytest.importorskip("gpaw")

# Light bcc Li at a low cutoff and a 2x2x2 mesh: seconds per frame, serial. Non-magnetic (no
# initial moments): Li holds no moment, and a moment set on it would be judged collapsed.
CHEAP = DFTProtocol(
    ecut_ev=150.0,
    kpoint_density=0.5,
    energy_convergence_ev=1e-3,
    density_convergence=1e-2,
    max_scf_iterations=60,
    align_bonds=False,
    pulay_stress={"Li": 0.0},
)
KILLS = 2  # random kill instants: a killed run, a killed resume, then a resume to the end
ROOT = Path(__file__).parents[1]
MPIEXEC = "/usr/bin/mpiexec"  # GPAW's (Debian OpenMPI), not another MPI's first on PATH


def _structures(path: Path, crash: bool = True) -> None:
    """Strained bcc Li cells and (``crash``) a cell with two atoms 0.05 Å apart, on which GPAW
    fails (its overlap matrix is not positive definite)."""
    frames = []
    for index, scale in enumerate((0.98, 1.0, 1.03)):
        atoms = bulk("Li", "bcc", a=3.44 * scale)
        atoms.set_initial_magnetic_moments([0.0])
        atoms.info["structure_id"] = f"Li-{index}"
        frames.append(atoms)
    if crash:
        atoms = bulk("Li", "bcc", a=3.44, cubic=True)
        atoms.positions[1] = atoms.positions[0] + [0.05, 0.0, 0.0]
        atoms.set_initial_magnetic_moments([0.0, 0.0])
        atoms.info["structure_id"] = "Li-overlapping"
        frames.insert(1, atoms)
    write(path, frames, format="extxyz")


def _labeller(in_path: Path, out_path: Path, protocol: DFTProtocol = CHEAP) -> list[str]:
    """A serial labeller process with ``protocol``."""
    code = (
        "import json, sys; from spinmultinet_ase.dft.label import label_file; "
        "from spinmultinet_ase.dft.protocol import DFTProtocol; "
        "label_file(sys.argv[1], sys.argv[2], protocol=DFTProtocol(**json.loads(sys.argv[3])))"
    )
    settings = json.dumps(dataclasses.asdict(protocol))
    return [sys.executable, "-c", code, str(in_path), str(out_path), settings]


def _cli_labeller(in_path: Path, out_path: Path, protocol: DFTProtocol = CHEAP) -> list[str]:
    """``spinmultinet label`` (its error handling, as the queue runs it) with ``protocol``."""
    code = (
        "import functools, json, sys; import spinmultinet_ase.dft.label as label; "
        "from spinmultinet_ase.cli import main; "
        "from spinmultinet_ase.dft.protocol import DFTProtocol; "
        "protocol = DFTProtocol(**json.loads(sys.argv[3])); "
        "label.label_file = functools.partial(label.label_file, protocol=protocol); "
        "sys.exit(main(['label', sys.argv[1], sys.argv[2]]))"
    )
    settings = json.dumps(dataclasses.asdict(protocol))
    return [sys.executable, "-c", code, str(in_path), str(out_path), settings]


def _run(
    command: list[str], kill_after: float | None = None, mpi: bool = False, stderr=None
) -> int:
    """Run ``command`` (:func:`_started`); its exit code (:func:`_ended`)."""
    return _ended(_started(command, mpi, stderr), kill_after)


def _started(command: list[str], mpi: bool = False, stderr=None) -> subprocess.Popen:
    """Start ``command`` (``mpi``: under GPAW's MPI, as the queue does) in a process group of
    its own, its standard error to the file ``stderr`` if given."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env.pop("GPAW_MPI_BACKEND", None)
    if mpi:
        env.update(
            GPAW_MPI_BACKEND="cgpaw",
            OMPI_ALLOW_RUN_AS_ROOT="1",
            OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        )
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
    )


def _ended(process: subprocess.Popen, kill_after: float | None = None) -> int:
    """The exit code of ``process``; SIGKILL it and its process group after ``kill_after`` s
    if still running."""
    try:
        return process.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


def _frames(path: Path) -> list[dict]:
    """Every frame of ``path`` as plain data (wall time left out)."""
    rows = []
    for atoms in read(path, index=":") if path.exists() else []:
        info = {k: v for k, v in atoms.info.items() if k != "dft_wall_s"}
        results = dict(atoms.calc.results) if atoms.calc else {}
        rows.append({"info": info, "positions": atoms.positions.tolist(), **results})
    return rows


def _assert_same(rows: list[dict], expected: list[dict]) -> None:
    assert [r["info"]["structure_id"] for r in rows] == [
        r["info"]["structure_id"] for r in expected
    ]
    for row, reference in zip(rows, expected, strict=True):
        assert row.keys() == reference.keys()
        for key, value in reference.items():
            if key == "info":
                assert row[key] == value
            else:
                # two GPAW runs of one frame agree to round-off (FFT plans), not bit for bit
                np.testing.assert_allclose(row[key], value, rtol=0.0, atol=1e-9, err_msg=key)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (the crash frame rejected) and its wall time."""
    root = tmp_path_factory.mktemp("label")
    _structures(root / "in.extxyz")
    start = time.perf_counter()
    assert _run(_labeller(root / "in.extxyz", root / "out.extxyz")) == 0
    return root, time.perf_counter() - start


def test_a_frame_gpaw_fails_on_is_rejected_and_the_queue_goes_on(reference):
    root, _ = reference
    accepted = _frames(root / "out.extxyz")
    assert [r["info"]["structure_id"] for r in accepted] == ["Li-0", "Li-1", "Li-2"]
    assert all(r["info"][STATUS] == STATUS_OK for r in accepted)
    (rejected,) = _frames(rejected_path(root / "out.extxyz"))
    assert rejected["info"]["structure_id"] == "Li-overlapping"
    assert rejected["info"][STATUS].startswith("GPAW failed: LinAlgError")
    assert "energy" not in rejected


def test_an_mpi_job_gpaw_aborts_on_a_frame_resumes_to_the_serial_result(reference, tmp_path):
    """Under ``mpiexec -n 2`` GPAW's failure aborts the job; the ranks' record of it makes the
    resume reject that frame as the serial run did, and the queue ends (no stall)."""
    if not Path(MPIEXEC).exists():
        pytest.skip(f"needs {MPIEXEC} (GPAW's MPI)")
    root, duration = reference
    _structures(tmp_path / "in.extxyz")
    out = tmp_path / "out.extxyz"
    command = [MPIEXEC, "-n", "2", *_cli_labeller(tmp_path / "in.extxyz", out)]
    timeout = 20 * duration + 120  # beside another MPI job on the same cores
    assert _run(command, kill_after=timeout, mpi=True) not in (0, -9)  # aborted, not timed out
    records = [json.loads(line) for line in failures_path(out).read_text().splitlines()]
    assert {r["structure_id"] for r in records} == {"Li-overlapping"}
    assert [r["info"]["structure_id"] for r in _frames(out)] == ["Li-0"]  # before the failure
    assert not rejected_path(out).exists()
    assert _run(command, kill_after=timeout, mpi=True) == 0  # the first resume ends the queue
    assert not failures_path(out).exists()
    accepted, expected = _frames(out), _frames(root / "out.extxyz")
    assert [r["info"]["structure_id"] for r in accepted] == ["Li-0", "Li-1", "Li-2"]
    for row, reference_row in zip(accepted, expected, strict=True):
        assert row["info"] == reference_row["info"]
        assert row["energy"] == pytest.approx(reference_row["energy"], abs=1e-4)
    (rejected,) = _frames(rejected_path(out))
    (serial,) = _frames(rejected_path(root / "out.extxyz"))
    assert rejected.keys() == serial.keys()  # no results
    status = rejected["info"].pop(STATUS)
    assert status.startswith("GPAW failed: LinAlgError:")
    assert status.split(":")[:2] == serial["info"].pop(STATUS).split(":")[:2]
    assert rejected["info"] == serial["info"]
    assert rejected["positions"] == serial["positions"]


def test_an_mpi_job_one_rank_fails_on_aborts_and_resumes(reference, tmp_path):
    """Rank 0 alone fails (its GPAW log cannot be opened: GPAW writes it on rank 0 only) while
    rank 1 waits in GPAW: ``spinmultinet label`` aborts the job instead of hanging, and the
    resume rejects the frame with rank 0's reason."""
    if not Path(MPIEXEC).exists():
        pytest.skip(f"needs {MPIEXEC} (GPAW's MPI)")
    _, duration = reference
    _structures(tmp_path / "in.extxyz", crash=False)
    out = tmp_path / "out.extxyz"
    (tmp_path / "out_logs" / "Li-1.txt").mkdir(parents=True)
    command = [MPIEXEC, "-n", "2", *_cli_labeller(tmp_path / "in.extxyz", out)]
    timeout = 20 * duration + 120
    assert _run(command, kill_after=timeout, mpi=True) not in (0, -9)  # aborted, not hung
    records = [json.loads(line) for line in failures_path(out).read_text().splitlines()]
    assert [(r["structure_id"], r["rank"]) for r in records] == [("Li-1", 0)]
    assert [r["info"]["structure_id"] for r in _frames(out)] == ["Li-0"]
    (tmp_path / "out_logs" / "Li-1.txt").rmdir()
    assert _run(command, kill_after=timeout, mpi=True) == 0
    assert [r["info"]["structure_id"] for r in _frames(out)] == ["Li-0", "Li-2"]
    (rejected,) = _frames(rejected_path(out))
    assert rejected["info"]["structure_id"] == "Li-1"
    assert rejected["info"][STATUS].startswith("GPAW failed: IsADirectoryError")
    assert "energy" not in rejected


def _errors(stderr: Path) -> list[str]:
    """The one-line errors ``spinmultinet label`` printed, one per rank that stopped on one
    (split at each error's start: two ranks' lines may reach the shared stderr interleaved)."""
    prefix = "spinmultinet label: error: "
    text = stderr.read_text()
    return [prefix + error.splitlines()[0] for error in text.split(prefix)[1:]]


def test_rank_0_failing_to_tidy_up_stops_every_rank_in_one_line(reference, tmp_path):
    """Rank 0 alone tidies the outputs up before the first frame; when that fails (a folder
    where a killed append's temporary would be), both ranks of ``mpiexec -n 2 spinmultinet
    label`` stop at once with rank 0's one-line error and exit code 2, the output untouched."""
    if not Path(MPIEXEC).exists():
        pytest.skip(f"needs {MPIEXEC} (GPAW's MPI)")
    root, _ = reference
    _structures(tmp_path / "in.extxyz", crash=False)
    out = tmp_path / "out.extxyz"
    out.write_bytes((root / "out.extxyz").read_bytes())  # nothing left to label
    leftover = tmp_path / ".out-0123abcd.tmp.extxyz"
    leftover.mkdir()
    command = [MPIEXEC, "-n", "2", *_cli_labeller(tmp_path / "in.extxyz", out)]
    with (tmp_path / "stderr").open("w") as stderr:
        assert _run(command, kill_after=120, mpi=True, stderr=stderr) == 2  # not hung
    message = f"spinmultinet label: error: Is a directory: {leftover}"
    assert _errors(tmp_path / "stderr") == [message, message]
    assert out.read_bytes() == (root / "out.extxyz").read_bytes()


def test_rank_0_failing_to_write_a_frame_stops_every_rank_and_loses_none(reference, tmp_path):
    """When rank 0 cannot add a labelled frame to the output (a folder has taken the output's
    place while the frame ran), both ranks stop with rank 0's one-line error and exit code 2
    instead of one waiting for the other; the resume labels the rest, each frame once."""
    if not Path(MPIEXEC).exists():
        pytest.skip(f"needs {MPIEXEC} (GPAW's MPI)")
    root, duration = reference
    _structures(tmp_path / "in.extxyz", crash=False)
    out, aside = tmp_path / "out.extxyz", tmp_path / "aside.extxyz"
    command = [MPIEXEC, "-n", "2", *_cli_labeller(tmp_path / "in.extxyz", out)]
    timeout = 20 * duration + 120  # beside another MPI job on the same cores
    with (tmp_path / "stderr").open("w") as stderr:
        job = _started(command, mpi=True, stderr=stderr)
    started = time.perf_counter()
    while not (tmp_path / "out_logs" / "Li-1.txt").exists():  # Li-0 written, Li-1 running
        if job.poll() is not None or time.perf_counter() - started > timeout:
            _ended(job, 0)
            pytest.fail("the job ended or stalled before its second frame")
        time.sleep(0.01)
    out.rename(aside)
    out.mkdir()
    assert _ended(job, timeout) == 2  # not hung
    message = f"spinmultinet label: error: Is a directory: {out}"
    assert _errors(tmp_path / "stderr") == [message, message]
    out.rmdir()
    aside.rename(out)
    assert [r["info"]["structure_id"] for r in _frames(out)] == ["Li-0"]
    assert _run(command, kill_after=timeout, mpi=True) == 0
    accepted, expected = _frames(out), _frames(root / "out.extxyz")
    assert [r["info"]["structure_id"] for r in accepted] == ["Li-0", "Li-1", "Li-2"]
    for row, reference_row in zip(accepted, expected, strict=True):
        assert row["energy"] == pytest.approx(reference_row["energy"], abs=1e-4)
    assert not rejected_path(out).exists()
    assert not any(is_temporary(path) for path in tmp_path.iterdir())


def test_an_active_learning_round_reruns_an_aborted_labelling_job(reference, tmp_path, monkeypatch):
    """A round's ``mpiexec -n 2`` labelling job that GPAW aborted on a recorded frame is run
    again at once, ending as the serial run did: the frame rejected, the others labelled."""
    if not Path(MPIEXEC).exists():
        pytest.skip(f"needs {MPIEXEC} (GPAW's MPI)")
    root, _ = reference
    _structures(tmp_path / "candidates.extxyz")
    for name in ("OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    _label_under_mpi(tmp_path, dataclasses.asdict(CHEAP), 2, MPIEXEC)
    out = tmp_path / "labelled.extxyz"
    assert not failures_path(out).exists()
    accepted = [r["info"]["structure_id"] for r in _frames(out)]
    assert accepted == [r["info"]["structure_id"] for r in _frames(root / "out.extxyz")]
    (rejected,) = _frames(rejected_path(out))
    assert rejected["info"]["structure_id"] == "Li-overlapping"
    assert rejected["info"][STATUS].startswith("GPAW failed: LinAlgError")
    assert (tmp_path / "label.log").read_text().count("already labelled") == 2  # two jobs


def test_a_round_does_not_rerun_a_job_that_recorded_no_new_failure(tmp_path, monkeypatch):
    """A record the labeller cannot read aborts the job before GPAW and stays as it was: the
    round fails after that one job."""
    if not Path(MPIEXEC).exists():
        pytest.skip(f"needs {MPIEXEC} (GPAW's MPI)")
    _structures(tmp_path / "candidates.extxyz")
    failures = failures_path(tmp_path / "labelled.extxyz")
    failures.write_text("not a record\n")
    for name in ("OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    jobs = tmp_path / "jobs"
    mpiexec = tmp_path / "mpiexec"  # GPAW's, counting its jobs
    mpiexec.write_text(f'#!/bin/sh\necho job >> {jobs}\nexec {MPIEXEC} "$@"\n')
    mpiexec.chmod(0o755)
    with pytest.raises(ValueError, match="the labelling job failed"):
        _label_under_mpi(tmp_path, dataclasses.asdict(CHEAP), 2, str(mpiexec))
    assert "line 1 is not a failure record" in (tmp_path / "label.log").read_text()
    assert jobs.read_text() == "job\n"
    assert failures.read_text() == "not a record\n"


def test_the_queue_script_rejects_a_recorded_failure_of_the_last_frame_until_allows(tmp_path):
    """``label_reference_data.sh --until N`` after a job aborted on its N-th frame: with
    nothing new to label, a job still moves the recorded frame to the rejected output."""
    if not Path(MPIEXEC).exists():
        pytest.skip(f"needs {MPIEXEC} (GPAW's MPI)")
    script = tmp_path / "scripts" / "label_reference_data.sh"
    script.parent.mkdir()
    shutil.copyfile(ROOT / "scripts" / "label_reference_data.sh", script)
    (tmp_path / "data").mkdir()
    _structures(tmp_path / "data" / "structures_Li.extxyz")
    out = tmp_path / "data" / "reference_Li.extxyz"
    failed = read(tmp_path / "data" / "structures_Li.extxyz", index=0)
    failed.info[STATUS] = "GPAW failed: LinAlgError (recorded by the aborted job)"
    record_failure(failures_path(out), failed, 0)
    run = subprocess.run(
        ["bash", str(script), "--until", "1", "Li"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert not failures_path(out).exists() and not out.exists()
    (rejected,) = _frames(rejected_path(out))
    assert rejected["info"]["structure_id"] == "Li-0"
    assert rejected["info"][STATUS] == failed.info[STATUS]


def test_a_failure_that_cannot_be_recorded_still_aborts_and_says_so(tmp_path):
    """The record's own error (here: its path is a folder) is neither raised as a user error
    the CLI would exit on (a hang under MPI) nor lost."""
    failed = bulk("Li")
    failed.info.update(structure_id="Li-0", dft_status="GPAW failed: OSError: disk full")
    (tmp_path / "out.extxyz.failures").mkdir()
    with pytest.raises(RuntimeError, match="Li-0 on rank 1: GPAW failed: .*not recorded in"):
        _abort_rank(failed, tmp_path / "out.extxyz.failures", 1, OSError("disk full"))


def test_killed_labelling_resumes_to_the_uninterrupted_result(reference):
    root, duration = reference
    out = root / "killed.extxyz"
    command = _labeller(root / "in.extxyz", out)
    rng = random.Random(2026)
    for _ in range(KILLS):
        assert _run(command, kill_after=rng.uniform(0.0, duration)) in (0, -9)
        for path in (out, rejected_path(out)):  # appends are atomic: never a torn frame
            assert read_output(path)[1] == (path.stat().st_size if path.exists() else 0)
    assert _run(command) == 0
    _assert_same(_frames(out), _frames(root / "out.extxyz"))
    _assert_same(_frames(rejected_path(out)), _frames(rejected_path(root / "out.extxyz")))
    assert not any(is_temporary(path) for path in root.iterdir())


def test_a_torn_last_frame_is_dropped_and_labelled_again(reference, tmp_path):
    root, _ = reference
    _structures(tmp_path / "in.extxyz", crash=False)
    out = tmp_path / "out.extxyz"
    whole = (root / "out.extxyz").read_bytes()
    out.write_bytes(whole[: len(whole) - 40])  # the last frame cut short, as by a kill
    leftover = tmp_path / ".out-0123abcd.tmp.extxyz"  # a killed append's temporary
    leftover.write_text("partial")
    with pytest.warns(UserWarning, match="torn last frame"):
        label_file(tmp_path / "in.extxyz", out, protocol=CHEAP)
    _assert_same(_frames(out), _frames(root / "out.extxyz"))
    assert not leftover.exists()


def test_the_start_warnings_name_the_line_that_called_the_labeller(tmp_path):
    """Rank 0's start (run through :func:`on_rank0`) warns of a torn last frame and of an
    interrupted move to the rejected file; each warning points at this file's call."""
    _structures(tmp_path / "in.extxyz", crash=False)
    frames = read(tmp_path / "in.extxyz", ":")
    out = tmp_path / "out.extxyz"
    write(out, frames[:2], format="extxyz")
    out.write_bytes(out.read_bytes()[:-40])  # the last frame (Li-1) cut short, as by a kill
    write(rejected_path(out), frames[:1], format="extxyz")  # Li-0 in both: a move cut short
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        label_file(tmp_path / "in.extxyz", out, protocol=CHEAP, limit=0)  # no GPAW run
    messages = [str(warning.message) for warning in caught]
    assert len(caught) == 2, messages
    assert "torn last frame" in messages[0] and "took out Li-0" in messages[1]
    assert [warning.filename for warning in caught] == [__file__] * 2


def test_a_second_labeller_of_a_locked_output_stops_before_reading_it(tmp_path):
    _structures(tmp_path / "in.extxyz", crash=False)
    out = tmp_path / "out.extxyz"
    with open(tmp_path / "out.extxyz.lock", "w") as holder:  # another labeller's lock
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ValueError, match="another process is writing") as error:
            label_file(tmp_path / "in.extxyz", out, protocol=CHEAP)
    assert str(out) in str(error.value) and "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.extxyz", "out.extxyz.lock"]


def test_an_output_whose_lock_cannot_be_taken_stops_in_one_line(tmp_path):
    """A lock path that is a folder (any error taking the lock) stops the run before any work,
    in one line naming the output, rather than leaving other ranks waiting."""
    _structures(tmp_path / "in.extxyz", crash=False)
    out = tmp_path / "out.extxyz"
    (tmp_path / "out.extxyz.lock").mkdir()
    with pytest.raises(ValueError, match=f"cannot lock {out} for writing") as error:
        label_file(tmp_path / "in.extxyz", out, protocol=CHEAP)
    assert "\n" not in str(error.value)
    assert not out.exists()


def test_a_labeller_running_on_holds_off_a_second_one_to_the_end(reference, tmp_path):
    """As when a killed parent's mpiexec child runs on and a resume starts another labeller:
    the second stops at once, the first ends as the uninterrupted run did."""
    root, duration = reference
    _structures(tmp_path / "in.extxyz")
    out = tmp_path / "out.extxyz"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env.pop("GPAW_MPI_BACKEND", None)
    first = subprocess.Popen(_labeller(tmp_path / "in.extxyz", out), env=env)
    try:
        started = time.perf_counter()
        while not (tmp_path / "out_logs").is_dir():  # made once the lock is held
            assert first.poll() is None and time.perf_counter() - started < 60
            time.sleep(0.02)
        with pytest.raises(ValueError, match=f"another process is writing {out}"):
            label_file(tmp_path / "in.extxyz", out, protocol=CHEAP)
        assert first.wait(timeout=10 * duration + 60) == 0
    finally:
        first.kill()
        first.wait()
    _assert_same(_frames(out), _frames(root / "out.extxyz"))
    _assert_same(_frames(rejected_path(out)), _frames(rejected_path(root / "out.extxyz")))
    assert not (tmp_path / "out.extxyz.lock").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ecut_ev": 200.0}, "dft_ecut_ev=150.0, this run 200.0"),
        ({"kpoint_density": 1.0}, "dft_kpoint_density"),
    ],
)
def test_resuming_with_another_protocol_is_refused(reference, tmp_path, capsys, change, message):
    root, _ = reference
    _structures(tmp_path / "in.extxyz")
    out = tmp_path / "out.extxyz"
    out.write_bytes((root / "out.extxyz").read_bytes())
    with pytest.raises(ValueError, match="another DFT protocol") as error:
        label_file(tmp_path / "in.extxyz", out, protocol=dataclasses.replace(CHEAP, **change))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert out.read_bytes() == (root / "out.extxyz").read_bytes()


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list, str]]:
    """Inputs refused before any GPAW run: arguments of label_file and the message."""
    good = tmp_path / "in.extxyz"
    _structures(good, crash=False)
    repeated = tmp_path / "repeated.extxyz"
    frames = read(good, index=":")
    frames[2].info["structure_id"] = frames[0].info["structure_id"]
    write(repeated, frames)
    garbled = tmp_path / "garbled.extxyz"
    garbled.write_text("3\nnot an extxyz file\n")
    (tmp_path / "a_file").write_text("")
    (tmp_path / "f.extxyz.failures").write_text("not a record\n")
    return {
        "missing input": ([tmp_path / "missing.extxyz", tmp_path / "o.extxyz"], "no structure"),
        "unreadable input": ([garbled, tmp_path / "o.extxyz"], "cannot read structures"),
        "repeated ids": ([repeated, tmp_path / "o.extxyz"], "Li-0 is not unique"),
        "output in a file": ([good, tmp_path / "a_file" / "o.extxyz"], "a_file is a file"),
        "output a folder": ([good, tmp_path], "is a folder"),
        "garbled failure record": (
            [good, tmp_path / "f.extxyz"],
            "f.extxyz.failures: line 1 is not a failure record",
        ),
        "no calibration": (
            [good, tmp_path / "o.extxyz", None, dataclasses.replace(CHEAP, pulay_stress={})],
            "no Pulay-stress calibration for Li",
        ),
        "negative limit": ([good, tmp_path / "o.extxyz", None, CHEAP, -1], "0 or more"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing input",
        "unreadable input",
        "repeated ids",
        "output in a file",
        "output a folder",
        "garbled failure record",
        "no calibration",
        "negative limit",
    ],
)
def test_bad_input_is_refused_before_any_gpaw_run(case, tmp_path):
    arguments, message = _bad_inputs(tmp_path)[case]
    if len(arguments) == 2:
        arguments += [None, CHEAP]
    before = set(tmp_path.rglob("*"))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        label_file(*arguments)
    assert set(tmp_path.rglob("*")) == before  # no log folder, no output: nothing ran


def test_label_command_refuses_a_negative_limit(tmp_path, capsys):
    _structures(tmp_path / "in.extxyz", crash=False)
    argv = ["label", str(tmp_path / "in.extxyz"), str(tmp_path / "out.extxyz"), "--limit=-1"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spinmultinet label: error:") and "--limit" in err
    assert "\n" not in err


@pytest.mark.parametrize("steps", ["20", "0", "301", "-5"])
def test_label_command_refuses_a_budget_outside_the_biased_start_and_the_protocol(
    steps, tmp_path, capsys
):
    _structures(tmp_path / "in.extxyz", crash=False)
    argv = ["label", str(tmp_path / "in.extxyz"), str(tmp_path / "out.extxyz")]
    assert main([*argv, f"--max-scf-steps={steps}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spinmultinet label: error:") and "--max-scf-steps" in err
    assert "from 21 (above the 20 steps of a biased start)" in err
    assert f"to the protocol's 300, got {steps}" in err
    assert "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.extxyz"]  # nothing ran


def test_an_output_cut_at_any_byte_reads_as_its_whole_frames(tmp_path):
    """Whatever byte a file is cut at, the frames before the cut are read and nothing else."""
    frames = []
    for index in range(2):
        atoms = bulk("NiO", "rocksalt", a=4.17)
        atoms.set_initial_magnetic_moments([2.0, 0.0])
        atoms.info.update({"structure_id": f"NiO-{index}", STATUS: STATUS_OK})
        atoms.calc = SinglePointCalculator(
            atoms, energy=-10.0 - index, forces=np.full((2, 3), 0.1), magmoms=[1.7, 0.0]
        )
        frames.append(atoms)
    path = tmp_path / "out.extxyz"
    write(path, frames[0], format="extxyz")
    first = path.read_bytes()
    write(path, frames, format="extxyz")
    whole = path.read_bytes()
    for cut in range(len(whole) + 1):
        path.write_bytes(whole[:cut])
        read_frames, size = read_output(path)
        expected = 2 if cut == len(whole) else 1 if cut >= len(first) else 0
        assert len(read_frames) == expected, cut
        assert size == (len(whole) if expected == 2 else len(first) if expected else 0)
    lines = whole.split(b"\n")
    lines[2] = b"Ni garbage"  # the first atom of the first frame: damage before the last frame
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(ValueError, match="frame 1 cannot be read"):
        read_output(path)


def test_the_shipped_data_resumes_under_the_default_protocol():
    """Its frames were labelled before U for Cr joined the protocol: U counts per element."""
    frames, _ = read_output(Path(__file__).parents[1] / "data" / "reference.extxyz")
    assert protocol_mismatch(frames, DEFAULT_PROTOCOL) == ""
    other_u = DFTProtocol(hubbard_u_ev={**DEFAULT_PROTOCOL.hubbard_u_ev, "Ni": 6.0})
    assert "dft_hubbard_u=Ni:6.2, this run Ni:6.0" in protocol_mismatch(frames, other_u)
