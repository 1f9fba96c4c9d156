"""scripts/session_queue.sh: its ``step`` logs each step's start and outcome."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _step_function() -> str:
    """The queue's own ``step`` function, cut out of the script (the queue itself runs GPAW)."""
    text = (ROOT / "scripts" / "session_queue.sh").read_text(encoding="utf-8")
    match = re.search(r"^step\(\) \{\n.*?^\}\n", text, flags=re.M | re.S)
    assert match, "no step() function in scripts/session_queue.sh"
    return match.group(0)


def test_a_failed_step_is_logged_with_its_exit_code(tmp_path):
    (tmp_path / "data").mkdir()
    script = _step_function() + "step bash -c 'exit 3'\nstep true\n"
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "data" / "queue.log").read_text().splitlines()
    outcomes = [line.split(" ", 1)[1] for line in log]
    assert outcomes == [
        "start: bash -c exit 3",
        "failed (3): bash -c exit 3",
        "start: true",
        "done: true",
    ]
