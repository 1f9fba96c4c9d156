"""The fast edge convolution equals e3nn's channel-wise tensor product it replaces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.nn.convolution import (
    EdgeConvolution,
    coupling_paths,
    to_channel_major,
    to_irreps_layout,
)
from spinmultinet_ase.testing.models import as_loaded, random_model
from spinmultinet_ase.testing.symmetry import evaluate

SH = o3.Irreps.spherical_harmonics(2)


def e3nn_reference(
    irreps_in: o3.Irreps, irreps_target: o3.Irreps, channels: int
) -> tuple[o3.TensorProduct, list]:
    """e3nn 'uvu' tensor product with one weight per path and channel, paths summed into
    their output irrep: the textbook form of the same convolution."""
    paths, irreps_out = coupling_paths(irreps_in, SH, irreps_target)
    instructions = [(i, j, k, "uvu", True) for i, j, k in paths]
    tp = o3.TensorProduct(
        o3.Irreps([(channels, ir) for _, ir in irreps_in]),
        SH,
        o3.Irreps([(channels, ir) for _, ir in irreps_out]),
        instructions,
        shared_weights=False,
        internal_weights=False,
    )
    return tp, paths


@pytest.fixture
def float64_default():
    """e3nn computes Clebsch-Gordan coefficients in torch's default dtype."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize(
    ("irreps_in", "irreps_target"),
    [
        ("0e", "0e+1o+2e"),
        ("0e+1o+2e", "0e+1o+2e"),
        ("1e", "0e+0o+1e+1o+2e+2o"),
        ("0e+0o+1e+1o+2e+2o", "0e+0o+1e+1o+2e+2o"),
    ],
)
@pytest.mark.parametrize("group_size", [1, 3, 6])
def test_matches_e3nn_tensor_product(
    irreps_in: str, irreps_target: str, group_size: int, float64_default
):
    torch.manual_seed(0)
    dtype = torch.float64
    irreps_in, irreps_target = o3.Irreps(irreps_in), o3.Irreps(irreps_target)
    channels, num_nodes, num_edges = 6, 5, 17
    conv = EdgeConvolution(irreps_in, SH, irreps_target, channels, group_size).to(dtype)
    tp, paths = e3nn_reference(irreps_in, irreps_target, channels)
    dims_in = [ir.dim for _, ir in irreps_in]
    dims_out = [ir.dim for _, ir in conv.irreps_out]

    x = torch.randn(num_nodes, channels * irreps_in.dim, dtype=dtype)
    edge_sh = o3.spherical_harmonics(SH, torch.randn(num_edges, 3, dtype=dtype), True)
    centre = torch.randint(0, num_nodes, (num_edges,))
    neighbour = torch.randint(0, num_nodes, (num_edges,))
    weights = torch.randn(num_edges, conv.num_groups, len(paths), dtype=dtype)

    x_channel_major = to_channel_major(x, channels, dims_in)
    messages_fast = conv.messages(
        x_channel_major.index_select(0, neighbour), conv.edge_matrices(edge_sh, weights)
    )
    fast = conv.zeros(num_nodes, x_channel_major).index_add_(0, centre, messages_fast)
    # e3nn weights: per path, one per channel, the group's weight repeated over its channels
    group_of_channel = torch.arange(channels) // group_size
    per_channel = weights[:, group_of_channel, :].transpose(1, 2).reshape(num_edges, -1)
    messages = tp(x[neighbour], edge_sh, per_channel)
    reference = torch.zeros(num_nodes, messages.shape[1], dtype=dtype).index_add(
        0, centre, messages
    )
    torch.testing.assert_close(to_irreps_layout(fast, dims_out), reference, rtol=1e-10, atol=1e-12)


def test_layouts_round_trip():
    x = torch.randn(4, 5 * 9)
    dims = [1, 3, 5]
    channel_major = to_channel_major(x, 5, dims)
    assert channel_major.shape == (4, 5, 9)
    # channel 2's vector (1o) lives at e3nn columns 5 + 3·2 ... 5 + 3·2 + 3
    torch.testing.assert_close(channel_major[:, 2, 1:4], x[:, 11:14])
    torch.testing.assert_close(to_irreps_layout(channel_major, dims), x)


def test_group_size_must_divide_channels():
    with pytest.raises(ValueError, match="must divide"):
        EdgeConvolution(o3.Irreps("0e"), SH, o3.Irreps("0e+1o"), channels=6, group_size=4)


def test_edge_chunks_change_no_output(nio_afm2):
    """Processing the edges of each layer in chunks (radial MLP and convolution alike) gives
    the energies, forces, stress, moments and spin latents of one pass over all edges."""
    model = random_model()
    calc = SpinMultiNetCalculator(as_loaded(model))

    def outputs(chunk: int) -> dict:
        for layer in model.layers:
            layer.edge_chunk = chunk
        return evaluate(calc, nio_afm2)

    whole = outputs(10**6)
    for chunk in (1, 37, 200):
        for key, value in outputs(chunk).items():
            np.testing.assert_allclose(value, whole[key], rtol=1e-10, atol=1e-12, err_msg=key)
