"""Classical Monte Carlo of a Heisenberg lattice: the ordering (Néel) temperature.

Spins are classical unit vectors on the sites of a ``L³`` supercell (L even) of
:class:`~spinmultinet_ase.magnetism.heisenberg.HeisenbergLattice`. Each sweep is one
Metropolis pass (a new direction near the old one, in a cone that widens with T) and one
over-relaxation pass (each spin reflected about its local field, which keeps the energy and
decorrelates faster), both run in parallel on the classes of a greedy colouring of the
interaction graph, none of which holds a pair of coupled sites. The order parameter is the
weight of the spins on the ordering mode: the wave vectors ``q ∈ {0, ½}³`` (of the reference
cell) where the exchange ``−J(q)`` is largest, projected on its top eigenvectors across the
sublattices,
``M² = Σ_{q,u} |Σ_b u_b* m_b(q)|² / n_b`` with ``m_b(q) = (1/L³) Σ_R e_{R,b} exp(2πi q·(R+x_b))``
(1 in the ideal ordered state, ``O(1/N)`` in the paramagnet). T_N is where the Binder
cumulants ``U = 1 − ⟨M⁴⟩/(3⟨M²⟩²)`` of two sizes cross.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from ase.units import kB

if TYPE_CHECKING:  # heisenberg imports torch; the CLI's parser reads MONTE_CARLO_SWEEPS
    from spinmultinet_ase.magnetism.heisenberg import HeisenbergLattice

# Measured sweeps per temperature and lattice size of a T_N estimate (default).
MONTE_CARLO_SWEEPS = 600


@dataclass
class MonteCarloResult:
    """Thermal averages per temperature (K) on one lattice size; energies in eV per spin."""

    size: int
    temperatures: np.ndarray
    energy: np.ndarray
    order_parameter: np.ndarray
    susceptibility: np.ndarray
    binder: np.ndarray


@dataclass
class NeelEstimate:
    """T_N (K), how it was found, and the runs it was found from."""

    temperature: float
    method: str  # 'Binder crossing L1/L2' or 'susceptibility peak L'
    runs: list[MonteCarloResult]


def colouring(index: np.ndarray, coupling: np.ndarray) -> np.ndarray:
    """Greedy colour of every site such that no two coupled sites share a colour."""
    colours = np.full(len(index), -1)
    for site in range(len(index)):
        taken = set(colours[index[site][coupling[site] != 0]].tolist())
        colour = 0
        while colour in taken:
            colour += 1
        colours[site] = colour
    return colours


def _random_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def ordering_modes(lattice: HeisenbergLattice, tolerance: float = 1e-6) -> list[tuple]:
    """The ordering modes ``(q, u)``: top eigenvectors of ``−J(q)`` over ``q ∈ {0, ½}³``.

    Raises:
        ValueError: the mean-field ordering wave vector is not in ``{0, ½}³`` (the model orders
            incommensurately, which this Monte Carlo does not follow).
    """
    candidates = []
    for q in np.array(list(np.ndindex(2, 2, 2))) / 2:
        values, vectors = np.linalg.eigh(-lattice.exchange_matrix(q))
        candidates.append((q, values, vectors))
    top = max(values[-1] for _, values, _ in candidates)
    scale = max(np.abs(lattice.coupling).sum(), 1e-300)
    if top < lattice.mean_field_temperature() * 3 * kB - 1e-3 * scale:
        raise ValueError(
            "the fitted exchange orders at a wave vector outside {0, 1/2}^3 of the reference "
            "cell (incommensurate or long period): the Monte Carlo order parameter cannot follow it"
        )
    return [
        (q, vectors[:, k])
        for q, values, vectors in candidates
        for k in np.flatnonzero(values > top - tolerance * scale)
    ]


def heisenberg_monte_carlo(
    lattice: HeisenbergLattice,
    temperatures: Sequence[float],
    size: int,
    sweeps: int = 1000,
    equilibration: int = 500,
    seed: int = 0,
) -> MonteCarloResult:
    """Metropolis Monte Carlo at each temperature (K), cooling from the highest.

    Args:
        lattice: the Heisenberg model.
        temperatures: temperatures (K).
        size: the supercell is ``size³`` reference cells (even, for the order parameter).
        sweeps: measured sweeps per temperature; equilibration: discarded sweeps before.
        seed: random seed.
    """
    if size % 2:
        raise ValueError(f"size must be even (the order parameter needs it), got {size}")
    if sweeps < 1 or equilibration < 0:
        raise ValueError(
            f"sweeps must be 1 or more and equilibration 0 or more, got {sweeps} and "
            f"{equilibration}"
        )
    if np.any(np.asarray(temperatures) <= 0):
        raise ValueError("temperatures must be positive (K)")
    rng = np.random.default_rng(seed)
    index, coupling = lattice.neighbours(size)
    colours = colouring(index, coupling)
    classes = [np.flatnonzero(colours == c) for c in range(colours.max() + 1)]
    tables = [(members, index[members], coupling[members]) for members in classes]
    nb = len(lattice.basis)
    grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), -1).reshape(-1, 3)
    positions = (grid[:, None, :] + lattice.basis[None]).reshape(-1, 3)  # cell units
    modes = ordering_modes(lattice)
    # projector: mode x site, so that M² = Σ_modes |projector @ spins|² / n_b
    projector = np.array(
        [
            np.exp(2j * np.pi * positions @ q) * np.tile(np.conj(u), len(grid)) / len(grid)
            for q, u in modes
        ]
    )
    field_scale = np.abs(coupling).sum(axis=1).mean()
    spins = _random_unit(rng, len(index))
    order = np.sort(np.asarray(temperatures, dtype=float))[::-1]
    energies, orders, chis, binders = [], [], [], []
    for temperature in order:
        beta = 1.0 / (kB * temperature)
        # proposals around the current direction, wide at high T (symmetric: detailed balance)
        step = min(2.0 * np.sqrt(kB * temperature / field_scale), 10.0)
        samples_e, samples_m2 = [], []
        for sweep in range(equilibration + sweeps):
            for members, neighbours, couplings in tables:
                field = np.einsum("iz,izk->ik", couplings, spins[neighbours])
                proposal = spins[members] + step * rng.normal(size=(len(members), 3))
                proposal /= np.linalg.norm(proposal, axis=1, keepdims=True)
                delta = np.einsum("ij,ij->i", proposal - spins[members], field)
                accept = rng.random(len(members)) < np.exp(-beta * np.clip(delta, 0, None))
                spins[members[accept]] = proposal[accept]
            for members, neighbours, couplings in tables:  # over-relaxation: E unchanged
                field = np.einsum("iz,izk->ik", couplings, spins[neighbours])
                norm2 = np.maximum(np.einsum("ij,ij->i", field, field), 1e-300)
                along = np.einsum("ij,ij->i", spins[members], field) / norm2
                spins[members] = 2 * along[:, None] * field - spins[members]
            if sweep >= equilibration:
                field = np.einsum("iz,izk->ik", coupling, spins[index])
                samples_e.append(0.5 * np.sum(spins * field) / len(spins))
                samples_m2.append(np.sum(np.abs(projector @ spins) ** 2) / nb)
        m2 = np.array(samples_m2)
        energies.append(np.mean(samples_e))
        orders.append(np.mean(np.sqrt(m2)))
        chis.append(len(spins) * beta * (m2.mean() - np.mean(np.sqrt(m2)) ** 2))
        binders.append(1.0 - np.mean(m2**2) / (3.0 * m2.mean() ** 2))
    reverse = slice(None, None, -1)
    return MonteCarloResult(
        size=size,
        temperatures=order[reverse],
        energy=np.array(energies)[reverse],
        order_parameter=np.array(orders)[reverse],
        susceptibility=np.array(chis)[reverse],
        binder=np.array(binders)[reverse],
    )


def binder_crossing(small: MonteCarloResult, large: MonteCarloResult) -> float | None:
    """Temperature (K) where the larger lattice's Binder cumulant drops below the smaller's.

    Linear interpolation between the two temperatures around the first sign change of
    ``U_large − U_small`` going up in temperature; None if the curves do not cross.
    """
    difference = large.binder - small.binder
    for k in range(len(difference) - 1):
        if difference[k] > 0 >= difference[k + 1]:
            t0, t1 = small.temperatures[k], small.temperatures[k + 1]
            return float(t0 + (t1 - t0) * difference[k] / (difference[k] - difference[k + 1]))
    return None


def neel_temperature(
    lattice: HeisenbergLattice,
    temperatures: Sequence[float] | None = None,
    sizes: tuple[int, int] = (4, 8),
    sweeps: int = MONTE_CARLO_SWEEPS,
    equilibration: int | None = None,
    seed: int = 0,
) -> NeelEstimate:
    """T_N (K) from the Binder-cumulant crossing of two lattice sizes.

    Args:
        lattice: the Heisenberg model.
        temperatures: temperatures (K) to simulate; default 12 between 0.45 and 1.0 times the
            mean-field temperature.
        sizes: two even supercell sizes (reference cells per side), smaller first.
        sweeps, equilibration, seed: see :func:`heisenberg_monte_carlo`; equilibration
            defaults to half the sweeps.

    Falls back to the susceptibility peak of the larger size when the cumulants do not cross
    in the temperature range (then widen it).
    """
    if temperatures is None:
        mean_field = lattice.mean_field_temperature()
        if mean_field <= 0:
            raise ValueError("the fitted exchange orders at no temperature (mean field 0 K)")
        temperatures = np.linspace(0.45, 1.0, 12) * mean_field
    if equilibration is None:
        equilibration = sweeps // 2
    small, large = sorted(sizes)
    runs = [
        heisenberg_monte_carlo(lattice, temperatures, size, sweeps, equilibration, seed)
        for size in (small, large)
    ]
    crossing = binder_crossing(*runs)
    if crossing is not None:
        return NeelEstimate(crossing, f"Binder crossing L={small}/{large}", runs)
    peak = float(runs[1].temperatures[np.argmax(runs[1].susceptibility)])
    return NeelEstimate(peak, f"susceptibility peak L={large} (no Binder crossing)", runs)
