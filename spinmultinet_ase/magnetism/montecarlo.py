"""Classical Monte Carlo of a Heisenberg lattice: the ordering (Néel) temperature.

Spins are classical unit vectors on the sites of a ``L³`` supercell of
:class:`~spinmultinet_ase.magnetism.heisenberg.HeisenbergLattice`. Metropolis updates run in
parallel on the classes of a greedy colouring of the interaction graph, none of which holds a
pair of coupled sites. The order parameter is the weight of the spin configuration on the
commensurate wave vectors ``q ∈ {0, ½}³`` of the reference cell, summed over sublattices:
``M² = Σ_q Σ_b |m_b(q)|² / n_b`` with ``m_b(q) = (1/L³) Σ_R e_{R,b} exp(2πi q·R)``, which is 1
in any collinear or multi-sublattice state periodic in the doubled cell and ``O(1/N)`` in the
paramagnet. T_N is where the Binder cumulants ``U = 1 − ⟨M⁴⟩/(3⟨M²⟩²)`` of two sizes cross.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase.units import kB

from spinmultinet_ase.magnetism.heisenberg import HeisenbergLattice


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
    if np.any(np.asarray(temperatures) <= 0):
        raise ValueError("temperatures must be positive (K)")
    rng = np.random.default_rng(seed)
    index, coupling = lattice.neighbours(size)
    colours = colouring(index, coupling)
    classes = [np.flatnonzero(colours == c) for c in range(colours.max() + 1)]
    nb = len(lattice.basis)
    grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), -1).reshape(-1, 3)
    wavevectors = np.array(list(np.ndindex(2, 2, 2))) / 2
    phases = np.cos(2 * np.pi * wavevectors @ grid.T) / len(grid)  # (8, cells), ±1/cells
    spins = _random_unit(rng, len(index))
    order = np.sort(np.asarray(temperatures, dtype=float))[::-1]
    energies, orders, chis, binders = [], [], [], []
    for temperature in order:
        beta = 1.0 / (kB * temperature)
        samples_e, samples_m2 = [], []
        for sweep in range(equilibration + sweeps):
            for members in classes:
                field = np.einsum("iz,izk->ik", coupling[members], spins[index[members]])
                proposal = _random_unit(rng, len(members))
                delta = np.einsum("ij,ij->i", proposal - spins[members], field)
                accept = rng.random(len(members)) < np.exp(-beta * np.clip(delta, 0, None))
                spins[members[accept]] = proposal[accept]
            if sweep >= equilibration:
                field = np.einsum("iz,izk->ik", coupling, spins[index])
                samples_e.append(0.5 * np.sum(spins * field) / len(spins))
                fourier = np.einsum("qc,cbk->qbk", phases, spins.reshape(len(grid), nb, 3))
                samples_m2.append(np.sum(fourier**2) / nb)
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
    sizes: tuple[int, int] = (4, 6),
    sweeps: int = 1000,
    equilibration: int = 500,
    seed: int = 0,
) -> NeelEstimate:
    """T_N (K) from the Binder-cumulant crossing of two lattice sizes.

    Args:
        lattice: the Heisenberg model.
        temperatures: temperatures (K) to simulate; default 16 between 0.4 and 1.1 times the
            mean-field temperature.
        sizes: two even supercell sizes (reference cells per side), smaller first.
        sweeps, equilibration, seed: see :func:`heisenberg_monte_carlo`.

    Falls back to the susceptibility peak of the larger size when the cumulants do not cross
    in the temperature range (then widen it).
    """
    if temperatures is None:
        mean_field = lattice.mean_field_temperature()
        if mean_field <= 0:
            raise ValueError("the fitted exchange orders at no temperature (mean field 0 K)")
        temperatures = np.linspace(0.4, 1.1, 16) * mean_field
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
