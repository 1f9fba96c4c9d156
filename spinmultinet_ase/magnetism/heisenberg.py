"""The classical Heisenberg model of a fitted exchange on a crystal's magnetic lattice.

``E = Σ_<ij> J_ij S_i·S_j`` (pairs once, J > 0 antiferromagnetic) with classical spins
``S_i = |S_i| e_i``; the couplings are the fitted ``J_k |S|²`` (eV) of each shell, so the
model acts on unit vectors ``e_i``. The lattice is the reference cell of the fit with its
magnetic sites as basis, repeated ``L × L × L``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase.units import kB

from spinmultinet_ase.magnetism.exchange import PAIR_TOLERANCE, ExchangeShells


@dataclass(frozen=True)
class HeisenbergLattice:
    """Basis sites of a cell and their couplings ``J |S|²`` (eV) to sites of other cells."""

    cell: np.ndarray  # (3, 3) Å, lattice vectors as rows
    basis: np.ndarray  # (b, 3) fractional positions of the magnetic sites
    source: np.ndarray  # (p,) basis site of each directed bond
    target: np.ndarray  # (p,) basis site it couples to
    offset: np.ndarray  # (p, 3) integer cell offset of the target
    coupling: np.ndarray  # (p,) J |S|² (eV)

    @classmethod
    def from_fit(
        cls, shells: ExchangeShells, couplings: Sequence[float | None]
    ) -> HeisenbergLattice:
        """The lattice of ``shells`` with one coupling (eV) per shell; None or 0: no bond."""
        if len(couplings) != len(shells.shells):
            raise ValueError(f"{len(shells.shells)} shells but {len(couplings)} couplings")
        inverse = np.linalg.inv(shells.cell)
        basis = shells.positions @ inverse
        sources, targets, offsets, values = [], [], [], []
        for site, (vectors, labels) in enumerate(zip(shells.vectors, shells.labels, strict=True)):
            for vector, label in zip(vectors, labels, strict=True):
                if not couplings[label]:
                    continue
                frac = basis[site] + vector @ inverse
                delta = frac[None] - basis
                shift = np.rint(delta)
                close = np.linalg.norm((delta - shift) @ shells.cell, axis=1) < PAIR_TOLERANCE
                partner = int(np.argmax(close))
                sources.append(site)
                targets.append(partner)
                offsets.append(shift[partner].astype(int))
                values.append(float(couplings[label]))
        if not values:
            raise ValueError("no nonzero exchange constant: no Heisenberg model to simulate")
        return cls(
            cell=shells.cell.copy(),
            basis=basis,
            source=np.array(sources),
            target=np.array(targets),
            offset=np.array(offsets),
            coupling=np.array(values),
        )

    def neighbours(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Neighbour indices and couplings (eV) of every site of the ``size³`` supercell.

        Site ``(cell, b)`` has index ``cell * b_count + b`` with ``cell`` the row-major index
        of its integer cell coordinates. Rows are padded with the site itself and coupling 0.
        """
        if size <= 2 * np.abs(self.offset).max():
            raise ValueError(
                f"a {size}³ lattice is too small for bonds reaching {np.abs(self.offset).max()} "
                "cells: a site would couple to its own image"
            )
        nb = len(self.basis)
        grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), -1).reshape(-1, 3)
        degree = np.bincount(self.source, minlength=nb)
        width = degree.max()
        index = np.repeat(np.arange(len(grid) * nb)[:, None], width, axis=1)
        coupling = np.zeros((len(grid) * nb, width))
        for b in range(nb):
            bonds = np.flatnonzero(self.source == b)
            cells = (grid[:, None, :] + self.offset[bonds][None]) % size
            flat = (cells[..., 0] * size + cells[..., 1]) * size + cells[..., 2]
            rows = np.arange(len(grid)) * nb + b
            index[rows, : len(bonds)] = flat * nb + self.target[bonds][None]
            coupling[rows, : len(bonds)] = self.coupling[bonds][None]
        return index, coupling

    def energy_per_site(self, spins: np.ndarray, size: int) -> float:
        """``(1/N) Σ_<ij> J_ij e_i·e_j`` (eV) of unit vectors or signs ``spins`` (N, 3) or (N,)."""
        index, coupling = self.neighbours(size)
        spins = np.asarray(spins, dtype=float)
        spins = spins[:, None] if spins.ndim == 1 else spins
        field = np.einsum("iz,izk->ik", coupling, spins[index])
        return float(0.5 * np.sum(spins * field) / len(spins))

    def exchange_matrix(self, q: np.ndarray) -> np.ndarray:
        """``J_bb'(q) = Σ_R J_{b,b'+R} exp(2πi q·(R + x_b' − x_b))``, q in reciprocal units."""
        nb = len(self.basis)
        matrix = np.zeros((nb, nb), dtype=complex)
        phase = (self.offset + self.basis[self.target] - self.basis[self.source]) @ q
        np.add.at(matrix, (self.source, self.target), self.coupling * np.exp(2j * np.pi * phase))
        return matrix

    def mean_field_temperature(self, grid: int = 12) -> float:
        """Classical mean-field ordering temperature (K) of this lattice.

        ``k_B T = max_q λ_max(−J(q)) / 3`` for unit-vector spins, over a ``grid³`` mesh of
        wave vectors (including the zone centre and boundary). Mean field neglects
        fluctuations: it overestimates the transition, often by tens of per cent.
        """
        axis = np.arange(grid) / grid
        best = max(
            np.linalg.eigvalsh(-self.exchange_matrix(np.array(q))).max()
            for q in np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
        )
        return float(best / (3 * kB))
