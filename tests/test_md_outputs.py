"""`spinmultinet md` output files: `--overwrite` replaces the log and trajectory whole, a
second run without it changes nothing, a run stopped half-way (Ctrl-C, SIGKILL) leaves the
previous outputs byte-identical and its own frames so far under the partial names, and a run
killed while its outputs take the previous ones' places never leaves files of both runs."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from spinmultinet_ase.cli import main
from spinmultinet_ase.testing.models import exported_committee

OUTPUTS = ("md.traj", "md.log", "md.json", "md.png")
HEADER = "Time[ps]"  # the first column of ASE's MD log header


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> list[Path]:
    """Two small random models from different seeds, exported."""
    return exported_committee(tmp_path_factory.mktemp("members"), (41, 42))


def _md(folder: Path, models: list[Path], *options: str) -> list[str]:
    """``spinmultinet md NiO`` (its 4-atom AFM-II cell) into ``folder``, quietly."""
    models = [str(model) for model in models]
    return ["md", "NiO", "--output-dir", str(folder), "--model", *models, "--quiet", *options]


def _contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.parametrize("committee", [False, True], ids=["one model", "committee"])
def test_overwrite_replaces_the_log_and_trajectory_whole(
    exported_path, members, tmp_path, committee
):
    models = members if committee else [exported_path]
    first = ["--steps", "6", "--interval", "2", "--seed", "1"]
    second = ["--steps", "4", "--interval", "2", "--seed", "2", "--temperature", "500"]
    assert main(_md(tmp_path / "run", models, *first)) == 0
    assert main(_md(tmp_path / "run", models, *second, "--overwrite")) == 0
    assert main(_md(tmp_path / "fresh", models, *second)) == 0  # the oracle: a clean folder

    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == sorted(OUTPUTS)
    log = (tmp_path / "run" / "md.log").read_text(encoding="utf-8")
    assert log.count(HEADER) == 1 and len(log.splitlines()) == 1 + 3
    assert log == (tmp_path / "fresh" / "md.log").read_text(encoding="utf-8")
    assert ("σE[eV]" in log) == committee
    frames = read(tmp_path / "run" / "md.traj", ":")
    expected = read(tmp_path / "fresh" / "md.traj", ":")
    assert len(frames) == len(expected) == 3
    for atoms, reference in zip(frames, expected, strict=True):
        np.testing.assert_array_equal(atoms.positions, reference.positions)
        assert atoms.get_potential_energy() == reference.get_potential_energy()


def test_a_second_run_without_overwrite_changes_nothing(exported_path, tmp_path, capsys):
    options = ["--steps", "4", "--interval", "2"]
    assert main(_md(tmp_path, [exported_path], *options)) == 0
    before = _contents(tmp_path)
    capsys.readouterr()
    assert main(_md(tmp_path, [exported_path], *options, "--seed", "3")) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "md.traj exists already" in error and "--overwrite" in error
    assert _contents(tmp_path) == before


def test_a_stopped_runs_partial_files_are_not_replaced_unasked(exported_path, tmp_path, capsys):
    partial = tmp_path / "md.partial.log"
    partial.write_text("the log of a run stopped half-way\n", encoding="utf-8")
    assert main(_md(tmp_path, [exported_path], "--steps", "4", "--interval", "2")) == 2
    assert "md.partial.log exists already" in capsys.readouterr().err
    assert _contents(tmp_path) == {partial.name: b"the log of a run stopped half-way\n"}


def _run_md(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal
    raise SystemExit(main(argv))


def _stopped_after_lines(argv: list[str], log: Path, lines: int, stop: signal.Signals) -> int:
    """Run the CLI in a forked process (imports already done) and send it ``stop`` once ``log``
    has ``lines`` lines. Returns its exit code (negative: ended by that signal)."""
    process = multiprocessing.get_context("fork").Process(target=_run_md, args=(argv,))
    process.start()
    deadline = time.monotonic() + 300
    while not (log.is_file() and len(log.read_text(encoding="utf-8").splitlines()) >= lines):
        assert process.is_alive() and time.monotonic() < deadline, "the run ended too early"
        time.sleep(0.05)
    os.kill(process.pid, stop)
    process.join()
    return process.exitcode


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["Ctrl-C", "SIGKILL"])
def test_a_stopped_run_keeps_the_previous_outputs_and_its_own_frames(
    exported_path, tmp_path, capsys, stop
):
    assert main(_md(tmp_path, [exported_path], "--steps", "4", "--interval", "2")) == 0
    before = _contents(tmp_path)
    long_run = _md(tmp_path, [exported_path], "--steps", "1000000", "--interval", "1")
    partial_log = tmp_path / "md.partial.log"
    code = _stopped_after_lines([*long_run, "--overwrite"], partial_log, 1 + 4, stop)
    assert code == (130 if stop == signal.SIGINT else -signal.SIGKILL)

    after = _contents(tmp_path)
    assert sorted(after) == sorted([*OUTPUTS, "md.partial.log", "md.partial.traj"])
    assert {name: after[name] for name in OUTPUTS} == before
    log = partial_log.read_text(encoding="utf-8").splitlines()
    assert log[0].split()[0] == HEADER and HEADER not in "".join(log[1:])
    rows = np.array([[float(x) for x in line.split()] for line in log[1:]])
    assert rows.shape[0] >= 4 and rows.shape[1] == 5
    frames = read(tmp_path / "md.partial.traj", ":")
    # each frame whole; the log may be a line ahead of the trajectory when the kill came
    assert len(log) - 2 <= len(frames) <= len(log) - 1
    for atoms, row in zip(frames, rows, strict=False):
        assert atoms.get_potential_energy() == pytest.approx(row[2], abs=1e-4)  # Epot

    short_run = _md(tmp_path, [exported_path], "--steps", "4", "--interval", "2")
    capsys.readouterr()
    assert main(short_run) == 2
    assert "exists already" in capsys.readouterr().err
    assert main([*short_run, "--overwrite"]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(OUTPUTS)


def _killed_at_change(argv: list[str], change: int) -> None:
    """Run the CLI and SIGKILL this process just before the ``change``-th (from 1) removal of
    a file named as one of :data:`OUTPUTS` or rename onto one (an audit hook: the real file
    system, a real kill)."""
    changes = 0

    def hook(event: str, args: tuple) -> None:
        nonlocal changes
        if event not in ("os.remove", "os.rename"):
            return
        target = args[1] if event == "os.rename" else args[0]
        if Path(os.fsdecode(target)).name in OUTPUTS:
            changes += 1
            if changes == change:
                os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)
    raise SystemExit(main(argv))


@pytest.mark.parametrize("change", range(1, 2 * len(OUTPUTS) + 1))
def test_a_run_killed_while_replacing_the_previous_outputs_never_mixes_the_two(
    exported_path, tmp_path, change
):
    """Each of the previous set's files removed, then each of the new set's put in place: a
    kill before any of these changes leaves the previous run's files only, or the new run's
    only (whole), never some of each."""
    assert main(_md(tmp_path, [exported_path], "--steps", "4", "--interval", "2")) == 0
    before = _contents(tmp_path)
    argv = _md(tmp_path, [exported_path], "--steps", "6", "--interval", "2", "--seed", "2")
    process = multiprocessing.get_context("fork").Process(
        target=_killed_at_change, args=([*argv, "--overwrite"], change)
    )
    process.start()
    process.join()
    assert process.exitcode == -signal.SIGKILL  # killed at that change, not after the run

    after = _contents(tmp_path)
    previous = [name for name in OUTPUTS if after.get(name, b"") == before[name]]
    new = [name for name in OUTPUTS if after.get(name, before[name]) != before[name]]
    assert not (previous and new), f"previous {previous} beside new {new}"
    assert len(previous) == max(0, len(OUTPUTS) + 1 - change)
    assert len(new) == max(0, change - 1 - len(OUTPUTS))
    if "md.log" in new:
        assert len(after["md.log"].decode().splitlines()) == 1 + 4  # the new run's, whole


def _interrupted_at_summary(argv: list[str]) -> None:
    """Run the CLI and send this process SIGINT (Ctrl-C) as the finished run's ``md.json``
    takes its place: after the log and trajectory have taken theirs."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal

    def hook(event: str, args: tuple) -> None:
        if event == "os.rename" and Path(os.fsdecode(args[1])).name == "md.json":
            os.kill(os.getpid(), signal.SIGINT)

    sys.addaudithook(hook)
    raise SystemExit(main(argv))


def test_ctrl_c_while_the_summary_is_written_names_no_file_that_is_not_there(
    exported_path, tmp_path, capfd
):
    """Stopped after the run's end, the log and trajectory are in place under their own names;
    the message on stopping names only files that exist."""
    argv = _md(tmp_path, [exported_path], "--steps", "4", "--interval", "2")
    process = multiprocessing.get_context("fork").Process(
        target=_interrupted_at_summary, args=(argv,)
    )
    process.start()
    process.join()
    assert process.exitcode == 130

    assert sorted(path.name for path in tmp_path.iterdir()) == ["md.log", "md.traj"]
    error = capfd.readouterr().err
    assert error.rstrip().endswith("spinmultinet md: interrupted"), error
    named = [word.strip(",;") for word in error.split() if str(tmp_path) in word]
    assert all(Path(name).exists() for name in named), error


@pytest.mark.parametrize(
    "names",
    [["--log", "md.traj"], ["--trajectory", "md.json"], ["--trajectory", "md.partial.log"]],
    ids=["log is trajectory", "trajectory is summary", "trajectory is partial log"],
)
def test_two_outputs_of_one_name_are_one_line_and_exit_code_2(
    exported_path, tmp_path, capsys, names
):
    """A log and trajectory of one name would be renamed over each other at the end."""
    argv = _md(tmp_path / "out", [exported_path], "--steps", "2", "--interval", "1", *names)
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "two outputs would be written to" in error
    assert not (tmp_path / "out").exists()
