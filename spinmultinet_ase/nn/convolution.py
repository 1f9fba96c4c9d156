"""Edge convolution as one small matrix per edge: the fast tensor product of SpinMultiNet.

For an edge ``e`` (centre ``i``, neighbour ``j``) and channel ``u`` the message is

    m_e[u] = Σ_p w_p(r_e, g(u)) · CG_p(x_j[u], Y(r̂_e)),

a sum over the allowed paths ``p = (l_in, l_sh, l_out)`` of Clebsch-Gordan products of the
neighbour's features with the edge harmonics, weighted by learned radial functions ``w_p``.
The weights are shared by the channels of a group ``g(u)`` (``group_size`` channels each), so
for each edge and group the whole sum is one ``d_in × d_out`` matrix

    B_{e,g} = Σ_p w_p(r_e, g) Σ_m Y_m(r̂_e) C_p[m]

built by a single matrix product, and the messages are a batched product ``x_j[u] · B_{e,g}``
followed by a scatter-sum onto the centres. Compared with an e3nn ``uvu`` tensor product with a
weight per path and channel, no per-path, per-channel edge tensors are ever materialised, which
is what makes the layer fast on CPUs (see ``benchmarks/``).

Features use a channel-major layout ``(N, channels, d)``: every channel carries the same
irreps (``d`` components); :func:`to_channel_major` and :func:`to_irreps_layout` convert from
and to e3nn's layout ``channels x ir_1 + channels x ir_2 + ...``.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3


def per_channel_irreps(irreps: o3.Irreps) -> tuple[int, o3.Irreps]:
    """``(channels, irreps of one channel)`` of e3nn irreps whose blocks share one multiplicity.

    Raises:
        ValueError: the blocks have different multiplicities.
    """
    multiplicities = {mul for mul, _ in irreps}
    if len(multiplicities) != 1:
        raise ValueError(f"irreps {irreps} need one multiplicity for a channel-major layout")
    return multiplicities.pop(), o3.Irreps([(1, ir) for _, ir in irreps])


def to_channel_major(x: torch.Tensor, channels: int, dims: list[int]) -> torch.Tensor:
    """e3nn layout ``(N, Σ channels·d_k)`` -> ``(N, channels, Σ d_k)``."""
    blocks, start = [], 0
    for dim in dims:
        blocks.append(x[:, start : start + channels * dim].reshape(-1, channels, dim))
        start += channels * dim
    return torch.cat(blocks, dim=-1)


def to_irreps_layout(x: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """``(N, channels, Σ d_k)`` -> e3nn layout ``(N, Σ channels·d_k)``."""
    blocks, start = [], 0
    for dim in dims:
        blocks.append(x[:, :, start : start + dim].reshape(x.shape[0], -1))
        start += dim
    return torch.cat(blocks, dim=-1)


def coupling_paths(
    irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_target: o3.Irreps
) -> tuple[list[tuple[int, int, int]], o3.Irreps]:
    """Paths ``(index in irreps_in, index in irreps_sh, index in irreps_out)`` and the
    per-channel output irreps: the irreps of ``irreps_target`` that some path reaches."""
    reachable = {ir for _, ir_in in irreps_in for _, ir_sh in irreps_sh for ir in ir_in * ir_sh}
    irreps_out = o3.Irreps([(1, ir) for _, ir in irreps_target if ir in reachable])
    outputs = [ir for _, ir in irreps_out]
    paths = []
    for i, (_, ir_in) in enumerate(irreps_in):
        for j, (_, ir_sh) in enumerate(irreps_sh):
            for ir_out in ir_in * ir_sh:
                if ir_out in outputs:
                    paths.append((i, j, outputs.index(ir_out)))
    return paths, irreps_out


class EdgeConvolution(torch.nn.Module):
    """Messages from neighbours: ``(N, channels, d_in)`` -> ``(N, channels, d_out)``.

    Args:
        irreps_in: irreps of one input channel (e.g. ``0e+1o+2e``).
        irreps_sh: irreps of the edge spherical harmonics.
        irreps_target: irreps one output channel may have; those reachable are kept.
        channels: number of channels.
        group_size: channels that share one set of radial weights (divides ``channels``).

    ``weight_numel`` radial weights per edge are expected, laid out ``(groups, paths)``.
    Each path's coupling is normalised to unit output variance for unit inputs, and the paths
    into one output irrep are averaged in variance.
    """

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_sh: o3.Irreps,
        irreps_target: o3.Irreps,
        channels: int,
        group_size: int,
    ) -> None:
        super().__init__()
        if group_size < 1 or channels % group_size:
            raise ValueError(f"group_size {group_size} must divide the {channels} channels")
        paths, irreps_out = coupling_paths(irreps_in, irreps_sh, irreps_target)
        self.irreps_in, self.irreps_out = irreps_in, irreps_out
        self.channels = channels
        self.num_groups = channels // group_size
        self.num_paths = len(paths)
        self.dim_in, self.dim_out, self.dim_sh = irreps_in.dim, irreps_out.dim, irreps_sh.dim
        self.weight_numel = self.num_groups * self.num_paths
        fan_in = [sum(1 for *_, k in paths if k == out) for out in range(len(irreps_out))]
        coupling = torch.zeros(self.num_paths, self.dim_sh, self.dim_in, self.dim_out)
        slices_in, slices_sh, slices_out = (
            irreps_in.slices(),
            irreps_sh.slices(),
            irreps_out.slices(),
        )
        for p, (i, j, k) in enumerate(paths):
            l_in, l_sh, l_out = irreps_in[i].ir.l, irreps_sh[j].ir.l, irreps_out[k].ir.l
            w3j = o3.wigner_3j(l_in, l_sh, l_out)  # (in, sh, out), unit Frobenius norm
            block = w3j.permute(1, 0, 2) * math.sqrt((2 * l_out + 1) / fan_in[k])
            coupling[p, slices_sh[j], slices_in[i], slices_out[k]] = block
        self.register_buffer(
            "coupling",
            coupling.reshape(self.num_paths * self.dim_sh, self.dim_in * self.dim_out),
        )

    def zeros(self, num_nodes: int, x: torch.Tensor) -> torch.Tensor:
        """An empty message sum ``(num_nodes, channels, d_out)`` in the dtype of ``x``."""
        return torch.zeros(num_nodes, self.channels, self.dim_out, dtype=x.dtype, device=x.device)

    def edge_matrices(self, edge_sh: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The matrices ``B_{e,g}`` (E, groups, d_in, d_out) of a set of edges."""
        num_edges = edge_sh.shape[0]
        g = self.num_groups
        weighted_sh = weights.reshape(num_edges, g, self.num_paths, 1) * edge_sh.reshape(
            num_edges, 1, 1, self.dim_sh
        )
        return torch.matmul(
            weighted_sh.reshape(num_edges * g, self.num_paths * self.dim_sh), self.coupling
        ).reshape(num_edges, g, self.dim_in, self.dim_out)

    def messages(self, neighbours: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
        """Messages ``(..., E, channels, d_out)`` from the neighbours' features
        ``(..., E, channels, d_in)`` (any leading dimensions, e.g. spin copies) and the
        edges' :meth:`edge_matrices`."""
        shape = list(neighbours.shape)
        grouped = neighbours.reshape(
            shape[:-2] + [self.num_groups, self.channels // self.num_groups, self.dim_in]
        )
        return torch.matmul(grouped, matrices).reshape(shape[:-1] + [self.dim_out])
