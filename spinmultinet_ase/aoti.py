"""AOTInductor packages (``.pt2``) of SpinMultiNet: trace, compile, load.

``torch.export`` cannot export the model as it is (its forward calls ``torch.autograd.grad``
for forces, stress and magnetic forces), so the model is first traced by ``make_fx`` with
symbolic shapes, which writes the backward pass out as plain aten ops, and that graph is
exported with dynamic atom and edge counts and compiled by
``torch._inductor.aoti_compile_and_package``. The package takes the tensors of
:data:`INPUTS` in that order (one structure: ``cell`` is (1, 3, 3); ``energy_mask`` always,
all True for a whole structure) and returns those of :data:`keys.OUTPUTS`. A string map of
metadata travels in the package, readable from Python (:meth:`PackageModule.metadata`) and
from libtorch (``AOTIModelPackageLoader::get_metadata``).

While traced, each layer runs its edges as one chunk (the chunk loop would otherwise be
unrolled for the traced edge count), so a package holds every per-edge tensor at once.
"""

from __future__ import annotations

import copy
import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from spinmultinet_ase import keys
from spinmultinet_ase.data.graph import atoms_to_graph
from spinmultinet_ase.model import SpinMultiNet
from spinmultinet_ase.spin import SpinMode

INPUTS = (
    keys.POSITIONS,
    keys.SPECIES,
    keys.BATCH,
    keys.INITIAL_MAGMOMS,
    keys.EDGE_INDEX,
    keys.EDGE_CELL_SHIFT,
    keys.CELL,
    keys.ENERGY_MASK,
)
# Edge counts up to this are one chunk; the exported program guards on it.
MAX_EDGES = 2**30
# The smallest atom and edge counts a package is exported for (a structure without neighbour
# pairs needs the TorchScript model).
MIN_ATOMS = MIN_EDGES = 1
# Where a package keeps its compiled model (torch's pt2 archive layout).
COMPILED_MODEL = "/data/aotinductor/model/"


def _dynamic_shapes() -> tuple[dict[int, torch.export.Dim] | None, ...]:
    """Per input of :data:`INPUTS`, which axes are the atom or edge count."""
    atoms = torch.export.Dim("atoms", min=MIN_ATOMS)
    edges = torch.export.Dim("edges", min=MIN_EDGES, max=MAX_EDGES)
    axes = {
        keys.POSITIONS: {0: atoms},
        keys.SPECIES: {0: atoms},
        keys.BATCH: {0: atoms},
        keys.INITIAL_MAGMOMS: {0: atoms},
        keys.EDGE_INDEX: {1: edges},
        keys.EDGE_CELL_SHIFT: {0: edges},
        keys.CELL: None,
        keys.ENERGY_MASK: {0: atoms},
    }
    return tuple(axes[name] for name in INPUTS)


class Positional(torch.nn.Module):
    """The model with the tensors of :data:`INPUTS` as arguments and :data:`keys.OUTPUTS` as
    results."""

    def __init__(self, model: SpinMultiNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(dict(zip(INPUTS, tensors, strict=True)))
        return tuple(out[name] for name in keys.OUTPUTS)


def package_inputs(graph: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The tensors a package takes, from a one-structure graph (``atoms_to_graph``); an
    absent ``energy_mask`` counts every atom."""
    if graph[keys.CELL].shape[0] != 1:
        raise ValueError(
            f"an AOTInductor model takes one structure, got {graph[keys.CELL].shape[0]}"
        )
    mask = graph.get(keys.ENERGY_MASK)
    if mask is None:
        mask = torch.ones_like(graph[keys.SPECIES], dtype=torch.bool)
    return tuple(mask if name == keys.ENERGY_MASK else graph[name] for name in INPUTS)


def example_graph(model: SpinMultiNet) -> dict[str, torch.Tensor]:
    """A small periodic structure of the model's species to trace with. Only its sizes
    matter: its atom and edge counts differ from each other and from every fixed size of an
    input (1, 2, 3), so tracing cannot take one for another."""
    config = model.config
    mode = SpinMode(config.spin_mode)
    parameter = next(model.parameters())
    rng = np.random.default_rng(0)
    count = max(5, len(config.species))
    length = config.cutoff
    atoms = Atoms(
        [config.species[i % len(config.species)] for i in range(count)],
        scaled_positions=rng.random((count, 3)),
        cell=np.eye(3) * length,
        pbc=True,
    )
    moments = rng.normal(size=(count, 3) if mode.vector else count)
    atoms.set_initial_magnetic_moments(moments)
    graph = atoms_to_graph(
        atoms,
        config.species,
        config.cutoff,
        spin_mode=mode,
        dtype=parameter.dtype,
        device=parameter.device,
    )
    edges = graph[keys.EDGE_INDEX].shape[1]
    if edges in (0, 1, 2, 3, count):
        raise RuntimeError(f"example structure with {count} atoms has {edges} edges; change it")
    return graph


def trace_program(
    model: SpinMultiNet, graph: dict[str, torch.Tensor] | None = None
) -> torch.export.ExportedProgram:
    """``model`` (eval mode, one edge chunk) as an exported program with dynamic atom and
    edge counts, traced on ``graph`` (default: :func:`example_graph`); ``model`` is unchanged.
    """
    from torch.fx.experimental.proxy_tensor import make_fx

    model = copy.deepcopy(model).eval()
    for layer in model.layers:
        layer.edge_chunk = MAX_EDGES
    example = package_inputs(example_graph(model) if graph is None else graph)
    fresh = [tensor.clone() for tensor in example]
    traced = make_fx(Positional(model), tracing_mode="symbolic", _allow_non_fake_inputs=True)(
        *fresh
    )
    return torch.export.export(traced, example, dynamic_shapes=_dynamic_shapes())


def compile_package(
    program: torch.export.ExportedProgram, path: str | Path, metadata: dict[str, str]
) -> None:
    """Compile ``program`` (from :func:`trace_program`) with AOTInductor into the package
    ``path`` (``*.pt2``), with ``metadata`` in its metadata map."""
    torch._inductor.aoti_compile_and_package(
        program,
        package_path=str(path),
        inductor_configs={"aot_inductor.metadata": metadata},
    )


class PackageModule(torch.nn.Module):
    """A loaded package as a module of the model's interface: a graph dict in, the output
    dict out. It pickles as the bytes of its package file."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = data
        self.runner = _runner(data)

    def forward(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs = package_inputs(data)
        atoms, edges = inputs[0].shape[0], inputs[INPUTS.index(keys.EDGE_INDEX)].shape[1]
        if atoms < MIN_ATOMS or edges < MIN_EDGES:
            raise ValueError(
                f"an AOTInductor model needs at least {MIN_ATOMS} atom and {MIN_EDGES} "
                f"neighbour pair, got {atoms} and {edges}; use the TorchScript model (.pt)"
            )
        return dict(zip(keys.OUTPUTS, self.runner(*inputs), strict=True))

    def metadata(self) -> dict[str, str]:
        """The package's metadata map: what :func:`compile_package` wrote, and AOTInductor's
        own entries (``AOTI_DEVICE_KEY``, ``AOTI_CPU_ISA``, ...)."""
        return self.runner.get_metadata()

    def __reduce__(self):
        return PackageModule, (self.data,)


def _runner(data: bytes):
    """The AOTInductor runner of a package's bytes."""
    # the loader reads a file; torch would copy a buffer to a temporary file itself
    with tempfile.NamedTemporaryFile(suffix=".pt2") as file:
        file.write(data)
        file.flush()
        return torch._inductor.aoti_load_package(file.name)


def read_package(path: str | Path) -> PackageModule:
    """The package at ``path``.

    Raises:
        ValueError: the file is not a zip archive holding a compiled AOTInductor model.
        RuntimeError: AOTInductor cannot load the model in it.
    """
    data = Path(path).read_bytes()
    # checked first: torch's loader would log a misleading "outdated pt2 file" for a foreign one
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ValueError("not a zip archive")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if not any(COMPILED_MODEL in name for name in archive.namelist()):
            raise ValueError(f"no {COMPILED_MODEL} in the archive")
    return PackageModule(data)
