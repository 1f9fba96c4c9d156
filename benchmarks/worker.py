"""One benchmark measurement in one process: build a potential, time it, print JSON.

Runs inside the potential's own environment (SpinMultiNet's, or a peer's virtualenv made by
``setup_peers.sh``), so it imports only ASE, torch and that potential's package. Models of
the peers are built with random weights at a size matched to SpinMultiNet's (channels,
lmax, layers, cutoff); CHGNet uses the pretrained weights its package ships.

    python benchmarks/worker.py --peer mace --dtype float32 --cells 4 --mode calls
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase import Atoms, units
from ase.build import bulk
from ase.md.verlet import VelocityVerlet

SIZE = {"channels": 32, "lmax": 2, "layers": 3, "cutoff": 5.0}


def nio_afm2(cells: int) -> Atoms:
    """NiO in cells x cells x cells conventional cubic cells (8 atoms each), AFM-II moments."""
    atoms = bulk("NiO", "rocksalt", a=4.17, cubic=True).repeat(cells)
    u = np.rint(2 * atoms.positions / 4.17).astype(int)
    nickel = atoms.numbers == 28
    signs = (-1) ** ((u.sum(axis=1) // 2) % 2)
    atoms.set_initial_magnetic_moments(np.where(nickel, 2.0 * signs, 0.0))
    atoms.rattle(0.02, seed=0)
    return atoms


def spinmultinet_model():
    from spinmultinet_ase.model import ModelConfig, SpinMultiNet

    torch.manual_seed(0)
    config = ModelConfig(
        species=("O", "Ni"),
        channels=SIZE["channels"],
        spin_channels=SIZE["channels"] // 2,
        lmax=SIZE["lmax"],
        num_layers=SIZE["layers"],
        cutoff=SIZE["cutoff"],
    )
    return SpinMultiNet(config)


def spinmultinet(dtype: str):
    from spinmultinet_ase.calculator import SpinMultiNetCalculator
    from spinmultinet_ase.export import export_model

    path = Path(tempfile.mkdtemp()) / "model.pt"
    export_model(spinmultinet_model(), path)
    return SpinMultiNetCalculator(path, dtype=dtype)


def mace(dtype: str):
    # mace first: importing it lets its pinned e3nn 0.4 load its constants on torch >= 2.6
    from mace import modules
    from mace.calculators import MACECalculator

    torch.set_default_dtype(getattr(torch, dtype))
    from e3nn import o3

    torch.manual_seed(0)
    interaction = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=SIZE["cutoff"],
        num_bessel=8,
        num_polynomial_cutoff=6,
        max_ell=SIZE["lmax"],
        interaction_cls=interaction,
        interaction_cls_first=interaction,
        num_interactions=SIZE["layers"],
        num_elements=2,
        hidden_irreps=(SIZE["channels"] * o3.Irreps.spherical_harmonics(SIZE["lmax"]))
        .sort()
        .irreps.simplify(),
        MLP_irreps=o3.Irreps("16x0e"),
        gate=torch.nn.functional.silu,
        atomic_energies=np.zeros(2),
        avg_num_neighbors=40.0,
        atomic_numbers=[8, 28],
        correlation=3,
        atomic_inter_scale=1.0,
        atomic_inter_shift=0.0,
    )
    return MACECalculator(models=model, device="cpu", default_dtype=dtype)


def nequip(dtype: str):
    from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper, NeighborListTransform
    from nequip.integrations.ase import NequIPCalculator
    from nequip.model import NequIPGNNModel
    from nequip.utils.global_state import set_global_state

    set_global_state()
    model = NequIPGNNModel(
        seed=0,
        model_dtype=dtype,
        type_names=["O", "Ni"],
        r_max=SIZE["cutoff"],
        l_max=SIZE["lmax"],
        num_layers=SIZE["layers"],
        num_features=SIZE["channels"],
        avg_num_neighbors=40.0,
    ).eval()
    transforms = [
        ChemicalSpeciesToAtomTypeMapper(model_type_names=["O", "Ni"]),
        NeighborListTransform(r_max=SIZE["cutoff"]),
    ]
    return NequIPCalculator(model, "cpu", transforms=transforms)


def chgnet(dtype: str):
    from chgnet.model import CHGNet, CHGNetCalculator

    if dtype != "float32":
        raise ValueError("CHGNet ships float32 weights only")
    return CHGNetCalculator(CHGNet.load(verbose=False), use_device="cpu")


BUILDERS = {"spinmultinet": spinmultinet, "mace": mace, "nequip": nequip, "chgnet": chgnet}

TRAIN_BATCH = 8

# TorchScript's profiling executor profiles the first call and optimises on the second, so
# the third call is the first in steady state (the same warm-up for every potential)
WARMUP_CALLS = 3


def training_structures(count: int) -> list[Atoms]:
    """Rattled 8-atom NiO cells (the size of the reference data), labelled with noise."""
    rng = np.random.default_rng(2)
    frames = []
    for index in range(count):
        atoms = nio_afm2(1)
        atoms.rattle(0.05, seed=index)
        atoms.info["energy"] = float(rng.normal())
        atoms.arrays["forces"] = rng.normal(size=(len(atoms), 3))
        frames.append(atoms)
    return frames


def _optimiser_step(model: torch.nn.Module, predict, frames: list[Atoms], dtype: str):
    """A training step: ``predict()`` gives (energies, forces) of ``frames`` as one batch; the
    energy + force MSE is minimised by Adam (forces need a double backward)."""
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    energies = torch.tensor([a.info["energy"] for a in frames], dtype=getattr(torch, dtype))
    forces = torch.tensor(np.concatenate([a.arrays["forces"] for a in frames]))

    def step() -> None:
        energy, force = predict()
        loss = ((energy - energies) ** 2).mean() + ((force - forces.to(force.dtype)) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return step


def spinmultinet_train_step(dtype: str):
    """SpinMultiNet's training step on a batch of :data:`TRAIN_BATCH` structures."""
    from spinmultinet_ase import keys
    from spinmultinet_ase.data.graph import atoms_to_graph, collate

    model = spinmultinet_model().to(getattr(torch, dtype)).train()
    frames = training_structures(TRAIN_BATCH)
    graphs = [
        atoms_to_graph(a, model.config.species, model.config.cutoff, dtype=getattr(torch, dtype))
        for a in frames
    ]

    def predict():
        out = model(collate(graphs))
        return out[keys.ENERGY], out[keys.FORCES]

    return _optimiser_step(model, predict, frames, dtype)


def mace_train_step(dtype: str):
    """The same step for MACE (its own data pipeline and model in training mode)."""
    from mace.data import AtomicData, config_from_atoms
    from mace.tools import AtomicNumberTable, torch_geometric

    model = mace(dtype).models[0].train()
    frames = training_structures(TRAIN_BATCH)
    table = AtomicNumberTable([8, 28])
    data = [
        AtomicData.from_config(config_from_atoms(a), z_table=table, cutoff=SIZE["cutoff"])
        for a in frames
    ]

    def predict():
        out = model(torch_geometric.Batch.from_data_list(data).to_dict(), training=True)
        return out["energy"], out["forces"]

    return _optimiser_step(model, predict, frames, dtype)


def nequip_train_step(dtype: str):
    """The same step for NequIP (its ASE data conversion, batched; model in training mode,
    where its force output keeps the graph for the double backward)."""
    from nequip.data import AtomicDataDict

    calc = nequip(dtype)
    model = calc.model.train()
    frames = training_structures(TRAIN_BATCH)
    data = AtomicDataDict.batched_from_list([calc.atoms_to_data(a) for a in frames])

    def predict():
        out = model(dict(data))
        energy = out[AtomicDataDict.TOTAL_ENERGY_KEY].reshape(-1)
        return energy, out[AtomicDataDict.FORCE_KEY]

    return _optimiser_step(model, predict, frames, dtype)


def chgnet_train_step(dtype: str):
    """The same step for CHGNet (its pretrained model in training mode, its graphs)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    model = chgnet(dtype).model.train()
    frames = training_structures(TRAIN_BATCH)
    graphs = [model.graph_converter(AseAtomsAdaptor.get_structure(a)) for a in frames]

    def predict():
        out = model(graphs, task="ef")
        return out["e"], torch.cat(out["f"])

    return _optimiser_step(model, predict, frames, dtype)


TRAIN_STEPS = {
    "spinmultinet": spinmultinet_train_step,
    "mace": mace_train_step,
    "nequip": nequip_train_step,
    "chgnet": chgnet_train_step,
}


def training_rate(step, steps: int) -> float:
    """Structures per second of training steps (batch of :data:`TRAIN_BATCH`)."""
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return TRAIN_BATCH * steps / (time.perf_counter() - start)


def overhead_fraction(calc, atoms: Atoms, repeats: int) -> float:
    """Share of a calculator call spent outside the network (neighbour list, conversions)."""
    from spinmultinet_ase.export import LoadedModel

    network_seconds = []
    module = calc.model.module

    def timed(graph):
        start = time.perf_counter()
        out = module(graph)
        network_seconds.append(time.perf_counter() - start)
        return out

    calc.models = (LoadedModel(module=timed, metadata=calc.model.metadata),)
    total = time_calls(calc, atoms, repeats)
    return 1.0 - float(np.median(network_seconds[WARMUP_CALLS:])) / total


def time_calls(calc, atoms: Atoms, repeats: int) -> float:
    """Median seconds of one energy + forces + stress evaluation at new positions, after
    :data:`WARMUP_CALLS` untimed calls."""
    rng = np.random.default_rng(1)
    atoms.calc = calc
    times = []
    for index in range(WARMUP_CALLS + repeats):
        atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
        start = time.perf_counter()
        atoms.get_potential_energy()
        atoms.get_forces()
        atoms.get_stress()
        if index >= WARMUP_CALLS:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def md_rate(calc, atoms: Atoms, steps: int) -> float:
    """Atom-steps per second of NVE velocity Verlet (forces only, as MD needs)."""
    atoms.calc = calc
    dynamics = VelocityVerlet(atoms, 1.0 * units.fs)
    dynamics.run(WARMUP_CALLS)
    start = time.perf_counter()
    dynamics.run(steps)
    return len(atoms) * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peer", choices=sorted(BUILDERS), required=True)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--cells", type=int, default=4, help="conventional cells per side")
    parser.add_argument(
        "--mode",
        choices=["calls", "md", "train", "overhead"],
        default="calls",
        help="s per call; MD atom-steps/s; training structures/s; calculator overhead share",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    atoms = nio_afm2(args.cells)
    if args.mode == "train":
        step = TRAIN_STEPS[args.peer](args.dtype)
    else:
        calc = BUILDERS[args.peer](args.dtype)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.mode == "train":
        value = training_rate(step, args.repeats)
        atoms = training_structures(1)[0]
    elif args.mode == "overhead":
        value = overhead_fraction(calc, atoms, args.repeats)
    elif args.mode == "calls":
        value = time_calls(calc, atoms, args.repeats)
    else:
        value = md_rate(calc, atoms, args.repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "peer": args.peer,
                "dtype": args.dtype,
                "atoms": len(atoms),
                "mode": args.mode,
                "value": value,
                "peak_rss_mb": peak,
                "rss_after_build_mb": rss_before,
                "threads": args.threads,
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
