"""SCF convergence criteria that every MPI rank of a GPAW run decides alike.

GPAW asks each rank whether its criteria are met and aborts all ranks when they disagree
(``assert nconverged in [0, comm.size]`` in ``gpaw/new/scf.py``). Its energy criterion
compares each rank's own total energy, whose last bits can differ between ranks, so near the
tolerance one rank may say converged and the other not, and a finished SCF is lost. Here each
built-in criterion is evaluated as GPAW would, and rank 0's verdict is given to every rank.
"""

from __future__ import annotations

import warnings

import numpy as np
from gpaw.convergence_criteria import Criterion, Density, Eigenstates, Energy

# GPAW warns once per custom criterion that it may not reload from a .gpw file (we write none).
warnings.filterwarnings("ignore", message="Custom convergence criterion", category=UserWarning)

# GPAW's default eigenstate tolerance (eV² per valence electron), kept when the protocol
# sets only energy and density.
EIGENSTATES_TOLERANCE = 4.0e-8


class RankAgreed(Criterion):
    """``inner`` evaluated on every rank, with rank 0's verdict (and log entry) on all."""

    def __init__(self, inner: Criterion) -> None:
        self.inner = inner
        self.name = inner.name
        self.tablename = inner.tablename
        self.description = inner.description
        self.calc_last = inner.calc_last
        self.override_others = inner.override_others

    def reset(self) -> None:
        self.inner.reset()

    def __call__(self, context) -> tuple[bool, str]:
        converged, entry = self.inner(context)
        verdict = np.array([1.0 if converged else 0.0])
        context.wfs.world.broadcast(verdict, 0)
        return bool(verdict[0]), entry


def rank_agreed_convergence(energy_ev: float, density: float) -> dict:
    """GPAW's ``convergence`` keyword: energy, density and eigenstate criteria, rank-agreed."""
    criteria = (Energy(energy_ev), Density(density), Eigenstates(EIGENSTATES_TOLERANCE))
    return {"custom": [RankAgreed(criterion) for criterion in criteria]}
