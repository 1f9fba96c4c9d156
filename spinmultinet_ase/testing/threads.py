"""Calling a calculator from several threads at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from ase import Atoms

T = TypeVar("T")


def in_threads(
    compute: Callable[[Atoms], T], structures: Sequence[Atoms], repeats: int
) -> list[list[T]]:
    """``compute`` of each structure ``repeats`` times in a row, one thread per structure, all
    threads running together; the results by structure, in call order."""
    found: list[list[T]] = [[] for _ in structures]

    def work(k: int) -> None:
        for _ in range(repeats):
            found[k].append(compute(structures[k]))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(structures))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return found
