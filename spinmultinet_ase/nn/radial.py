"""Radial features of edges: a Bessel basis times a smooth polynomial cutoff envelope."""

from __future__ import annotations

import math

import torch


class PolynomialCutoff(torch.nn.Module):
    """Envelope ``u(x)`` of Klicpera et al. (DimeNet): 1 at 0, 0 with p-1 zero derivatives at 1.

    ``u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^{p+1} - p(p+1)/2 x^{p+2}`` for ``x = r / r_c < 1``,
    and 0 beyond, so energies and forces are smooth as a neighbour crosses the cutoff.
    """

    def __init__(self, cutoff: float, p: int = 6) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.p = float(p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        x = r / self.cutoff
        p = self.p
        u = (
            1.0
            - 0.5 * (p + 1.0) * (p + 2.0) * x.pow(p)
            + p * (p + 2.0) * x.pow(p + 1.0)
            - 0.5 * p * (p + 1.0) * x.pow(p + 2.0)
        )
        return u * (x < 1.0).to(r.dtype)


class BesselBasis(torch.nn.Module):
    """``sqrt(2/r_c) sin(n π r / r_c) / r`` for ``n = 1..num_basis``, with trainable ``n π``."""

    def __init__(self, cutoff: float, num_basis: int = 8) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.prefactor = math.sqrt(2.0 / cutoff)
        self.frequencies = torch.nn.Parameter(torch.arange(1, num_basis + 1) * math.pi)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r.unsqueeze(-1)
        return self.prefactor * torch.sin(self.frequencies * r / self.cutoff) / r


class RadialEmbedding(torch.nn.Module):
    """Edge lengths (E,) -> smooth radial features (E, num_basis) that vanish at the cutoff."""

    def __init__(self, cutoff: float, num_basis: int = 8, p: int = 6) -> None:
        super().__init__()
        self.basis = BesselBasis(cutoff, num_basis)
        self.envelope = PolynomialCutoff(cutoff, p)
        self.num_basis = num_basis

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return self.basis(r) * self.envelope(r).unsqueeze(-1)
