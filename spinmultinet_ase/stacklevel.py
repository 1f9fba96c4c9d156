"""Where a warning points: the user's line, the first frame outside this package and ASE."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import ase

import spinmultinet_ase

# Code whose frames a warning skips to reach the user's line.
LIBRARY_FOLDERS = tuple(
    str(Path(package.__file__).parent) + os.sep for package in (spinmultinet_ase, ase)
)


def user_stacklevel() -> int:
    """The ``stacklevel`` for a warning issued by the caller of this function that names the
    first frame outside this package and ASE: the user's line."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(LIBRARY_FOLDERS):
        frame, level = frame.f_back, level + 1
    return level
