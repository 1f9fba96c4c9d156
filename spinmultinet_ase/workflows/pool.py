"""Candidate structures for active learning from MD trajectories (``spinmultinet pool``).

A frame of an ASE trajectory written by :func:`spinmultinet_ase.workflows.md.run_md` holds
the structure, the fixed spin input (``initial_magmoms``) and the model's results. A pool
structure keeps the structure and the spin input only: the model's energies and forces are
not labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ase import Atoms
from ase.io.trajectory import Trajectory

from spinmultinet_ase.dft.label import STRUCTURE_ID
from spinmultinet_ase.workflows.inputs import check_count


def trajectory_names(paths: Sequence[str | Path]) -> list[str]:
    """A name per trajectory for its structures' ids: the file stems if they differ, else the
    parent folders' names (``spinmultinet md`` writes ``FOLDER/md.traj``).

    Raises:
        ValueError: neither the stems nor the folders' names tell the trajectories apart.
    """
    paths = [Path(p).absolute() for p in paths]
    for names in ([p.stem for p in paths], [p.parent.name for p in paths]):
        if len(set(names)) == len(names):
            return names
    raise ValueError(
        "the trajectories share file names and folder names, so their structure ids would "
        "repeat; give each run its own folder or file name"
    )


def pool_from_trajectories(paths: Sequence[str | Path], every: int, start: int = 0) -> list[Atoms]:
    """Every ``every``-th frame of each trajectory from its frame ``start`` (the frames before
    it skipped: the built starting structure and the equilibration), as a pool structure.

    Each keeps positions, cell, periodicity and ``initial_magmoms`` (collinear ``(N,)`` or
    non-collinear ``(N, 3)``, μB), and gets ``structure_id`` ``NAME-INDEX``:
    :func:`trajectory_names`, and the frame's index in its trajectory.

    Raises:
        FileNotFoundError: a trajectory does not exist.
        ValueError: a file is not an ASE trajectory, or a frame has no ``initial_magmoms``.
    """
    check_count(every, "--every")
    check_count(start, "--start", minimum=0)
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no trajectory at {path}")
    names = trajectory_names(paths)
    pool = []
    for path, name in zip(paths, names, strict=True):
        try:
            with Trajectory(path) as frames:
                kept = [(index, frames[index]) for index in range(start, len(frames), every)]
        except Exception as error:  # ASE raises many types for unreadable files
            raise ValueError(
                f"cannot read {path} as an ASE trajectory ({type(error).__name__}: {error})"
            ) from None
        for index, frame in kept:
            if not frame.has("initial_magmoms"):
                raise ValueError(
                    f"{path} frame {index} has no initial_magmoms; a pool structure needs "
                    "its spin input (spinmultinet md keeps it in every frame)"
                )
            atoms = Atoms(
                numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc
            )
            atoms.set_initial_magnetic_moments(frame.get_initial_magnetic_moments())
            atoms.info[STRUCTURE_ID] = f"{name}-{index}"
            pool.append(atoms)
    if not pool:
        raise ValueError(f"the trajectories hold no frames from frame {start} on")
    return pool
