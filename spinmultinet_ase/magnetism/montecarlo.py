"""Classical Monte Carlo of the J1-J2 Heisenberg model on the fcc lattice: T_N of AFM-II.

Spins are classical unit vectors; ``E = Σ_<ij> J_ij S² s_i·s_j`` with J1 (12 nearest) and J2
(6 next-nearest neighbours), the convention of :mod:`spinmultinet_ase.magnetism.exchange`.
Metropolis updates run in parallel on 8 colour classes (4 simple-cubic sublattices × the
parity of the cubic cell), none of which contains a pair of interacting sites. The order
parameter is the staggered moment ``|Σ_i η_i s_i| / N_b`` of each of the 4 simple-cubic
sublattices (η: the AFM-II sign pattern), averaged: J2 orders each sublattice, while J1
cancels in AFM-II, so their relative orientation stays free. T_N is estimated at the peak of
its susceptibility.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.units import kB

_BASIS = np.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0]])  # fcc sites, units of a/2


@dataclass
class MonteCarloResult:
    """Thermal averages per temperature (K); energies in eV per spin."""

    temperatures: np.ndarray
    energy: np.ndarray
    order_parameter: np.ndarray
    susceptibility: np.ndarray

    @property
    def neel_temperature(self) -> float:
        """Temperature of the largest order-parameter susceptibility (K)."""
        return float(self.temperatures[np.argmax(self.susceptibility)])


def fcc_lattice(cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sites of cells³ conventional cells: (coordinates in a/2, NN table, NNN table, colour)."""
    if cells < 2 or cells % 2:
        raise ValueError("cells must be even and >= 2 (the AFM-II cell and colouring need it)")
    grid = np.stack(np.meshgrid(*[np.arange(cells)] * 3, indexing="ij"), -1).reshape(-1, 3)
    sites = (2 * grid[:, None, :] + _BASIS[None]).reshape(-1, 3)
    size = 2 * cells
    index = {tuple(s): i for i, s in enumerate(sites)}

    def table(offsets: np.ndarray) -> np.ndarray:
        return np.array([[index[tuple((s + o) % size)] for o in offsets] for s in sites])

    nn = np.array([o for o in np.ndindex(3, 3, 3) if sum(abs(x - 1) for x in o) == 2]) - 1
    nn = nn[np.abs(nn).sum(axis=1) == 2]
    nnn = np.vstack([2 * np.eye(3, dtype=int), -2 * np.eye(3, dtype=int)])
    sublattice = np.tile(np.arange(4), len(grid))
    parity = np.repeat(grid.sum(axis=1) % 2, 4)
    return sites, table(nn), table(nnn), 2 * sublattice + parity


def _random_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def heisenberg_monte_carlo(
    j1s2: float,
    j2s2: float,
    temperatures: np.ndarray,
    cells: int = 4,
    sweeps: int = 2000,
    equilibration: int = 1000,
    seed: int = 0,
) -> MonteCarloResult:
    """Metropolis Monte Carlo at each temperature, cooling from the highest.

    Args:
        j1s2, j2s2: exchange constants times S² (eV), J > 0 antiferromagnetic.
        temperatures: temperatures (K).
        cells: conventional cells per side (even); 4 cells³ sites.
        sweeps: measured sweeps per temperature; equilibration: discarded sweeps before.
    """
    rng = np.random.default_rng(seed)
    sites, nn, nnn, colour = fcc_lattice(cells)
    eta = (-1.0) ** ((sites.sum(axis=1) // 2) % 2)
    spins = _random_unit(rng, len(sites))
    classes = [np.flatnonzero(colour == c) for c in range(8)]
    sublattices = [np.flatnonzero(colour // 2 == b) for b in range(4)]
    order = np.sort(np.asarray(temperatures, dtype=float))[::-1]
    energies, orders, chis = [], [], []
    for temperature in order:
        beta = 1.0 / (kB * temperature)
        samples_e, samples_m = [], []
        for sweep in range(equilibration + sweeps):
            for members in classes:
                field = j1s2 * spins[nn[members]].sum(axis=1) + j2s2 * spins[nnn[members]].sum(
                    axis=1
                )
                proposal = _random_unit(rng, len(members))
                delta = np.einsum("ij,ij->i", proposal - spins[members], field)
                accept = rng.random(len(members)) < np.exp(-beta * np.clip(delta, 0, None))
                spins[members[accept]] = proposal[accept]
            if sweep >= equilibration:
                bonds = j1s2 * np.einsum("ij,ikj->", spins, spins[nn]) + j2s2 * np.einsum(
                    "ij,ikj->", spins, spins[nnn]
                )
                samples_e.append(0.5 * bonds / len(spins))
                staggered = np.stack([eta[b] @ spins[b] for b in sublattices])
                samples_m.append(np.linalg.norm(staggered, axis=1).mean() / len(sublattices[0]))
        m = np.array(samples_m)
        energies.append(np.mean(samples_e))
        orders.append(m.mean())
        chis.append(len(spins) * m.var() * beta)
    reverse = slice(None, None, -1)
    return MonteCarloResult(
        temperatures=order[reverse],
        energy=np.array(energies)[reverse],
        order_parameter=np.array(orders)[reverse],
        susceptibility=np.array(chis)[reverse],
    )
