"""Work that rank 0 of a GPAW MPI job does alone (writing the outputs), its errors shared.

A rank whose error is caught and reported (the CLI prints one line and exits 2) ends
cleanly, while the other ranks wait for it in their next collective call for ever.
:func:`on_rank0` makes every rank raise rank 0's error instead.
"""

from __future__ import annotations

from collections.abc import Callable


def on_rank0(world, action: Callable[..., object], *args, **kwargs) -> None:
    """Call ``action(*args, **kwargs)`` on rank 0 of ``world`` (a GPAW communicator) while the
    other ranks wait for it to end; if it raises, every rank raises its error (rank 0 the
    error itself, the others a copy), so no rank is left waiting for one that stopped.

    An error that cannot be copied ends in another error where the copy fails (pickling on
    rank 0, unpickling on the others), not one of the CLI's user errors, so GPAW's exception
    hook aborts every rank.
    """
    from gpaw.mpi import broadcast

    error: Exception | None = None
    if world.rank == 0:
        try:
            action(*args, **kwargs)
        except Exception as raised:  # raised below, on every rank
            error = raised
    (error,) = broadcast((error,) if world.rank == 0 else None, 0, comm=world)
    if error is not None:
        raise error
