"""Message passing with time-reversal parity: the SpinMultiNet interaction block.

Each atom carries time-even features ``h_e`` and time-odd features ``h_o`` (e3nn irreps each).
Spherical harmonics and radial functions of edges are time-even, so convolving ``h_e`` gives
even messages and convolving ``h_o`` gives odd ones. Node-wise products then couple the two
streams with the only products time reversal allows:

* odd ⊗ odd -> even: ``h_o(i) ⊗ Σ_j R(r_ij) Y(r̂_ij) h_o(j)`` contains the Heisenberg-like
  ``m_i m_j J(r_ij)`` terms that make energies depend on the spin ordering;
* odd ⊗ even -> odd: the environment modulates the atom's own spin features.

Odd features are (N, D), or (K, N, D) for K weight-sharing copies (one per Cartesian spin
component of a non-collinear model without spin-orbit, ``spinmultinet_ase/spin.py``): every map
acts on each copy alike, and odd ⊗ odd products are summed over the copies (``Σ_a x_a y_a``),
so a rotation of the copies leaves the even features unchanged.

Nonlinearities keep parity: time-even scalars pass through SiLU; every other feature, even
or odd, is multiplied by a sigmoid of a time-even scalar (a gate), which never flips sign.
"""

from __future__ import annotations

import torch
from e3nn import o3
from e3nn.math import normalize2mom
from e3nn.nn import FullyConnectedNet

from spinmultinet_ase.nn.convolution import (
    EdgeConvolution,
    per_channel_irreps,
    to_channel_major,
    to_irreps_layout,
)

# edges per chunk: every per-edge tensor of a chunk (radial MLP activations, edge matrices,
# messages) stays in cache, so the time per atom does not grow with the system
EDGE_CHUNK = 8192


def scalar_part(irreps: o3.Irreps) -> o3.Irreps:
    """The ``0e`` part of ``irreps``."""
    return o3.Irreps([(m, ir) for m, ir in irreps if ir == o3.Irrep("0e")])


def _gate_index(irreps: o3.Irreps) -> torch.Tensor:
    """For each component of ``irreps``, the index of the irrep copy it belongs to."""
    index, copy = [], 0
    for mul, ir in irreps:
        for _ in range(mul):
            index += [copy] * ir.dim
            copy += 1
    return torch.tensor(index, dtype=torch.int64)


class TimeReversalGate(torch.nn.Module):
    """Gate nonlinearity for a pair (time-even, time-odd) of feature blocks.

    The even pre-activation is laid out ``[scalars | even gates | odd gates | even gated]``,
    with all its ``0e`` channels (``num_scalars_pre``) first; the odd pre-activation is the
    odd block. Even scalars pass through SiLU; each other irrep copy, even or odd, is scaled by
    the sigmoid of its own time-even gate scalar, which keeps both parities exactly.
    Outputs: ``irreps_even`` = ``[scalars | even gated]`` and ``irreps_odd``.
    """

    def __init__(self, irreps_even: o3.Irreps, irreps_odd: o3.Irreps) -> None:
        super().__init__()
        scalars = scalar_part(irreps_even)
        gated = o3.Irreps([(m, ir) for m, ir in irreps_even if ir != o3.Irrep("0e")])
        self.num_scalars = scalars.dim
        self.num_even_gates = gated.num_irreps
        self.num_scalars_pre = scalars.dim + gated.num_irreps + irreps_odd.num_irreps
        self.irreps_even_pre = o3.Irreps(f"{self.num_scalars_pre}x0e") + gated
        self.irreps_even = scalars + gated
        self.irreps_odd = irreps_odd
        self.register_buffer("even_gate_index", _gate_index(gated))
        self.register_buffer("odd_gate_index", _gate_index(irreps_odd))
        # activations rescaled to unit second moment on unit Gaussian input (as e3nn does)
        self.scalar_activation = normalize2mom(torch.nn.functional.silu)
        self.gate_activation = normalize2mom(torch.sigmoid)

    def forward(self, even: torch.Tensor, odd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first_odd_gate = self.num_scalars + self.num_even_gates
        scalars = self.scalar_activation(even[:, : self.num_scalars])
        even_gates = self.gate_activation(even[:, self.num_scalars : first_odd_gate])
        odd_gates = self.gate_activation(even[:, first_odd_gate : self.num_scalars_pre])
        gated = even[:, self.num_scalars_pre :] * even_gates[:, self.even_gate_index]
        return torch.cat([scalars, gated], dim=-1), odd * odd_gates[:, self.odd_gate_index]


class SpinInteraction(torch.nn.Module):
    """One message-passing layer on (even, odd) node features, plus a linear self-connection.

    Args:
        irreps_even_in, irreps_odd_in: node feature irreps coming in.
        irreps_even_out, irreps_odd_out: node feature irreps going out.
        irreps_sh: spherical harmonics of the edge directions.
        num_radial: size of the radial edge embedding.
        radial_hidden: width of the radial MLP that makes the per-edge weights.
        avg_num_neighbors: messages are summed and divided by its square root.
        radial_group_size: channels that share one set of radial weights.

    Edges are processed in chunks of ``edge_chunk`` (radial MLP, edge matrices and messages
    together), which changes no result and keeps the time per atom flat with system size.
    The layer updates the first ``num_receivers`` nodes only; every edge's centre must be one
    of them, the neighbours may be any node. A domain-decomposed caller (LAMMPS) puts its own
    atoms first and its ghosts after them, and gets new features for its own atoms only.

    ``forward`` is :meth:`update` of :meth:`messages`, and :meth:`messages` sums
    :meth:`chunk_messages` of :meth:`node_inputs`; :meth:`recomputed_gradients` runs the
    backward pass through the same parts, one edge chunk at a time.
    """

    def __init__(
        self,
        irreps_even_in: o3.Irreps,
        irreps_odd_in: o3.Irreps,
        irreps_even_out: o3.Irreps,
        irreps_odd_out: o3.Irreps,
        irreps_sh: o3.Irreps,
        num_radial: int,
        radial_hidden: int,
        avg_num_neighbors: float,
        radial_group_size: int,
    ) -> None:
        super().__init__()
        self.gate = TimeReversalGate(irreps_even_out, irreps_odd_out)
        self.norm = float(avg_num_neighbors) ** -0.5
        self.linear_even_in = o3.Linear(irreps_even_in, irreps_even_in)
        self.linear_odd_in = o3.Linear(irreps_odd_in, irreps_odd_in)
        self.conv_even, self.dims_even_in = self._convolution(
            irreps_even_in, irreps_sh, irreps_even_out, radial_group_size
        )
        self.conv_odd, self.dims_odd_in = self._convolution(
            irreps_odd_in, irreps_sh, irreps_odd_out, radial_group_size
        )
        self.dims_even_msg = [ir.dim for _, ir in self.conv_even.irreps_out]
        self.dims_odd_msg = [ir.dim for _, ir in self.conv_odd.irreps_out]
        self.num_weights_even = self.conv_even.weight_numel
        self.edge_chunk = EDGE_CHUNK
        self.radial = FullyConnectedNet(
            [
                num_radial,
                radial_hidden,
                radial_hidden,
                self.num_weights_even + self.conv_odd.weight_numel,
            ],
            torch.nn.functional.silu,
        )
        even_pre = self.gate.irreps_even_pre
        msg_even = o3.Irreps([(self.conv_even.channels, ir) for _, ir in self.conv_even.irreps_out])
        msg_odd = o3.Irreps([(self.conv_odd.channels, ir) for _, ir in self.conv_odd.irreps_out])
        self.linear_even_out = o3.Linear(msg_even, even_pre)
        self.linear_odd_out = o3.Linear(msg_odd, irreps_odd_out)
        # odd ⊗ odd -> even scalars and gates: the exchange-like terms
        self.num_scalars_pre = self.gate.num_scalars_pre
        self.couple_odd_odd = o3.FullyConnectedTensorProduct(
            irreps_odd_in, msg_odd, o3.Irreps(f"{self.num_scalars_pre}x0e")
        )
        # odd ⊗ (even message scalars) -> odd: the environment modulates the atom's spin
        self.even_message_scalars = o3.Linear(msg_even, scalar_part(irreps_even_out))
        self.couple_odd_even = o3.FullyConnectedTensorProduct(
            irreps_odd_in, self.even_message_scalars.irreps_out, irreps_odd_out
        )
        self.self_even = o3.Linear(irreps_even_in, self.gate.irreps_even)
        self.self_odd = o3.Linear(irreps_odd_in, self.gate.irreps_odd)
        self.irreps_even_out = self.gate.irreps_even
        self.irreps_odd_out = self.gate.irreps_odd

    @staticmethod
    def _convolution(
        irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_target: o3.Irreps, group_size: int
    ) -> tuple[EdgeConvolution, list[int]]:
        channels, per_channel_in = per_channel_irreps(irreps_in)
        _, per_channel_target = per_channel_irreps(irreps_target)
        conv = EdgeConvolution(per_channel_in, irreps_sh, per_channel_target, channels, group_size)
        return conv, [ir.dim for _, ir in per_channel_in]

    def forward(
        self,
        even: torch.Tensor,
        odd: torch.Tensor,
        edge_sh: torch.Tensor,
        edge_radial: torch.Tensor,
        edge_index: torch.Tensor,
        num_receivers: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """New (even, odd) features of nodes ``0 .. num_receivers - 1`` from the features of
        all nodes, (N, D_even) and (N, D_odd) or (K, N, D_odd) for K spin copies, and the
        edges' harmonics (E, d_sh) and radial features (E, n)."""
        msg_even, msg_odd = self.messages(
            even, odd, edge_sh, edge_radial, edge_index, num_receivers
        )
        return self.update(even, odd, msg_even, msg_odd)

    def node_inputs(
        self, even: torch.Tensor, odd: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The features the convolutions read, channel-major: even (N, C, d), odd (K·N, C, d)
        with copy ``k`` in rows ``k·N ... (k+1)·N - 1``."""
        x_even = to_channel_major(
            self.linear_even_in(even), self.conv_even.channels, self.dims_even_in
        )
        x_odd = self.linear_odd_in(odd).reshape(_copies(odd) * even.shape[0], -1)
        return x_even, to_channel_major(x_odd, self.conv_odd.channels, self.dims_odd_in)

    def chunk_messages(
        self,
        neighbours_even: torch.Tensor,
        neighbours_odd: torch.Tensor,
        edge_sh: torch.Tensor,
        edge_radial: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Messages of a chunk of E edges from their neighbours' :meth:`node_inputs`, even
        (E, C, d) and odd (K·E, C, d) (copy ``k`` in rows ``k·E ...``): (E, C, d_out) and
        (K·E, C, d_out), one radial MLP evaluation and one set of edge matrices for all."""
        weights = self.radial(edge_radial)
        num_edges = edge_sh.shape[0]
        matrices_even = self.conv_even.edge_matrices(edge_sh, weights[:, : self.num_weights_even])
        matrices_odd = self.conv_odd.edge_matrices(edge_sh, weights[:, self.num_weights_even :])
        if neighbours_odd.shape[0] != num_edges:  # spin copies: (K, E, C, d) shares matrices
            neighbours_odd = neighbours_odd.reshape(
                [-1, num_edges] + list(neighbours_odd.shape[1:])
            )
        msg_odd = self.conv_odd.messages(neighbours_odd, matrices_odd)
        msg_even = self.conv_even.messages(neighbours_even, matrices_even)
        return msg_even, msg_odd.reshape([-1] + list(msg_odd.shape[-2:]))

    def messages(
        self,
        even: torch.Tensor,
        odd: torch.Tensor,
        edge_sh: torch.Tensor,
        edge_radial: torch.Tensor,
        edge_index: torch.Tensor,
        num_receivers: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sums of the messages onto each of the first ``num_receivers`` nodes R, even
        (R, C, d_out) and odd (K·R, C, d_out), edge chunk by edge chunk."""
        x_even, x_odd = self.node_inputs(even, odd)
        copies, num_nodes = _copies(odd), even.shape[0]
        msg_even = self.conv_even.zeros(num_receivers, x_even)
        msg_odd = self.conv_odd.zeros(copies * num_receivers, x_odd)
        # split, not sliced: the backward of a slice builds a zero tensor of all edges per chunk
        chunk = self.edge_chunk
        for sh, radial, centre, neighbour in zip(
            edge_sh.split(chunk),
            edge_radial.split(chunk),
            edge_index[0].split(chunk),
            edge_index[1].split(chunk),
            strict=True,
        ):
            neighbours_odd = x_odd.index_select(0, _copy_rows(neighbour, copies, num_nodes))
            chunk_even, chunk_odd = self.chunk_messages(
                x_even.index_select(0, neighbour), neighbours_odd, sh, radial
            )
            msg_even = msg_even.index_add_(0, centre, chunk_even)
            msg_odd = msg_odd.index_add_(0, _copy_rows(centre, copies, num_receivers), chunk_odd)
        return msg_even, msg_odd

    def update(
        self, even: torch.Tensor, odd: torch.Tensor, msg_even: torch.Tensor, msg_odd: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """New (even, odd) features of the nodes the :meth:`messages` sums were made for (the
        first R) from the old features and those sums."""
        num_receivers = msg_even.shape[0]
        copies = _copies(odd)
        agg_even = to_irreps_layout(msg_even, self.dims_even_msg) * self.norm
        agg_odd = to_irreps_layout(msg_odd, self.dims_odd_msg) * self.norm
        if odd.dim() == 3:
            agg_odd = agg_odd.reshape(copies, num_receivers, -1)
            odd = odd[:, :num_receivers]
        else:
            odd = odd[:num_receivers]
        even = even[:num_receivers]

        pre_even = self.linear_even_out(agg_even)
        coupling = self.couple_odd_odd(odd, agg_odd)
        if odd.dim() == 3:
            coupling = coupling.sum(dim=0)
        pre_even = torch.cat(
            [pre_even[:, : self.num_scalars_pre] + coupling, pre_even[:, self.num_scalars_pre :]],
            dim=-1,
        )
        even_scalars = self.even_message_scalars(agg_even)
        if odd.dim() == 3:
            even_scalars = even_scalars.expand(copies, num_receivers, even_scalars.shape[-1])
        pre_odd = self.linear_odd_out(agg_odd) + self.couple_odd_even(odd, even_scalars)
        new_even, new_odd = self.gate(pre_even, pre_odd)
        return new_even + self.self_even(even), new_odd + self.self_odd(odd)

    def recomputed_gradients(
        self,
        even: torch.Tensor,
        odd: torch.Tensor,
        msg_even: torch.Tensor,
        msg_odd: torch.Tensor,
        grad_even: torch.Tensor,
        grad_odd: torch.Tensor,
        edge_sh: torch.Tensor,
        edge_radial: torch.Tensor,
        edge_index: torch.Tensor,
        grad_sh: torch.Tensor,
        grad_radial: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Backward pass of this layer that keeps no per-edge tensor beyond one chunk's.

        Given the gradients ``grad_even``, ``grad_odd`` of a scalar ``L`` with respect to the
        layer's outputs for inputs ``even``, ``odd`` (whose :meth:`messages` sums are
        ``msg_even``, ``msg_odd``), returns ``L``'s gradients with respect to ``even`` and
        ``odd``, and adds those with respect to ``edge_sh`` and ``edge_radial`` into
        ``grad_sh`` and ``grad_radial`` (in place). The node-wise parts are recomputed with
        autograd once; the messages edge chunk by edge chunk, each chunk's graph freed before
        the next is built.
        """
        even = even.detach().requires_grad_(True)
        odd = odd.detach().requires_grad_(True)
        msg_even = msg_even.detach().requires_grad_(True)
        msg_odd = msg_odd.detach().requires_grad_(True)
        new_even, new_odd = self.update(even, odd, msg_even, msg_odd)
        grads = vector_jacobian(
            [new_even, new_odd], [even, odd, msg_even, msg_odd], [grad_even, grad_odd]
        )
        grad_msg_even, grad_msg_odd = grads[2], grads[3]
        x_even, x_odd = self.node_inputs(even, odd)
        grad_x_even, grad_x_odd = torch.zeros_like(x_even), torch.zeros_like(x_odd)
        values_even, values_odd = x_even.detach(), x_odd.detach()
        copies, num_nodes, num_receivers = _copies(odd), even.shape[0], msg_even.shape[0]
        chunk = self.edge_chunk
        for sh, radial, centre, neighbour, sh_grad, radial_grad in zip(
            edge_sh.split(chunk),
            edge_radial.split(chunk),
            edge_index[0].split(chunk),
            edge_index[1].split(chunk),
            grad_sh.split(chunk),
            grad_radial.split(chunk),
            strict=True,
        ):
            neighbour_odd = _copy_rows(neighbour, copies, num_nodes)
            centre_odd = _copy_rows(centre, copies, num_receivers)
            neighbours_even = values_even.index_select(0, neighbour).requires_grad_(True)
            neighbours_odd = values_odd.index_select(0, neighbour_odd).requires_grad_(True)
            sh = sh.detach().requires_grad_(True)
            radial = radial.detach().requires_grad_(True)
            chunk_even, chunk_odd = self.chunk_messages(neighbours_even, neighbours_odd, sh, radial)
            chunk_grads = vector_jacobian(
                [chunk_even, chunk_odd],
                [neighbours_even, neighbours_odd, sh, radial],
                [grad_msg_even.index_select(0, centre), grad_msg_odd.index_select(0, centre_odd)],
            )
            grad_x_even.index_add_(0, neighbour, chunk_grads[0])
            grad_x_odd.index_add_(0, neighbour_odd, chunk_grads[1])
            sh_grad.add_(chunk_grads[2])
            radial_grad.add_(chunk_grads[3])
        input_grads = vector_jacobian([x_even, x_odd], [even, odd], [grad_x_even, grad_x_odd])
        return grads[0] + input_grads[0], grads[1] + input_grads[1]


def _copies(odd: torch.Tensor) -> int:
    """Number of spin copies K of odd features (N, D) or (K, N, D)."""
    return odd.shape[0] if odd.dim() == 3 else 1


def _copy_rows(index: torch.Tensor, copies: int, num_nodes: int) -> torch.Tensor:
    """Rows of node indices ``index`` in every copy of a (K·N, ...) tensor, copy by copy."""
    if copies == 1:
        return index
    return torch.cat([index + k * num_nodes for k in range(copies)])


def vector_jacobian(
    outputs: list[torch.Tensor], inputs: list[torch.Tensor], grad_outputs: list[torch.Tensor]
) -> list[torch.Tensor]:
    """``Σ_k grad_outputs[k] · ∂outputs[k]/∂inputs[i]`` for each input (zeros for an input
    the outputs do not depend on); the graph of ``outputs`` is freed."""
    weights: list[torch.Tensor | None] = []
    for weight in grad_outputs:
        weights.append(weight)
    grads = torch.autograd.grad(outputs, inputs, grad_outputs=weights, allow_unused=True)
    result: list[torch.Tensor] = []
    for grad, tensor in zip(grads, inputs, strict=True):
        result.append(grad if grad is not None else torch.zeros_like(tensor))
    return result
