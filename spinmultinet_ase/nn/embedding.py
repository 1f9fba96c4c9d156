"""Atom embedding: species and initial moments -> time-even and time-odd node features.

Time reversal maps ``m -> -m``. The moment enters through its saturated direction

    v = f(|m| / m_c) m / |m|,   f(x) = (15x - 10x³ + 3x⁵) / 8 for x < 1, f(x) = 1 for x >= 1,

(time-odd) and ``u = |v|²`` (time-even, in [0, 1]). ``f`` rises from 0 to 1 with vanishing
first and second derivatives at ``x = 1``, and ``f(x)/x`` is a polynomial in ``x²``, so ``v``
is smooth everywhere, also at ``m = 0``. Every guess of at least ``m_c`` (1 μB by default)
gives exactly ``v = m/|m|``: a DFT run converges a guess of 3 or of 7 μB on Mn to the same
state, and the model's results are exactly the same for both. Time-even features are learned
functions of the species and of ``u`` (expanded in Gaussians); time-odd features are ``v``
times a learned, time-even amplitude per channel, so they flip exactly with ``m``:

* collinear (``m`` a scalar per atom, invariant under rotations and inversion): odd ``0e``,
  shape (N, C);
* non-collinear without spin-orbit (``m`` a vector in spin space, decoupled from the lattice):
  odd ``0e`` in three copies, one per Cartesian spin component, shape (3, N, C);
* non-collinear with spin-orbit (``m`` an axial vector): odd ``1e`` (a pseudovector: unchanged
  by inversion), shape (N, 3C).
"""

from __future__ import annotations

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet

from spinmultinet_ase.spin import SpinMode


def saturated_direction(moments: torch.Tensor, full_moment: float, vector: bool) -> torch.Tensor:
    """``v = f(|m| / m_c) m / |m|`` (module docstring) of moments (N,) or, if ``vector``, (N, 3)."""
    size_squared = (moments * moments).sum(dim=-1) if vector else moments * moments
    x2 = size_squared / full_moment**2
    inside = (15.0 - 10.0 * x2 + 3.0 * x2 * x2) / (8.0 * full_moment)  # f(x) / |m|
    # clamped, the unused branch has a finite gradient (no inf * 0 at m = 0)
    outside = torch.rsqrt(torch.clamp(size_squared, min=full_moment**2))  # 1 / |m|
    scale = torch.where(x2 < 1.0, inside, outside)
    return moments * (scale.unsqueeze(-1) if vector else scale)


class GaussianBasis(torch.nn.Module):
    """Gaussians ``exp(-(x - μ_k)² / 2w²)`` on ``[0, x_max]``."""

    def __init__(self, x_max: float, num_basis: int) -> None:
        super().__init__()
        self.register_buffer("centers", torch.linspace(0.0, x_max, num_basis))
        self.width = x_max / (num_basis - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * ((x.unsqueeze(-1) - self.centers) / self.width) ** 2)


class SpinEmbedding(torch.nn.Module):
    """(species, initial moments) -> (even scalars (N, C_even), odd features): odd (N, C_odd)
    collinear, (3, N, C_odd) non-collinear, (N, 3 C_odd) non-collinear with spin-orbit.

    Args:
        num_species: number of species the model knows.
        even_channels: number of time-even ``0e`` channels out.
        odd_channels: number of time-odd channels out (of the spin mode's ``odd_irrep``).
        spin_mode: the spin mode (:mod:`spinmultinet_ase.spin`).
        full_moment: ``m_c`` (μB): guesses of this size or larger are all alike.
        num_moment_basis: number of Gaussians on ``u`` in [0, 1].
    """

    def __init__(
        self,
        num_species: int,
        even_channels: int,
        odd_channels: int,
        spin_mode: SpinMode,
        full_moment: float = 1.0,
        num_moment_basis: int = 8,
    ) -> None:
        super().__init__()
        self.vector = spin_mode.vector
        self.spin_copies = spin_mode.spin_copies
        self.num_species = num_species
        self.full_moment = full_moment
        self.basis = GaussianBasis(1.0, num_moment_basis)
        n_in = num_species + num_moment_basis
        silu = torch.nn.functional.silu
        self.even = FullyConnectedNet([n_in, even_channels, even_channels], silu)
        self.odd_amplitude = FullyConnectedNet([n_in, odd_channels, odd_channels], silu)
        self.irreps_even = o3.Irreps(f"{even_channels}x0e")
        self.irreps_odd = o3.Irreps(f"{odd_channels}x{spin_mode.odd_irrep}")

    def forward(
        self, species: torch.Tensor, moments: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        direction = saturated_direction(moments, self.full_moment, self.vector)  # v
        saturation = (direction * direction).sum(dim=-1) if self.vector else direction**2
        one_hot = torch.nn.functional.one_hot(species, self.num_species).to(moments.dtype)
        invariants = torch.cat([one_hot, self.basis(saturation)], dim=-1)
        even = self.even(invariants)
        amplitude = self.odd_amplitude(invariants)
        if self.spin_copies == 3:
            # (1, N, C) * (3, N, 1) -> (3, N, C): one copy per spin component.
            odd = amplitude.unsqueeze(0) * direction.t().unsqueeze(-1)
        elif self.vector:
            # (N, C, 1) * (N, 1, 3) -> (N, C, 3): C copies of the axial vector, channel-major.
            odd = (amplitude.unsqueeze(-1) * direction.unsqueeze(-2)).reshape(moments.shape[0], -1)
        else:
            odd = amplitude * direction.unsqueeze(-1)
        return even, odd
