"""Which torch.export / AOTInductor routes work for SpinMultiNet, and how fast the result runs.

The model computes forces, stress and magnetic forces by ``torch.autograd.grad`` inside its
forward, which is what makes export hard. On a small random model (``testing.models``) this
tries, each route on its own:

- ``export_nonstrict``, ``export_strict``: ``torch.export.export`` of the model as it is;
- ``make_fx_export``: :func:`spinmultinet_ase.aoti.trace_program` (``make_fx`` with symbolic
  shapes, which traces the autograd calls into plain aten ops, then ``torch.export.export``
  of that graph with dynamic atom and edge counts);
- ``aoti``: ``export_model(model, "model.pt2")`` (that program compiled by
  ``torch._inductor.aoti_compile_and_package``), loaded back with ``load_model``.

A route "works" if it runs and its outputs on a larger, differently rattled structure (other
atom and edge counts than the traced one) match the eager model's. If ``aoti`` works, the time
per call of the TorchScript export and of the AOTI package, each as ``load_model`` returns it
(graph dict in, output dict out), is measured, interleaved, on a few sizes. Writes
``benchmarks/results/<name>.json`` (atomically), with the machine it ran on.

    python benchmarks/aoti_status.py --name aoti-cpu2
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from spinmultinet_ase import aoti, keys
from spinmultinet_ase.data.graph import atoms_to_graph
from spinmultinet_ase.export import export_model, load_model
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.model import SpinMultiNet, model_from_state
from spinmultinet_ase.outputs import write_text_atomic
from spinmultinet_ase.provenance import machine
from spinmultinet_ase.testing.models import random_model

HERE = Path(__file__).parent


def nio(repeat: int, seed: int, model: SpinMultiNet) -> dict[str, torch.Tensor]:
    """The graph of a rattled AFM-II NiO cell repeated ``repeat`` times along each axis."""
    atoms = rocksalt_ordered("NiO", "AFM-II").repeat((repeat, repeat, repeat))
    atoms.rattle(0.05, seed=seed)
    dtype = next(model.parameters()).dtype
    return atoms_to_graph(atoms, model.config.species, model.config.cutoff, dtype=dtype)


def inputs(graph: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return tuple(tensor.clone() for tensor in aoti.package_inputs(graph))


def deviation(reference: tuple, outputs: tuple | dict) -> float:
    """Largest deviation over the outputs, each relative to its own scale (at least 1)."""
    if isinstance(outputs, dict):
        outputs = tuple(outputs[name] for name in keys.OUTPUTS)
    return max(
        float((a - b).detach().abs().max()) / max(1.0, float(a.detach().abs().max()))
        for a, b in zip(reference, outputs, strict=True)
    )


def attempt(
    name: str, route: Callable[[], tuple], check: tuple, reference: tuple, tolerance: float
) -> dict:
    """Run one route; its result is (artefact, callable): the callable is checked on ``check``."""
    start = time.perf_counter()
    try:
        artefact, run = route()
        dev = deviation(reference, run(*check))
    except Exception as error:  # a route that fails is the result we report
        message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        print(f"{name}: fails ({type(error).__name__})")
        return {
            "route": name,
            "works": False,
            "error": f"{type(error).__name__}: {message}",
            "where": traceback.extract_tb(error.__traceback__)[-1].filename,
            "seconds": time.perf_counter() - start,
            "artefact": None,
        }
    seconds = time.perf_counter() - start
    print(f"{name}: runs, max relative deviation from eager {dev:.2e}, {seconds:.0f} s")
    return {
        "route": name,
        "works": dev < tolerance,
        "max_relative_deviation_from_eager": dev,
        "seconds": seconds,
        "artefact": artefact,
    }


def time_per_call(run: Callable, graph: dict, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        fresh = {name: tensor.clone() for name, tensor in graph.items()}
        start = time.perf_counter()
        run(fresh)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="aoti-status")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 6], help="cell repeats")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per size and format")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", help="a model file (default: a small random float64 model)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.model:
        loaded = load_model(args.model)
        model = model_from_state(loaded.metadata["model_config"], loaded.module.state_dict())
    else:
        model = random_model(seed=0, dtype=torch.float64)
    model.eval()
    dtype = next(model.parameters()).dtype
    tolerance = {torch.float64: 1e-10, torch.float32: 1e-4}[dtype]
    workdir = Path(tempfile.mkdtemp(prefix="aoti-status-"))
    export_model(model, workdir / "model.pt")  # as users get it (edges in chunks)
    single = copy.deepcopy(model)  # the plain exports, like the traced one, in one edge chunk
    for layer in single.layers:
        layer.edge_chunk = aoti.MAX_EDGES
    wrapped = aoti.Positional(single).eval()
    traced_on, checked_on = nio(1, 1, model), nio(2, 7, model)
    reference = wrapped(*inputs(checked_on))

    def plain_export(strict: bool) -> Callable[[], tuple]:
        def route() -> tuple:
            program = torch.export.export(wrapped, inputs(traced_on), strict=strict)
            return program, program.module()

        return route

    def traced_export() -> tuple:
        program = aoti.trace_program(model, traced_on)
        return program, program.module()

    def package() -> tuple:
        export_model(model, workdir / "model.pt2")
        loaded = load_model(workdir / "model.pt2").module
        return loaded, lambda *tensors: loaded(dict(zip(aoti.INPUTS, tensors, strict=True)))

    routes = [
        attempt("export_nonstrict", plain_export(False), inputs(checked_on), reference, tolerance),
        attempt("export_strict", plain_export(True), inputs(checked_on), reference, tolerance),
        attempt("make_fx_export", traced_export, inputs(checked_on), reference, tolerance),
        attempt("aoti", package, inputs(checked_on), reference, tolerance),
    ]

    timings = []
    if routes[-1]["works"]:
        formats = {
            "torchscript": load_model(workdir / "model.pt").module,
            "aoti": routes[-1]["artefact"],
        }
        for repeat in args.sizes:
            graph = nio(repeat, 3, model)
            for run in formats.values():  # warm-up (TorchScript profiles its first calls)
                time_per_call(run, graph, 3)
            times = {name: [] for name in formats}
            for _ in range(args.repeats):  # interleaved, so drifts of a shared machine hit both
                for name, run in formats.items():
                    times[name] += time_per_call(run, graph, 1)
            row = {
                "atoms": int(graph[keys.POSITIONS].shape[0]),
                "edges": int(graph[keys.EDGE_INDEX].shape[1]),
                "torchscript_s": statistics.median(times["torchscript"]),
                "aoti_s": statistics.median(times["aoti"]),
            }
            row["torchscript_over_aoti"] = row["torchscript_s"] / row["aoti_s"]
            print(row)
            timings.append(row)

    for route in routes:
        route.pop("artefact")
    result = {
        "info": {
            "name": args.name,
            "machine": machine(),
            "threads": args.threads,
            "torch": torch.__version__,
            "model": args.model or "testing.models.random_model(seed=0)",
            "dtype": str(dtype).removeprefix("torch."),
            "tolerance": tolerance,
            "command": "python benchmarks/aoti_status.py "
            + " ".join(
                f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in vars(args).items()
                if v is not None
            ),
        },
        "routes": routes,
        "per_call": timings,
    }
    out = HERE / "results" / f"{args.name}.json"
    write_text_atomic(out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
