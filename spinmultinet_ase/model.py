"""SpinMultiNet: the full potential, built from one :class:`ModelConfig`.

Energy ``E = Σ_i [s · ε_i(h_e(i)) + e0(Z_i)]`` from the time-even scalars after the last layer;
predicted moments ``M_i`` are a linear, bias-free readout of the time-odd features, so they
flip with the input moments. Forces ``F = -∂E/∂R``, stress ``σ = (1/V) ∂E/∂ε`` (ASE's sign:
negative under compression) and magnetic forces ``-∂E/∂m`` come from one backward pass, with
the strain ``ε`` applied symmetrically to positions and cell. An optional ``energy_mask``
restricts the sum ``E`` (and so every derivative) to some atoms, while ``energies`` stays per
atom for all: a domain-decomposed caller (LAMMPS) counts its own atoms and not its ghosts.
The stages of ``forward`` (``edge_features``, ``embed``, ``interaction`` per layer,
``readout``) are exported methods too, for a caller that runs the layers one by one and
exchanges features between them (LAMMPS with several ranks, ``docs/lammps.md``), and so are
the parts of the low-memory path below (``interaction_messages``, ``interaction_update``,
``interaction_gradients``, ``edge_features_gradient``) for such a caller's backward pass.
In eval mode, graphs of ``low_memory_edges`` edges or more get the same results by
recomputation, keeping per-edge tensors of one edge chunk at a time instead of all of them
(``SpinMultiNet._recomputed``, ``docs/performance.md``); training keeps the autograd graph.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet
from e3nn.util.jit import compile_mode

from spinmultinet_ase import keys
from spinmultinet_ase.nn.embedding import SpinEmbedding
from spinmultinet_ase.nn.interaction import EDGE_CHUNK, SpinInteraction, vector_jacobian
from spinmultinet_ase.nn.radial import RadialEmbedding
from spinmultinet_ase.spin import SpinMode

# Edge count from which an inference call recomputes per-edge tensors in its backward pass
# instead of keeping them: slower per call, a fraction of the memory (docs/performance.md).
LOW_MEMORY_EDGES = 2**16


@dataclass(frozen=True)
class ModelConfig:
    """Everything that sets the size and kind of a SpinMultiNet model.

    Attributes:
        species: chemical symbols the model knows, in the order of its species index.
        cutoff: neighbour cutoff radius (Å).
        num_radial_basis: number of Bessel functions of the edge length.
        cutoff_polynomial_p: order of the smooth cutoff envelope.
        channels: multiplicity of each time-even irrep.
        spin_channels: multiplicity of each time-odd irrep.
        lmax: largest angular momentum of edge harmonics and features.
        num_layers: number of interaction blocks.
        radial_hidden: width of the radial MLPs.
        radial_group_size: channels sharing one set of learned radial weights per message
            path (divides ``channels`` and ``spin_channels``); smaller is more expressive and
            slower (``spinmultinet_ase/nn/convolution.py``).
        spin_mode: ``'collinear'`` (moments (N,)), ``'noncollinear'`` ((N, 3), no spin-orbit)
            or ``'noncollinear_soc'`` ((N, 3) axial vectors); see :mod:`spinmultinet_ase.spin`.
        avg_num_neighbors: typical neighbour count; normalises message sums.
        full_moment: guessed moment size (μB) from which on the spin embedding sees every
            guess of one direction exactly alike (``spinmultinet_ase/nn/embedding.py``).
        spin_input: read the initial moments; False gives a spin-blind model (an ablation:
            it predicts zero moments and the same energy for every ordering).
    """

    species: tuple[str, ...] = ("O", "Mn", "Fe", "Co", "Ni")
    cutoff: float = 5.0
    num_radial_basis: int = 8
    cutoff_polynomial_p: int = 6
    channels: int = 32
    spin_channels: int = 16
    lmax: int = 2
    num_layers: int = 3
    radial_hidden: int = 64
    radial_group_size: int = 8
    spin_mode: str = "collinear"
    avg_num_neighbors: float = 40.0
    full_moment: float = 1.0
    spin_input: bool = True

    def __post_init__(self) -> None:
        SpinMode(self.spin_mode)
        if len(set(self.species)) != len(self.species) or not self.species:
            raise ValueError(f"species must be distinct chemical symbols, got {self.species}")
        if self.cutoff <= 0 or self.num_layers < 1 or self.lmax < 0:
            raise ValueError("cutoff must be > 0, num_layers >= 1 and lmax >= 0")
        if (
            self.radial_group_size < 1
            or (self.channels % self.radial_group_size)
            or (self.spin_channels % self.radial_group_size)
        ):
            raise ValueError(
                f"radial_group_size {self.radial_group_size} must divide channels "
                f"({self.channels}) and spin_channels ({self.spin_channels})"
            )
        object.__setattr__(self, "species", tuple(self.species))

    @property
    def mode(self) -> SpinMode:
        return SpinMode(self.spin_mode)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["species"] = list(self.species)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


def hidden_irreps(multiplicity: int, lmax: int, both_parities: bool) -> o3.Irreps:
    """``multiplicity`` copies of each ``l <= lmax``: natural parity only, or both parities."""
    irreps = []
    for degree in range(lmax + 1):
        parities = (1, -1) if both_parities else ((-1) ** degree,)
        irreps += [(multiplicity, (degree, p)) for p in parities]
    return o3.Irreps(irreps)


@compile_mode("script")
class SpinMultiNet(torch.nn.Module):
    """E(3)- and time-reversal-equivariant message-passing potential with spin input.

    Built in float64 whatever torch's default dtype: e3nn computes its Clebsch-Gordan
    coefficients in the default dtype, and float32 coefficients would limit equivariance to
    ~1e-8 even when the model later runs in float64. Cast with ``.to(torch.float32)`` after.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            self._build(config)
        finally:
            torch.set_default_dtype(default_dtype)

    def _build(self, config: ModelConfig) -> None:
        self.config = config
        mode = config.mode
        self.spin_copies = mode.spin_copies
        self.vector = mode.vector
        self.spin_input = config.spin_input
        num_species = len(config.species)
        self.irreps_sh = o3.Irreps.spherical_harmonics(config.lmax)
        self.spherical_harmonics = o3.SphericalHarmonics(
            self.irreps_sh, normalize=True, normalization="component"
        )
        self.radial = RadialEmbedding(
            config.cutoff, config.num_radial_basis, config.cutoff_polynomial_p
        )
        self.embedding = SpinEmbedding(
            num_species,
            config.channels,
            config.spin_channels,
            mode,
            config.full_moment,
        )
        axial = mode.rotates_with_lattice
        irreps_even_hidden = hidden_irreps(config.channels, config.lmax, axial)
        irreps_odd_hidden = hidden_irreps(config.spin_channels, config.lmax, axial)
        irreps_even, irreps_odd = self.embedding.irreps_even, self.embedding.irreps_odd
        layers = []
        for _ in range(config.num_layers):
            layer = SpinInteraction(
                irreps_even,
                irreps_odd,
                irreps_even_hidden,
                irreps_odd_hidden,
                self.irreps_sh,
                config.num_radial_basis,
                config.radial_hidden,
                config.avg_num_neighbors,
                config.radial_group_size,
            )
            layers.append(layer)
            irreps_even, irreps_odd = layer.irreps_even_out, layer.irreps_odd_out
        self.layers = torch.nn.ModuleList(layers)
        self.num_even_scalars = irreps_even.count("0e")
        self.energy_readout = FullyConnectedNet(
            [self.num_even_scalars, config.channels, 1], torch.nn.functional.silu
        )
        spin_irrep = o3.Irrep(mode.odd_irrep)
        self.moment_readout = o3.Linear(irreps_odd, o3.Irreps([(1, spin_irrep)]))
        latent_slices = [
            s
            for (_, ir), s in zip(irreps_odd, irreps_odd.slices(), strict=True)
            if ir == spin_irrep
        ]
        self.latent_start = latent_slices[0].start
        self.latent_stop = latent_slices[0].stop
        self.register_buffer("energy_shift", torch.zeros(num_species))
        self.register_buffer("energy_scale", torch.ones(()))
        self.register_buffer("moment_scale", torch.ones(()))
        # in eval mode, graphs with at least this many edges take the low-memory path
        self.low_memory_edges = LOW_MEMORY_EDGES
        self.edge_chunk = EDGE_CHUNK  # edges per chunk of that path's edge-feature backward

    def forward(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        positions = data[keys.POSITIONS]
        cell = data[keys.CELL]
        batch = data[keys.BATCH]
        species = data[keys.SPECIES]
        edge_index = data[keys.EDGE_INDEX]
        moments = data[keys.INITIAL_MAGMOMS]
        num_graphs = cell.shape[0]

        positions.requires_grad_(True)
        moments.requires_grad_(True)
        strain = torch.zeros(num_graphs, 3, 3, dtype=positions.dtype, device=positions.device)
        strain.requires_grad_(True)
        symmetric = 0.5 * (strain + strain.transpose(1, 2))
        strained_positions = positions + torch.bmm(
            positions.unsqueeze(1), symmetric[batch]
        ).squeeze(1)
        strained_cell = cell + torch.bmm(cell, symmetric)

        centre = edge_index[0]
        shifts = data[keys.EDGE_CELL_SHIFT]
        offsets = torch.bmm(shifts.unsqueeze(1), strained_cell[batch[centre]]).squeeze(1)
        if self.training or edge_index.shape[1] < self.low_memory_edges:
            edge_sh, edge_radial = self.edge_features(strained_positions, edge_index, offsets)
            even, odd = self.embed(species, moments)
            num_nodes = even.shape[0]
            for layer in self.layers:
                even, odd = layer(even, odd, edge_sh, edge_radial, edge_index, num_nodes)
            energies, predicted = self.readout(even, odd, species)
            energy = self._total_energy(energies, data)
            grads = torch.autograd.grad(
                [energy.sum()],
                [positions, strain, moments],
                create_graph=self.training,
                allow_unused=True,
            )
        else:
            vectors = strained_positions[edge_index[1]] - strained_positions[centre] + offsets
            energies, energy, odd, predicted, grads = self._recomputed(
                data, vectors, positions, strain, moments
            )
        latents = odd[..., self.latent_start : self.latent_stop]
        if self.spin_copies == 3:  # (3, N, ...) copies -> spin component last
            latents = latents.permute(1, 2, 0)
        elif self.vector:
            latents = latents.reshape(latents.shape[0], -1, 3)

        forces = grads[0]
        virial = grads[1]
        magnetic = grads[2]
        forces = -forces if forces is not None else torch.zeros_like(positions)
        virial = virial if virial is not None else torch.zeros_like(strain)
        magnetic = -magnetic if magnetic is not None else torch.zeros_like(moments)
        volume = torch.abs(torch.linalg.det(cell))
        periodic = volume > 0
        safe_volume = torch.where(periodic, volume, torch.ones_like(volume))
        stress = virial / safe_volume.view(-1, 1, 1) * periodic.view(-1, 1, 1).to(virial.dtype)
        return {
            keys.ENERGY: energy,
            keys.ENERGIES: energies,
            keys.FORCES: forces,
            keys.STRESS: stress,
            keys.MAGMOMS: predicted,
            keys.MAGNETIC_FORCES: magnetic,
            keys.SPIN_LATENTS: latents,
        }

    # The stages of ``forward``, exported as TorchScript methods for a caller that runs them
    # itself (LAMMPS with per-layer ghost exchange, docs/lammps.md): energies and moments of
    # ``forward`` are readout(layer_L(... layer_1(embed(...), edge_features(...)) ...)).

    @torch.jit.export
    def edge_features(
        self, positions: torch.Tensor, edge_index: torch.Tensor, offsets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Spherical harmonics and radial features of the edges ``r_j - r_i + offset`` (Å).

        Args:
            positions: (N, 3) Cartesian positions.
            edge_index: (2, E) centre ``i`` and neighbour ``j`` of each edge.
            offsets: (E, 3) Cartesian lattice vector added to each edge (zeros for ghosts,
                which are images themselves).
        """
        return self._edge_features(positions[edge_index[1]] - positions[edge_index[0]] + offsets)

    @torch.jit.export
    def embed(
        self, species: torch.Tensor, moments: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Node features before the first layer from species (N,) and moments (N,) or (N, 3)."""
        return self.embedding(species, moments if self.spin_input else moments * 0.0)

    @torch.jit.export
    def interaction(
        self,
        index: int,
        even: torch.Tensor,
        odd: torch.Tensor,
        edge_sh: torch.Tensor,
        edge_radial: torch.Tensor,
        edge_index: torch.Tensor,
        num_receivers: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``index`` (from 0): new features of nodes ``0 .. num_receivers - 1``, whose
        edges are all that is given (:class:`SpinInteraction`): :meth:`interaction_update` of
        :meth:`interaction_messages`."""
        msg_even, msg_odd = self.interaction_messages(
            index, even, odd, edge_sh, edge_radial, edge_index, num_receivers
        )
        return self.interaction_update(index, even, odd, msg_even, msg_odd)

    @torch.jit.export
    def interaction_messages(
        self,
        index: int,
        even: torch.Tensor,
        odd: torch.Tensor,
        edge_sh: torch.Tensor,
        edge_radial: torch.Tensor,
        edge_index: torch.Tensor,
        num_receivers: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Message sums of layer ``index`` onto nodes ``0 .. num_receivers - 1``: the first
        half of :meth:`interaction` (:meth:`SpinInteraction.messages`)."""
        for k, layer in enumerate(self.layers):
            if k == index:
                return layer.messages(even, odd, edge_sh, edge_radial, edge_index, num_receivers)
        raise IndexError(f"layer {index} of a model with {len(self.layers)} layers")

    @torch.jit.export
    def interaction_update(
        self,
        index: int,
        even: torch.Tensor,
        odd: torch.Tensor,
        msg_even: torch.Tensor,
        msg_odd: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """New features of the receivers of layer ``index`` from the old features of all
        nodes and :meth:`interaction_messages`: the second half of :meth:`interaction`."""
        for k, layer in enumerate(self.layers):
            if k == index:
                return layer.update(even, odd, msg_even, msg_odd)
        raise IndexError(f"layer {index} of a model with {len(self.layers)} layers")

    @torch.jit.export
    def interaction_gradients(
        self,
        index: int,
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
        """Backward pass of layer ``index`` by recomputation: gradients by its input features
        (all nodes) from those by its outputs (the receivers), adding the gradients by the
        edge features into ``grad_sh`` and ``grad_radial`` in place
        (:meth:`SpinInteraction.recomputed_gradients`)."""
        for k, layer in enumerate(self.layers):
            if k == index:
                return layer.recomputed_gradients(
                    even,
                    odd,
                    msg_even,
                    msg_odd,
                    grad_even,
                    grad_odd,
                    edge_sh,
                    edge_radial,
                    edge_index,
                    grad_sh,
                    grad_radial,
                )
        raise IndexError(f"layer {index} of a model with {len(self.layers)} layers")

    @torch.jit.export
    def edge_features_gradient(
        self,
        positions: torch.Tensor,
        edge_index: torch.Tensor,
        offsets: torch.Tensor,
        grad_sh: torch.Tensor,
        grad_radial: torch.Tensor,
    ) -> torch.Tensor:
        """Gradient (N, 3) by ``positions`` of ``Σ grad_sh · edge_sh + grad_radial ·
        edge_radial`` for :meth:`edge_features` of the same arguments, edge chunk by edge
        chunk."""
        centre, neighbour = edge_index[0], edge_index[1]
        vectors = (positions[neighbour] - positions[centre] + offsets).detach()
        grad_vectors = self._edge_vectors_gradient(vectors, grad_sh, grad_radial)
        grad = torch.zeros_like(positions).index_add(0, neighbour, grad_vectors)
        return grad.index_add(0, centre, -grad_vectors)

    @torch.jit.export
    def readout(
        self, even: torch.Tensor, odd: torch.Tensor, species: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-atom energies (N,) (eV) and predicted moments (N,) or (N, 3) (μB) from the
        features after the last layer."""
        energies = self.energy_readout(even[:, : self.num_even_scalars]).squeeze(-1)
        energies = energies * self.energy_scale + self.energy_shift[species]
        predicted = self.moment_readout(odd) * self.moment_scale
        if self.spin_copies == 3:  # (3, N, 1) copies -> (N, 3)
            predicted = predicted.squeeze(-1).t()
        elif not self.vector:
            predicted = predicted.squeeze(-1)
        return energies, predicted

    def _edge_features(self, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spherical harmonics (E, d_sh) and radial features (E, n) of edge vectors (E, 3)."""
        return self.spherical_harmonics(vectors), self.radial(torch.linalg.norm(vectors, dim=-1))

    def _edge_vectors_gradient(
        self, vectors: torch.Tensor, grad_sh: torch.Tensor, grad_radial: torch.Tensor
    ) -> torch.Tensor:
        """Gradient (E, 3) by ``vectors`` of ``Σ grad_sh · sh + grad_radial · radial`` for
        :meth:`_edge_features` of ``vectors`` (E, 3), recomputed ``edge_chunk`` edges at a
        time."""
        grad_vectors = torch.zeros_like(vectors)
        chunk = self.edge_chunk
        for chunk_vectors, sh_grad, radial_grad, vectors_grad in zip(
            vectors.split(chunk),
            grad_sh.split(chunk),
            grad_radial.split(chunk),
            grad_vectors.split(chunk),
            strict=True,
        ):
            chunk_vectors = chunk_vectors.detach().requires_grad_(True)
            chunk_sh, chunk_radial = self._edge_features(chunk_vectors)
            chunk_grads = vector_jacobian(
                [chunk_sh, chunk_radial], [chunk_vectors], [sh_grad, radial_grad]
            )
            vectors_grad.copy_(chunk_grads[0])
        return grad_vectors

    def _total_energy(self, energies: torch.Tensor, data: dict[str, torch.Tensor]) -> torch.Tensor:
        """Energy per graph: the sum of the counted (``energy_mask``) atoms' energies."""
        counted = energies
        if keys.ENERGY_MASK in data:
            counted = torch.where(data[keys.ENERGY_MASK], energies, torch.zeros_like(energies))
        energy = torch.zeros(data[keys.CELL].shape[0], dtype=energies.dtype, device=energies.device)
        return energy.index_add(0, data[keys.BATCH], counted)

    def _recomputed(
        self,
        data: dict[str, torch.Tensor],
        vectors: torch.Tensor,
        positions: torch.Tensor,
        strain: torch.Tensor,
        moments: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
        """``forward``'s energies (N,), energy per graph, last odd features, predicted moments
        and gradients with respect to (positions, strain, moments), by recomputation
        (inference only).

        The layers run without autograd, keeping only each layer's input features and message
        sums; the backward pass then goes layer by layer from the last, recomputing each
        layer's node-wise parts and, edge chunk by edge chunk, its messages
        (:meth:`SpinInteraction.recomputed_gradients`). Per-edge tensors of one chunk exist
        at a time instead of those of every chunk of every layer. The edge vectors, with
        their graph to positions and strain, and the embedding are the only autograd graphs
        kept throughout.
        """
        species, edge_index = data[keys.SPECIES], data[keys.EDGE_INDEX]
        with torch.no_grad():
            edge_sh, edge_radial = self._edge_features(vectors)
        even_in, odd_in = self.embed(species, moments)
        stored: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        even, odd = even_in, odd_in
        with torch.no_grad():
            for layer in self.layers:
                msg_even, msg_odd = layer.messages(
                    even, odd, edge_sh, edge_radial, edge_index, even.shape[0]
                )
                stored.append((even, odd, msg_even, msg_odd))
                even, odd = layer.update(even, odd, msg_even, msg_odd)
        even = even.detach().requires_grad_(True)
        energies, predicted = self.readout(even, odd, species)
        energy = self._total_energy(energies, data)
        total = energy.sum()
        grad_even = vector_jacobian([total], [even], [torch.ones_like(total)])[0]
        grad_odd = torch.zeros_like(odd)
        grad_sh, grad_radial = torch.zeros_like(edge_sh), torch.zeros_like(edge_radial)
        for index in range(len(stored) - 1, -1, -1):
            layer_even, layer_odd, msg_even, msg_odd = stored[index]
            grad_even, grad_odd = self.interaction_gradients(
                index,
                layer_even,
                layer_odd,
                msg_even,
                msg_odd,
                grad_even,
                grad_odd,
                edge_sh,
                edge_radial,
                edge_index,
                grad_sh,
                grad_radial,
            )
        grad_vectors = self._edge_vectors_gradient(vectors.detach(), grad_sh, grad_radial)
        weights: list[torch.Tensor | None] = [grad_vectors, grad_even, grad_odd]
        grads = torch.autograd.grad(
            [vectors, even_in, odd_in],
            [positions, strain, moments],
            grad_outputs=weights,
            allow_unused=True,
        )
        return energies.detach(), energy.detach(), odd, predicted, grads


def model_from_state(config: dict[str, Any], weights: dict[str, torch.Tensor]) -> SpinMultiNet:
    """A model built from its config dict, with ``weights`` loaded in their dtype and device."""
    model = SpinMultiNet(ModelConfig.from_dict(config))
    first = next(w for w in weights.values() if w.is_floating_point())
    model.to(device=first.device, dtype=first.dtype).load_state_dict(weights)
    return model
