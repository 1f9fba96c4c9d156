"""The exported stage methods, chained as LAMMPS's per-layer ghost exchange chains them, give
``forward``'s results.

The chain runs on one "rank" that owns every atom of a periodic cell and holds as ghosts the
periodic images its atoms have as neighbours (no lattice shifts, as in LAMMPS). Between
layers the owners' new features are copied to their ghosts; walking back, the gradient on a
ghost's features is added to its owner's (LAMMPS's forward and reverse communication).
Oracle: ``forward`` of the same exported file on the ASE graph with lattice shifts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spinmultinet_ase import keys
from spinmultinet_ase.data.graph import atoms_to_graph
from spinmultinet_ase.export import STAGE_METHODS, export_model, load_model
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.testing.models import random_model

CONVENTIONAL = np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]])


def structure(spin_mode: str):
    """Rattled, sheared AFM-II NiO (64 atoms); random moment directions if non-collinear."""
    atoms = rocksalt_ordered("NiO", "AFM-II", matrix=2 * CONVENTIONAL)
    shear = np.eye(3) + np.array([[0.0, 0.04, 0.02], [0.0, 0.0, 0.03], [0.0, 0.0, 0.0]])
    atoms.set_cell(atoms.cell.array @ shear, scale_atoms=True)
    atoms.rattle(0.05, seed=1)
    if spin_mode != "collinear":
        sizes = atoms.get_initial_magnetic_moments()
        directions = np.random.default_rng(2).normal(size=(len(atoms), 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        atoms.set_array("initial_magmoms", None)
        atoms.set_initial_magnetic_moments(directions * sizes[:, None])
    return atoms


def ghost_graph(graph: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positions of own atoms then ghosts, each node's owner, and the edges from own atoms
    to nodes (ghosts are the periodic images the edges with a lattice shift reach)."""
    positions = graph[keys.POSITIONS]
    cell = graph[keys.CELL][0]
    centre, neighbour = graph[keys.EDGE_INDEX]
    shifts = graph[keys.EDGE_CELL_SHIFT]
    n = len(positions)
    images = torch.cat([neighbour.unsqueeze(1).to(shifts.dtype), shifts], dim=1)
    unique, node = torch.unique(images, dim=0, return_inverse=True)
    is_ghost = (unique[:, 1:] != 0).any(dim=1)
    # own atoms keep their index; ghosts follow in order of first appearance
    ghost_number = torch.cumsum(is_ghost.to(torch.int64), 0) - 1
    node_of_unique = torch.where(is_ghost, n + ghost_number, unique[:, 0].to(torch.int64))
    owners = torch.cat([torch.arange(n), unique[is_ghost, 0].to(torch.int64)])
    ghost_positions = positions[owners[n:]] + unique[is_ghost, 1:] @ cell
    edge_index = torch.stack([centre, node_of_unique[node]])
    return torch.cat([positions, ghost_positions]), owners, edge_index


def node_dim(features: torch.Tensor) -> int:
    """The node axis: 1 for (K, N, D) spin copies, else 0."""
    return 1 if features.dim() == 3 else 0


def to_ghosts(own: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
    """Forward communication: own rows followed by a copy for each ghost, as a new leaf."""
    full = own.detach().index_select(node_dim(own), owners)
    return full.requires_grad_(True)


def to_owners(grad: torch.Tensor, owners: torch.Tensor, n: int) -> torch.Tensor:
    """Reverse communication: each ghost's gradient added to its owner's (own rows only)."""
    dim = node_dim(grad)
    shape = list(grad.shape)
    shape[dim] = n
    return torch.zeros(shape, dtype=grad.dtype).index_add(dim, owners, grad)


def grads(outputs, inputs, grad_outputs) -> list[torch.Tensor]:
    found = torch.autograd.grad(outputs, inputs, grad_outputs, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for g, x in zip(found, inputs, strict=True)]


def chain_results(
    graph: dict,
    positions: torch.Tensor,
    owners: torch.Tensor,
    energy: torch.Tensor,
    energies: torch.Tensor,
    predicted: torch.Tensor,
    grad_positions: torch.Tensor,
    grad_moments: torch.Tensor,
) -> dict[str, np.ndarray]:
    """``forward``'s results from a chain's outputs and its gradients on every node: forces
    and magnetic forces summed onto the owners, the virial over own atoms and ghosts."""
    n = len(graph[keys.POSITIONS])
    forces = -grad_positions
    virial = positions.detach().t() @ forces  # Σ x f over own atoms and ghosts
    virial = 0.5 * (virial + virial.t())
    volume = torch.abs(torch.linalg.det(graph[keys.CELL][0]))
    return {
        keys.ENERGY: energy.detach().numpy(),
        keys.ENERGIES: energies.detach().numpy(),
        keys.FORCES: to_owners(forces, owners, n).numpy(),
        keys.STRESS: (-virial / volume).numpy(),
        keys.MAGNETIC_FORCES: -to_owners(grad_moments, owners, n).numpy(),
        keys.MAGMOMS: predicted.detach().numpy(),
    }


def staged_results(module, graph: dict, num_layers: int) -> dict[str, np.ndarray]:
    """Energy, forces, stress, magnetic forces, energies and moments by the stage methods."""
    positions, owners, edge_index = ghost_graph(graph)
    n = len(graph[keys.POSITIONS])
    positions.requires_grad_(True)
    moments = graph[keys.INITIAL_MAGMOMS].index_select(0, owners).requires_grad_(True)
    species = graph[keys.SPECIES].index_select(0, owners)
    offsets = torch.zeros(edge_index.shape[1], 3, dtype=positions.dtype)
    edge_sh, edge_radial = module.edge_features(positions, edge_index, offsets)
    geometry = [edge_sh.detach().requires_grad_(True), edge_radial.detach().requires_grad_(True)]
    embedded = module.embed(species, moments)
    inputs = [[x.detach().requires_grad_(True) for x in embedded]]
    outputs = []
    for k in range(num_layers):
        outputs.append(module.interaction(k, *inputs[k], *geometry, edge_index, n))
        inputs.append([to_ghosts(x, owners) for x in outputs[k]])
    last = [x.detach().requires_grad_(True) for x in outputs[-1]]
    energies, predicted = module.readout(*last, species[:n])
    energy = energies.sum()

    grad_own = grads([energy], last, None)
    grad_geometry = [torch.zeros_like(x) for x in geometry]
    for k in reversed(range(num_layers)):
        found = grads(list(outputs[k]), inputs[k] + geometry, grad_own)
        grad_geometry = [a + b for a, b in zip(grad_geometry, found[2:], strict=True)]
        grad_inputs = found[:2]  # ghost rows: gradients of copies from their owners
        grad_own = [to_owners(g, owners, n) for g in grad_inputs]
    # the first layer's inputs are embedded on every node, ghosts too: no communication
    (grad_moments,) = grads(list(embedded), [moments], grad_inputs)
    (grad_positions,) = grads([edge_sh, edge_radial], [positions], grad_geometry)

    return chain_results(
        graph, positions, owners, energy, energies, predicted, grad_positions, grad_moments
    )


def recomputed_results(module, graph: dict, num_layers: int) -> dict[str, np.ndarray]:
    """As :func:`staged_results`, with the layers run without autograd, keeping their input
    features and message sums, and the backward pass by recomputation, layer by layer."""
    positions, owners, edge_index = ghost_graph(graph)
    positions = positions.detach()
    n = len(graph[keys.POSITIONS])
    moments = graph[keys.INITIAL_MAGMOMS].index_select(0, owners).requires_grad_(True)
    species = graph[keys.SPECIES].index_select(0, owners)
    offsets = torch.zeros(edge_index.shape[1], 3, dtype=positions.dtype)
    embedded = module.embed(species, moments)
    features = [x.detach() for x in embedded]
    inputs, sums = [], []
    with torch.no_grad():
        edge_sh, edge_radial = module.edge_features(positions, edge_index, offsets)
        for k in range(num_layers):
            if k > 0:
                features = [to_ghosts(x, owners).detach() for x in features]
            inputs.append(features)
            sums.append(
                module.interaction_messages(k, *features, edge_sh, edge_radial, edge_index, n)
            )
            features = module.interaction_update(k, *features, *sums[k])
    last = [x.requires_grad_(True) for x in features]
    energies, predicted = module.readout(*last, species[:n])
    energy = energies.sum()

    grad = grads([energy], last, None)
    grad_sh, grad_radial = torch.zeros_like(edge_sh), torch.zeros_like(edge_radial)
    for k in reversed(range(num_layers)):
        grad = module.interaction_gradients(
            k, *inputs[k], *sums[k], *grad, edge_sh, edge_radial, edge_index, grad_sh, grad_radial
        )
        if k > 0:
            grad = [to_owners(g, owners, n) for g in grad]
    (grad_moments,) = grads(list(embedded), [moments], list(grad))
    grad_positions = module.edge_features_gradient(
        positions, edge_index, offsets, grad_sh, grad_radial
    )

    return chain_results(
        graph, positions, owners, energy, energies, predicted, grad_positions, grad_moments
    )


@pytest.mark.parametrize("chain", [staged_results, recomputed_results])
@pytest.mark.parametrize("spin_mode", ["collinear", "noncollinear", "noncollinear_soc"])
def test_stages_reproduce_forward(spin_mode, chain, tmp_path):
    model = random_model(seed=4, species=("O", "Ni"), spin_mode=spin_mode, full_moment=6.0)
    for module in [model, *model.layers]:  # several edge chunks per pass (changes no result)
        module.edge_chunk = 1000
    export_model(model, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.metadata["stage_methods"] == list(STAGE_METHODS)
    graph = atoms_to_graph(structure(spin_mode), loaded.species, loaded.cutoff, spin_mode)
    expected = loaded.module(dict(graph))
    got = chain(loaded.module, graph, model.config.num_layers)
    assert np.abs(got[keys.MAGNETIC_FORCES]).max() > 1e-3  # the checks are not vacuous
    assert np.abs(got[keys.STRESS]).max() > 1e-4
    for key, value in got.items():
        want = expected[key].detach().numpy().reshape(value.shape)
        assert np.allclose(value, want, rtol=0, atol=1e-10), key


@pytest.mark.parametrize("chain", [staged_results, recomputed_results])
def test_shipped_model_stages_reproduce_forward(chain):
    """The stage code stored in the shipped model file (what the LAMMPS pair style runs) gives
    its ``forward``'s results, to the round-off of its dtype."""
    from spinmultinet_ase.export import default_model_path

    loaded = load_model(default_model_path())
    dtype = getattr(torch, loaded.metadata["dtype"])
    graph = atoms_to_graph(structure("collinear"), loaded.species, loaded.cutoff, dtype=dtype)
    expected = loaded.module(dict(graph))
    got = chain(loaded.module, graph, loaded.metadata["model_config"]["num_layers"])
    for key, value in got.items():
        want = expected[key].detach().numpy().reshape(value.shape)
        scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
        assert np.allclose(value, want, rtol=0, atol=100 * torch.finfo(dtype).eps * scale), key
