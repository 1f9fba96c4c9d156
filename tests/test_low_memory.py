"""The low-memory inference path (recomputation) gives the results of the normal path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spinmultinet_ase import keys
from spinmultinet_ase.data.graph import atoms_to_graph, collate
from spinmultinet_ase.export import export_model, load_model
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.model import SpinMultiNet
from spinmultinet_ase.testing.models import random_model

NORMAL_PATH = 2**62  # no graph has this many edges
COMPARED = (
    keys.ENERGY,
    keys.ENERGIES,
    keys.FORCES,
    keys.STRESS,
    keys.MAGMOMS,
    keys.MAGNETIC_FORCES,
    keys.SPIN_LATENTS,
)


def batch(mode: str) -> dict[str, torch.Tensor]:
    """Two rattled, strained NiO cells with imperfect moment guesses, one graph each, and an
    energy mask that counts two atoms of every three."""
    rng = np.random.default_rng(4)
    graphs = []
    for ordering, seed in (("AFM-II", 1), ("FM", 2)):
        atoms = rocksalt_ordered("NiO", ordering)
        atoms.set_cell(atoms.cell @ (np.eye(3) + 0.02 * rng.normal(size=(3, 3))), True)
        atoms.rattle(0.08, seed=seed)
        guesses = atoms.get_initial_magnetic_moments() * rng.uniform(0.3, 1.2, len(atoms))
        if mode != "collinear":
            directions = rng.normal(size=(len(atoms), 3))
            guesses = guesses[:, None] * directions / np.linalg.norm(directions, axis=1)[:, None]
            atoms.set_array("initial_magmoms", None)
        atoms.set_initial_magnetic_moments(guesses)
        graphs.append(atoms_to_graph(atoms, ("O", "Ni"), 4.5, spin_mode=mode))
    graph = collate(graphs)
    graph[keys.ENERGY_MASK] = torch.arange(len(graph[keys.POSITIONS])) % 3 != 0
    return graph


def outputs(model: torch.nn.Module, graph: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    out = model({key: value.clone() for key, value in graph.items()})
    return {key: out[key].detach().numpy() for key in COMPARED}


def set_chunks(model: SpinMultiNet, chunk: int) -> None:
    model.edge_chunk = chunk
    for layer in model.layers:
        layer.edge_chunk = chunk


def assert_same(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    for key in COMPARED:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-10, atol=1e-10, err_msg=key)


@pytest.mark.parametrize("mode", ["collinear", "noncollinear", "noncollinear_soc"])
def test_low_memory_path_equals_normal_path(mode: str):
    """Energies, forces, stress, magnetic forces, moments and latents agree to 1e-10 with an
    energy mask, two graphs, and edge chunks far smaller than the edge count."""
    model = random_model(species=("O", "Ni"), spin_mode=mode)
    graph = batch(mode)
    assert graph[keys.EDGE_INDEX].shape[1] > 5 * 29
    model.low_memory_edges = NORMAL_PATH
    expected = outputs(model, graph)
    model.low_memory_edges = 0
    for chunk in (29, 10**6):
        set_chunks(model, chunk)
        assert_same(outputs(model, graph), expected)


def test_low_memory_path_is_taken_from_the_edge_count_in_eval_mode_only():
    """In eval mode the low-memory path returns energies without an autograd graph; in
    training mode (and below the edge count) the normal path's create_graph results."""
    model = random_model(species=("O", "Ni"))
    graph = batch("collinear")
    edges = graph[keys.EDGE_INDEX].shape[1]
    model.low_memory_edges = edges
    assert model(dict(graph))[keys.ENERGY].grad_fn is None
    model.low_memory_edges = edges + 1
    assert model(dict(graph))[keys.ENERGY].grad_fn is not None
    model.low_memory_edges = 0
    model.train()
    assert model(dict(graph))[keys.FORCES].grad_fn is not None


@pytest.mark.parametrize("mode", ["collinear", "noncollinear"])
def test_exported_low_memory_path_equals_eager_normal_path(mode: str, tmp_path):
    model = random_model(species=("O", "Ni"), spin_mode=mode)
    set_chunks(model, 29)
    graph = batch(mode)
    model.low_memory_edges = NORMAL_PATH
    expected = outputs(model, graph)
    model.low_memory_edges = 0
    export_model(model, tmp_path / "model.pt")
    scripted = load_model(tmp_path / "model.pt").module
    assert scripted.low_memory_edges == 0
    assert_same(outputs(scripted, graph), expected)
