"""The ``spinmultinet`` command: one entry point, one subcommand per task."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from spinmultinet_ase.outputs import (
    atomic_path,
    check_outputs,
    partial_of,
    writable_folder,
    write_text_atomic,
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (and exit code 2)."""

    model_files: list[str] | None = None  # what --model took, as it parses (_ModelFiles)

    def error(self, message: str) -> None:  # type: ignore[override]
        if self.model_files and message.endswith("required: target"):
            message = (
                f"no structure given: --model takes every argument after it as a model file "
                f"(here {' '.join(self.model_files)}); give the structure before --model "
                f"({self.prog} NiO --model a.pt b.pt) or last, after -- (... --model a.pt b.pt -- "
                "NiO)"
            )
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _ModelFiles(argparse.Action):
    """Stores ``--model``'s files and tells the parser, whose error then names them if they
    took the structure too."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        parser.model_files = values


def _structures(args: argparse.Namespace) -> None:
    from ase.io import write

    from spinmultinet_ase.dft.ordering_structures import ordering_structures
    from spinmultinet_ase.dft.random_orderings import random_ordering_structures
    from spinmultinet_ase.dft.structures import (
        extension_strains,
        reference_structures,
        rhombohedral_series,
        rocksalt_names,
    )
    from spinmultinet_ase.workflows.inputs import check_count

    check_count(args.seed, "--seed", 0)
    recipes = [
        args.orderings_pool,
        args.random_orderings is not None,
        bool(args.rhombohedral_strains),
    ]
    if sum(recipes) > 1:
        raise ValueError(
            "give one of --orderings-pool, --random-orderings and --rhombohedral-strains"
        )
    if args.random_orderings is not None:
        count = check_count(args.random_orderings, "--random-orderings")
    if args.rhombohedral_strains:
        strains = extension_strains(args.rhombohedral_strains)
        materials = rocksalt_names(args.materials, "--rhombohedral-strains")
    check_outputs([args.output], args.overwrite)
    if args.random_orderings is not None:
        frames = random_ordering_structures(tuple(args.materials), count, seed=args.seed)
    elif args.rhombohedral_strains:
        frames = [a for m in materials for a in rhombohedral_series(m, strains)]
    else:
        recipe = ordering_structures if args.orderings_pool else reference_structures
        frames = recipe(tuple(args.materials), seed=args.seed)
    with atomic_path(args.output) as temporary:
        write(temporary, frames, format="extxyz")
    print(f"wrote {len(frames)} structures to {args.output}")


def _add_overwrite(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--overwrite", action="store_true", help="replace output files that exist already"
    )


def _existing_file(path: str, what: str) -> Path:
    """``path`` if it is a file, else a FileNotFoundError naming ``what`` it should be."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    return Path(path)


def _read_frames(path: str) -> list:
    """All frames of a structure file, with a one-line error when it cannot be read."""
    from ase.io import read

    _existing_file(path, "structure file")
    try:
        return read(path, index=":")
    except Exception as error:  # ASE raises many types for unreadable files
        raise ValueError(
            f"cannot read structures from {path} ({type(error).__name__}: {error})"
        ) from None


def _label(args: argparse.Namespace) -> None:
    from spinmultinet_ase.dft.label import label_file

    label_file(
        args.input,
        args.output,
        log_dir=args.log_dir,
        limit=args.limit,
        max_scf_steps=args.max_scf_steps,
    )


def _export(args: argparse.Namespace) -> None:
    from spinmultinet_ase.checkpoint import model_from_checkpoint
    from spinmultinet_ase.export import (
        DTYPES,
        export_model,
        is_aoti_path,
        is_model_file,
        reexport_model,
    )

    check_outputs([args.output], args.overwrite)
    with atomic_path(args.output) as temporary:
        if is_model_file(args.source) or is_aoti_path(args.source):  # a .pt2 is refused there
            reexport_model(args.source, temporary, DTYPES[args.dtype] if args.dtype else None)
        else:
            model = model_from_checkpoint(args.source, weights=args.weights)
            export_model(model.to(DTYPES[args.dtype or "float64"]), temporary)
    print(f"exported {args.source} to {args.output}")


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a training checkpoint or a model file to a model file: TorchScript "
        "(.pt) or, for OUTPUT ending in .pt2, an AOTInductor package compiled for this machine",
    )
    p.add_argument("source", help="checkpoint written by training, or a TorchScript model file")
    p.add_argument("output", help="model file to write (.pt, or .pt2 for AOTInductor)")
    p.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        help="default: float64 from a checkpoint, the model file's own from a model file",
    )
    p.add_argument("--weights", default="model_state", help="checkpoint entry with the weights")
    _add_overwrite(p)
    p.set_defaults(run=_export)


def _train(args: argparse.Namespace) -> None:
    from spinmultinet_ase.train import distributed
    from spinmultinet_ase.train.config import load_config
    from spinmultinet_ase.train.trainer import Trainer

    config = load_config(args.config)
    if args.data:
        data = dataclasses.replace(config.data, path=tuple(args.data))
        config = dataclasses.replace(config, data=data)
    if args.max_epochs is not None:
        optim = dataclasses.replace(config.optim, max_epochs=args.max_epochs)
        config = dataclasses.replace(config, optim=optim)
    if args.init_from:
        config = dataclasses.replace(config, init_from=args.init_from)
    world = distributed.init_from_env()
    try:
        trainer = Trainer(
            config, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite
        )
        summary = trainer.run()
    finally:
        distributed.shutdown()
    if world.main:
        print(json.dumps(summary["metrics"], indent=2))
        print(f"stopped ({summary['stopped_because']}); model: {config.output_dir}/model.pt")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a YAML config (see configs/); on several processes with "
        "torchrun --nproc_per_node N --no-python spinmultinet train CONFIG",
    )
    p.add_argument("config", help="training config (YAML)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUTPUT_DIR from its last.ckpt (a folder without a run "
        "starts one)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in an OUTPUT_DIR that holds a run, deleting its checkpoints, metrics "
        "and model (without it, such a folder is refused)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--data",
        nargs="+",
        metavar="FILE",
        help="labelled extxyz file(s) to train on instead of the config's data.path (e.g. a "
        "frozen copy of a file a DFT job is still appending to)",
    )
    p.add_argument(
        "--max-epochs",
        type=_positive_int,
        help="train at most this many epochs instead of the config's optim.max_epochs (e.g. "
        "an ablation given the epochs of the model it is compared with, a budget that does "
        "not depend on the machine's speed)",
    )
    p.add_argument(
        "--init-from",
        help="fine-tune: start from this model file or training checkpoint instead of the "
        "config's init_from (species of the config it lacks are added)",
    )
    p.set_defaults(run=_train)


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"needs a positive whole number, got {text!r}")
    return int(text)


def _evaluate(args: argparse.Namespace) -> None:
    from spinmultinet_ase.train.evaluate import evaluate_model, format_report

    check_outputs([Path(args.output_dir) / "evaluation.json"], args.overwrite)
    _existing_file(args.model, "model file")
    _existing_file(args.data, "labelled data")
    if args.split_of is not None:
        _existing_file(args.split_of, "model file")
    result = evaluate_model(
        args.model,
        args.data,
        args.output_dir,
        tuple(args.test_cells),
        args.split_of,
        args.known_species_only,
    )
    print(format_report(result))
    print(f"details and parity plots in {args.output_dir}/")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="errors, parity plots and ordering energies of a model")
    p.add_argument("model", help="model file (.pt)")
    p.add_argument("data", help="labelled extxyz")
    p.add_argument("--output-dir", default="evaluation", help="where to write JSON and PNGs")
    p.add_argument(
        "--test-cells",
        nargs="+",
        default=[],
        metavar="CELL",
        help="cell names the model never trained on, held out in this evaluation on top of "
        "its training config's (e.g. conv112-16 for a model trained before the ordering pool)",
    )
    p.add_argument(
        "--split-of",
        metavar="MODEL",
        help="split the data by this other model's training config (its test frames are the "
        "test split), e.g. a baseline model on a new model's test frames",
    )
    p.add_argument(
        "--known-species-only",
        action="store_true",
        help="leave out the frames with an element the model lacks, counted per material in "
        "the report and evaluation.json (without it they are an error)",
    )
    _add_overwrite(p)
    p.set_defaults(run=_evaluate)


def _model_card(args: argparse.Namespace) -> None:
    from spinmultinet_ase.reference.model_card import write_model_card

    output = Path(args.output_dir)
    check_outputs([output / "card.md", output / "metrics.json"], args.overwrite)
    for run_dir in [args.run_dir, *(item.partition("=")[2] for item in args.ablation)]:
        if run_dir and not Path(run_dir).is_dir():
            raise FileNotFoundError(f"no training run folder at {run_dir}")
    ablations = {}
    for item in args.ablation:
        name, sep, path = item.partition("=")
        if not sep:
            raise ValueError(f"--ablation takes NAME=RUN_DIR, got {item!r}")
        ablations[name] = path
    if args.config:
        _existing_file(args.config, "training config")
    if args.baseline_run and not Path(args.baseline_run).is_dir():
        raise FileNotFoundError(f"no baseline run folder at {args.baseline_run}")
    print(
        write_model_card(
            args.run_dir,
            args.output_dir,
            ablations,
            args.config,
            args.compare_to,
            args.baseline_run,
        )
    )


def _add_model_card(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model-card", help="write a trained model's card from its evaluation")
    p.add_argument("run_dir", help="training output folder (summary.json, evaluation/, model.pt)")
    p.add_argument("output_dir", help="where card.md and metrics.json go (e.g. models/NAME)")
    p.add_argument(
        "--ablation",
        action="append",
        default=[],
        metavar="NAME=RUN_DIR",
        help="an ablation run to report next to the model (repeatable)",
    )
    p.add_argument(
        "--config",
        help="the training config the model was trained from: its data.path files are the "
        "card's reference data (where training read a frozen copy of them)",
    )
    p.add_argument(
        "--compare-to",
        metavar="METRICS_JSON",
        help="a baseline model's metrics.json (e.g. models/spinmultinet-mno-nio/metrics.json): "
        "the card and metrics.json compare each of its rows with this model, not worse or not",
    )
    p.add_argument(
        "--baseline-run",
        metavar="RUN_DIR",
        help="with --compare-to: the baseline model evaluated on this model's test frames "
        "(RUN_DIR/evaluation/ from `spinmultinet evaluate BASELINE_MODEL DATA --split-of "
        "THIS_MODEL --known-species-only`, and unseen_orderings_heisenberg.json): each row "
        "then also has that like-for-like value, and its verdict is taken on it",
    )
    _add_overwrite(p)
    p.set_defaults(run=_model_card)


def _yardsticks(args: argparse.Namespace) -> None:
    from spinmultinet_ase.magnetism.yardsticks import yardstick_table

    check_outputs([args.output], args.overwrite)
    table = yardstick_table([atoms for path in args.data for atoms in _read_frames(path)])
    write_text_atomic(args.output, json.dumps(table, indent=2))
    print(json.dumps(table, indent=2))
    measured = {key.split()[0] for key in table}
    for material in args.materials:
        if material not in measured:
            print(f"{material}: missing, no yardstick frames in {', '.join(args.data)}")


def _add_yardsticks(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "yardsticks", help="DFT ordering energies, exchange constants, E(δ) from labelled data"
    )
    p.add_argument("data", nargs="+", help="labelled extxyz files with the yardstick frames")
    p.add_argument("output", help="JSON file to write")
    p.add_argument(
        "--materials",
        nargs="+",
        default=[],
        metavar="MATERIAL",
        help="materials expected: those the data has no yardstick frames of are named missing",
    )
    _add_overwrite(p)
    p.set_defaults(run=_yardsticks)


def _calculator(args: argparse.Namespace):
    """The calculator of a structure command (``--model``, ``--dtype``): one model, or a
    committee of several distinct files (one model twice would shrink the spread); with a
    warning when ``target`` names a material the model records it was not trained on."""
    from spinmultinet_ase.calculator import SpinMultiNetCalculator
    from spinmultinet_ase.workflows.inputs import warn_if_untrained

    models = args.model or [None]  # None: the shipped model
    calc = SpinMultiNetCalculator(models[0] if len(models) == 1 else models, dtype=args.dtype)
    seen: dict[str, int] = {}
    for number, record in enumerate(calc.model_files, start=1):
        first = seen.setdefault(record["sha256"], number)
        if first != number:
            raise ValueError(
                f"committee model {number} ({models[number - 1]}) is model {first} again (same "
                "content): a committee's spread needs models trained apart"
            )
    warn_if_untrained(args.target, calc)
    return calc


def _add_optimizer_options(p: argparse.ArgumentParser) -> None:
    from spinmultinet_ase.workflows.relax import DEFAULT_FMAX, OPTIMIZERS

    p.add_argument("--fmax", type=float, default=DEFAULT_FMAX, help="force threshold (eV/Å)")
    p.add_argument("--steps", type=int, default=500, help="maximum optimiser steps")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="BFGS")


def _add_model_options(p: argparse.ArgumentParser, dtype: str) -> None:
    p.add_argument(
        "--model",
        nargs="+",
        action=_ModelFiles,
        default=None,
        metavar="FILE",
        help="model file (default: the shipped model), or several distinct ones for a "
        "committee (same species, cutoff and spin mode; --model takes every argument after "
        "it, so give the structure first, or last after --): the "
        "results are the members' mean, reported with their spread, the population standard "
        "deviation over the members (fields and columns: docs/conventions.md, Committees)",
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default=dtype,
        help=f"compute precision (default: {dtype})",
    )


def _orderings(args: argparse.Namespace) -> list[str] | None:
    """``--orderings`` as given (None when absent); an empty list (``--orderings=--``) refused."""
    if args.orderings == []:
        raise ValueError("--orderings: give at least one ordering, or leave the option out")
    return args.orderings


def _scan(args: argparse.Namespace) -> None:
    from spinmultinet_ase.magnetism.montecarlo import MONTE_CARLO_SWEEPS
    from spinmultinet_ase.workflows.inputs import parse_magnitudes, parse_supercell
    from spinmultinet_ase.workflows.scan import (
        SCAN_OUTPUTS,
        format_exchange,
        format_scan_table,
        run_scan,
        write_scan,
    )

    if args.monte_carlo_sweeps is not None and not args.monte_carlo:
        raise ValueError("--monte-carlo-sweeps needs --monte-carlo")
    check_outputs([Path(args.output_dir) / name for name in SCAN_OUTPUTS], args.overwrite)
    orderings = _orderings(args)
    outcome = run_scan(
        args.target,
        _calculator(args),
        orderings=orderings,
        supercell=parse_supercell(args.supercell),
        magnitudes=parse_magnitudes(args.magnitudes),
        num_shells=args.shells,
        monte_carlo=args.monte_carlo,
        monte_carlo_sweeps=args.monte_carlo_sweeps or MONTE_CARLO_SWEEPS,
        fmax=args.fmax,
        steps=args.steps,
        optimizer=args.optimizer,
        progress=not args.quiet,
    )
    print(format_scan_table(outcome.results))
    if outcome.exchange:
        print(format_exchange(outcome.exchange))
    else:
        print(f"no exchange fit: {outcome.no_fit_reason}")
    write_scan(outcome.results, outcome.relaxed, outcome.exchange, args.output_dir)
    print(f"{', '.join(SCAN_OUTPUTS)} in {args.output_dir}/")


def _add_scan(sub: argparse._SubParsersAction) -> None:
    from spinmultinet_ase.magnetism.montecarlo import MONTE_CARLO_SWEEPS

    p = sub.add_parser(
        "scan",
        help="rank collinear orderings: single points, relaxations, exchange constants, T_N",
        description="Compare collinear magnetic orderings of a rocksalt oxide (give its "
        "formula, e.g. NiO) or of any crystal (a structure file: CIF, POSCAR, extxyz...). "
        "Each ordering is evaluated at its ideal geometry and relaxed (positions and cell); "
        "energies are ranked per magnetic ion and per formula unit, and a Heisenberg model is "
        "fitted on the crystal's shells of magnetic neighbours. Magnetic sites are the atoms "
        "with a nonzero initial moment in the file, else those with a default moment guess. "
        "A material given by name (a rocksalt or corundum formula) has its observed ground "
        "state marked * in the table (observed_ground_state in scan.csv and scan.json). "
        "With a committee (--model A.pt B.pt ...), each relative energy is followed by ± the "
        "population std over the members of each member's own energy relative to the "
        "ordering lowest in the committee's mean (correlated members: not the two energies' "
        "spreads combined); the CSV and JSON add these (*_relative_*_std) and the spread of "
        "the members' energies (ideal_energy_std, relaxed_energy_std, eV/f.u.). The exchange "
        "is then fitted once more per member, to its own energies at the ideal geometries: "
        "each J and the mean-field temperature are followed by ± the std of the members' "
        "(JS2_meV_std, mean_field_temperature_K_std in scan.json).",
    )
    _add_structure_options(
        p,
        orderings_help="orderings by name or pattern: FM, the rocksalt names (AFM-I AFM-II "
        "AFM-III), or one letter u/d per magnetic site of the supercell (default: a rocksalt "
        "formula's four named orderings, else every symmetry-distinct ordering of the supercell)",
    )
    p.add_argument(
        "--shells",
        type=int,
        default=2,
        help="shells of magnetic neighbours in the exchange fit (default 2)",
    )
    _add_optimizer_options(p)
    p.add_argument("--output-dir", default="scan", help="where to write CSV/JSON/PNG")
    p.add_argument(
        "--monte-carlo",
        action="store_true",
        help="also estimate T_N by classical Monte Carlo of the fitted Heisenberg model; with "
        "a committee also of each member's fit, for the spread of T_N "
        "(monte_carlo_neel_temperature_K_std; each member's run costs as much as the mean's "
        "and has a seed of its own, so the spread includes the Monte Carlo's own noise: "
        "docs/tutorials/orderings.md)",
    )
    p.add_argument(
        "--monte-carlo-sweeps",
        type=_positive_int,
        metavar="N",
        help="with --monte-carlo: measured sweeps per temperature and lattice size, after "
        f"N/2 equilibration sweeps (default {MONTE_CARLO_SWEEPS}); the run time grows as N, the "
        "seed-to-seed scatter of T_N falls with it (docs/tutorials/orderings.md)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_overwrite(p)
    _add_model_options(p, "float64")
    p.set_defaults(run=_scan)


def _md(args: argparse.Namespace) -> None:
    from spinmultinet_ase.workflows.inputs import in_spin_mode, single_structure
    from spinmultinet_ase.workflows.md import SUMMARY_FILES, check_md_options, run_md

    options = {
        "ensemble": args.ensemble,
        "temperature_K": args.temperature,
        "steps": args.steps,
        "timestep_fs": args.timestep,
        "pressure_GPa": args.pressure,
        "interval": args.interval,
        "seed": args.seed,
    }
    check_md_options(**options)
    output = Path(args.output_dir)
    written = [output / name for name in (args.trajectory, args.log)]  # as the run goes
    # an interrupted run's partial files are a result too: replaced only when asked
    outputs = [*written, *map(partial_of, written), *(output / name for name in SUMMARY_FILES)]
    check_outputs(outputs, args.overwrite)
    atoms = single_structure(args.target, args.ordering, args.supercell, args.magnitudes)
    calc = _calculator(args)
    writable_folder(output, "--output-dir")  # only now: a bad model leaves nothing behind
    try:
        summary = run_md(
            in_spin_mode(atoms, calc.model.spin_mode),
            calc,
            trajectory=str(written[0]),
            logfile=str(written[1]),
            progress=not args.quiet,
            summary_dir=output,
            **options,
        )
    except KeyboardInterrupt:
        # only those still there: after the run's end they are renamed to the final names
        kept = " and ".join(str(path) for path in map(partial_of, written) if path.exists())
        if kept:
            print(f"spinmultinet md: the frames so far are in {kept}", file=sys.stderr)
        raise
    print(
        f"{summary.ensemble.upper()}: {summary.time_ps:.3f} ps, <T> = "
        f"{summary.mean_temperature_K:.0f} K, total-energy drift "
        f"{summary.energy_drift_meV_per_atom_per_ps:.3g} meV/atom/ps"
    )
    trace = summary.trace
    if trace.energy_std_per_atom is not None:
        print(
            "committee spread over the sampled frames: energy up to "
            f"{1000 * max(trace.energy_std_per_atom):.2f} meV/atom, largest per-atom force "
            f"spread up to {max(trace.max_force_std):.4f} eV/Å (frames' info and {args.log})"
        )
    print(f"{args.trajectory}, {args.log}, md.json (summary, time series) and md.png in {output}/")


def _relax(args: argparse.Namespace) -> None:
    from ase.io import write

    from spinmultinet_ase.magnetism.rocksalt import ROCKSALT_LATTICE_CONSTANTS
    from spinmultinet_ase.workflows.inputs import in_spin_mode, single_structure
    from spinmultinet_ase.workflows.relax import check_relax_options, relax, relaxation_report
    from spinmultinet_ase.workflows.spread import spread_of, store_spread

    options = {
        "fmax": args.fmax,
        "steps": args.steps,
        "optimizer": args.optimizer,
        "relax_cell": not args.fixed_cell,
        "pressure_GPa": args.pressure,
    }
    check_relax_options(**options)
    check_outputs([args.output, *([args.trajectory] if args.trajectory else [])], args.overwrite)
    atoms = single_structure(args.target, args.ordering, args.supercell, args.magnitudes)
    calc = _calculator(args)
    atoms = in_spin_mode(atoms, calc.model.spin_mode)
    atoms.calc = calc
    if args.trajectory:
        writable_folder(Path(args.trajectory).parent, "--trajectory folder")
    relaxed, converged = relax(
        atoms,
        atoms.calc,
        logfile=None if args.quiet else "-",
        trajectory=args.trajectory,
        **options,
    )
    store_spread(relaxed, spread_of(relaxed))
    with atomic_path(args.output) as temporary:
        write(temporary, relaxed, format="extxyz")
    cubic_parent = args.target in ROCKSALT_LATTICE_CONSTANTS
    print(relaxation_report(atoms, relaxed, converged, args.fmax, cubic_parent))
    spread = " and the committee's spread" if "energy_std" in relaxed.info else ""
    print(
        f"relaxed structure with its initial_magmoms and predicted results{spread} in {args.output}"
    )


def _add_relax(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "relax",
        help="relax positions and cell (BFGS or FIRE, ASE's FrechetCellFilter)",
        description="Relax one structure at fixed magnetic order: a rocksalt formula in a named "
        "ordering, or a structure file with its initial_magmoms.",
    )
    _add_structure_options(p)
    _add_optimizer_options(p)
    p.add_argument("--fixed-cell", action="store_true", help="relax the positions only")
    p.add_argument("--pressure", type=float, default=0.0, help="hydrostatic pressure (GPa)")
    p.add_argument("--output", default="relaxed.extxyz", help="extxyz of the relaxed structure")
    p.add_argument("--trajectory", default=None, help="ASE trajectory of the optimisation")
    p.add_argument("--quiet", action="store_true", help="no optimiser log")
    _add_overwrite(p)
    _add_model_options(p, "float64")
    p.set_defaults(run=_relax)


def _add_structure_options(p: argparse.ArgumentParser, orderings_help: str | None = None) -> None:
    """The structure to work on: ``target``, its magnetic ordering (``--ordering``, or
    several ``--orderings`` described by ``orderings_help``), ``--supercell`` and
    ``--magnitudes``."""
    p.add_argument(
        "target",
        help="rocksalt formula (MnO, FeO, CoO, NiO), corundum formula (Cr2O3, Fe2O3) or "
        "structure file",
    )
    if orderings_help is None:
        p.add_argument(
            "--ordering",
            default=None,
            help="a rocksalt name, FM, or one letter u/d per magnetic site of the supercell "
            "(default: AFM-II for a rocksalt formula, the observed ground state for a corundum "
            "one, a file's initial_magmoms)",
        )
    else:
        p.add_argument("--orderings", nargs="+", default=None, help=orderings_help)
    p.add_argument(
        "--supercell",
        nargs="+",
        type=int,
        default=None,
        help="supercell of the given cell (a rocksalt formula's: its 2-atom primitive cell; a "
        "corundum one's: its 10-atom rhombohedral cell): 3 integers (diagonal) or 9 (a 3x3 "
        "matrix, row by row, as ASE's make_supercell)",
    )
    p.add_argument(
        "--magnitudes",
        nargs="+",
        default=None,
        metavar="EL=MU",
        help="initial moment magnitudes (μB), e.g. Cr=3 Mn=4 (O=0 makes an element nonmagnetic)",
    )


def _add_md(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("md", help="molecular dynamics: NVE, NVT (Langevin) or NPT (MTK)")
    _add_structure_options(p)
    p.add_argument("--ensemble", choices=["nve", "nvt", "npt"], default="nve")
    p.add_argument("--temperature", type=float, default=300.0, help="K")
    p.add_argument("--pressure", type=float, default=0.0, help="GPa (NPT)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--timestep", type=float, default=1.0, help="fs")
    p.add_argument("--interval", type=int, default=10, help="steps between log/trajectory frames")
    p.add_argument("--output-dir", default="md", help="where all output files go")
    p.add_argument("--trajectory", default="md.traj", help="ASE trajectory, in the output dir")
    p.add_argument("--log", default="md.log", help="ASE MD log file, in the output dir")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial velocities")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_overwrite(p)
    _add_model_options(p, "float32")
    p.set_defaults(run=_md)


def _phonons(args: argparse.Namespace) -> None:
    from spinmultinet_ase.magnetism.rocksalt import ROCKSALT_LATTICE_CONSTANTS
    from spinmultinet_ase.workflows.inputs import in_spin_mode, parse_supercell, single_structure
    from spinmultinet_ase.workflows.phonons import check_phonon_options, run_phonons, write_phonons
    from spinmultinet_ase.workflows.relax import check_relax_options

    supercell = parse_supercell(args.phonon_supercell, "--phonon-supercell")
    check_phonon_options(supercell, args.displacement)
    check_relax_options(fmax=args.fmax)
    output = Path(args.output_dir)
    check_outputs([output / "phonons.png", output / "phonons.json"], args.overwrite)
    rocksalt = args.target in ROCKSALT_LATTICE_CONSTANTS
    orderings = _orderings(args) or (["AFM-II", "FM"] if rocksalt else [None])
    structures = {  # all built before the model is loaded
        ordering or Path(args.target).stem: single_structure(
            args.target, ordering, args.supercell, args.magnitudes
        )
        for ordering in orderings
    }
    calc = _calculator(args)
    results = run_phonons(
        {name: in_spin_mode(atoms, calc.model.spin_mode) for name, atoms in structures.items()},
        calc,
        supercell=supercell,
        displacement=args.displacement,
        relax_first=not args.no_relax,
        fmax=args.fmax,
        progress=not args.quiet,
    )
    for result in results:
        optical = ", ".join(f"{f:.3f}" for f in result.parent_gamma_optical)
        print(
            f"{result.ordering}: optical modes of the parent Γ point (THz): {optical}; "
            f"splitting {result.parent_gamma_splitting:.3f} THz"
        )
        if result.max_force_std is not None:
            print(
                f"{result.ordering}: largest per-atom force spread of the committee over the "
                f"displaced supercells {result.max_force_std:.4f} eV/Å"
            )
    write_phonons(results, output)
    print(f"phonons.png and phonons.json in {output}/")


def _add_phonons(sub: argparse._SubParsersAction) -> None:
    from spinmultinet_ase.workflows.phonons import DISPLACEMENT
    from spinmultinet_ase.workflows.relax import DEFAULT_FMAX

    p = sub.add_parser("phonons", help="phonon bands, DOS and Γ modes per spin ordering (phonopy)")
    _add_structure_options(
        p,
        orderings_help="orderings: rocksalt names, FM, or one letter u/d per magnetic site of "
        "the supercell (default: a rocksalt formula's AFM-II and FM, else the structure's "
        "own moments)",
    )
    p.add_argument(
        "--phonon-supercell",
        nargs="+",
        type=int,
        default=[2, 2, 2],
        help="phonopy's supercell of each ordering's cell for the force constants: 3 or 9 "
        "integers (default: 2 2 2)",
    )
    p.add_argument(
        "--displacement", type=float, default=DISPLACEMENT, help="Å (default: %(default)s)"
    )
    p.add_argument("--fmax", type=float, default=DEFAULT_FMAX, help="relaxation threshold (eV/Å)")
    p.add_argument("--no-relax", action="store_true", help="use the structure as given")
    p.add_argument("--output-dir", default="phonons")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_overwrite(p)
    _add_model_options(p, "float64")
    p.set_defaults(run=_phonons)


def _data_card(args: argparse.Namespace) -> None:
    from spinmultinet_ase.reference.data_card import CARD_CONFIG, write_card
    from spinmultinet_ase.train.config import load_config

    check_outputs([Path(args.data_dir) / "README.md"], args.overwrite)
    if not Path(args.data_dir).is_dir():
        raise FileNotFoundError(f"no data folder at {args.data_dir}")
    write_card(args.data_dir, load_config(args.config or CARD_CONFIG).data)
    print(f"wrote {args.data_dir}/README.md")


def _add_data_card(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data-card", help="write the dataset card (README.md) of a data folder")
    p.add_argument("data_dir", help="folder of the card, the convergence study and yardsticks")
    p.add_argument(
        "--config",
        help="training config whose data.path files (paths from the working directory) and "
        "data.materials the card reports (default: configs/default_oxides.yaml)",
    )
    _add_overwrite(p)
    p.set_defaults(run=_data_card)


def _add_structures(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("structures", help="generate the reference structures to label")
    p.add_argument("output", help="extxyz file to write")
    p.add_argument(
        "--materials",
        nargs="+",
        default=["MnO", "NiO"],
        help="rocksalt (MnO, FeO, CoO, NiO) or corundum (Cr2O3, Fe2O3) oxides",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the distortions")
    p.add_argument(
        "--orderings-pool",
        action="store_true",
        help="the ordering-diversity pool of rocksalt oxides instead: every distinct ordering "
        "of many supercell shapes at the ideal geometry (docs/ordering_data.md)",
    )
    p.add_argument(
        "--random-orderings",
        type=int,
        metavar="N",
        help="candidates for active learning instead: per larger supercell shape its FM frame "
        "and up to N distinct random orderings, partners of it (docs/ordering_data.md)",
    )
    p.add_argument(
        "--rhombohedral-strains",
        type=float,
        nargs="+",
        metavar="DELTA",
        help="rocksalt yardstick cells (FM and AFM-II) at these [111] strains instead: the "
        "E(δ) series extended where DFT's minimum lies beyond the reference strains",
    )
    _add_overwrite(p)
    p.set_defaults(run=_structures)


def _add_label(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "label",
        help="label structures with GPAW PBE+U (resumable; run under mpiexec -n 2)",
    )
    p.add_argument("input", help="extxyz of structures with initial_magmoms and structure_id")
    p.add_argument("output", help="extxyz the labelled frames are appended to")
    p.add_argument("--log-dir", default=None, help="folder of GPAW logs (default OUTPUT_logs/)")
    p.add_argument(
        "--limit", type=int, default=None, help="label at most this many frames (0 or more)"
    )
    p.add_argument(
        "--max-scf-steps",
        type=int,
        default=None,
        metavar="N",
        help="labelling budget: reject a frame not converged in N SCF steps, biased start "
        "included (default: the protocol's limit; not a protocol change)",
    )
    p.set_defaults(run=_label)


def _lammps_plugin(args: argparse.Namespace) -> None:
    from spinmultinet_ase.lammps import PluginBuildError, build_plugin, find_lammps

    try:
        path = build_plugin(find_lammps(args.python), args.cache_dir, rebuild=args.rebuild)
    except PluginBuildError as error:
        print(f"spinmultinet lammps-plugin: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(path)


def _add_lammps_plugin(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lammps-plugin",
        help="build pair_style spinmultinet for LAMMPS (once) and print the plugin's path",
    )
    p.add_argument(
        "--python",
        default=None,
        help="Python of the environment with lammps[mpi] (default: this one if it has it, "
        "else $SPINMULTINET_LAMMPS_VENV/bin/python, default ~/.venvs/spinmultinet-lammps)",
    )
    p.add_argument("--cache-dir", default=None, help="where builds are kept (~/.cache/...)")
    p.add_argument("--rebuild", action="store_true", help="build even if a build exists")
    p.set_defaults(run=_lammps_plugin)


def _active_learn(args: argparse.Namespace) -> None:
    from spinmultinet_ase.train.active import ActiveLearning, load_active_config

    config = load_active_config(args.config)
    run = ActiveLearning(config, progress=not args.quiet)
    state = run.run()
    files = " ".join(str(run.model_file(name)) for name in state["committee"])
    print(f"done: {state['round'] - 1} rounds; committee: {files}")
    print(f"learning curve: {config.output_dir}/curve.csv")


def _add_active_learn(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "active-learn",
        help="active learning: label what the committee disagrees on most, retrain, repeat "
        "(resumable)",
    )
    p.add_argument("config", help="active-learning config (YAML; see docs/tutorials/training.md)")
    p.add_argument("--quiet", action="store_true", help="no progress lines or bars")
    p.set_defaults(run=_active_learn)


def _pool(args: argparse.Namespace) -> None:
    from ase.io import write

    from spinmultinet_ase.workflows.pool import pool_from_trajectories

    check_outputs([args.output], args.overwrite)
    frames = pool_from_trajectories(args.trajectories, args.every, args.start)
    with atomic_path(args.output) as temporary:
        write(temporary, frames, format="extxyz")
    print(
        f"wrote {len(frames)} structures from {len(args.trajectories)} trajectories to "
        f"{args.output} (pool: of an active-learning config)"
    )


def _add_pool(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pool",
        help="candidate structures for active learning from MD trajectories (spinmultinet md)",
    )
    p.add_argument("trajectories", nargs="+", metavar="TRAJ", help="ASE trajectories (md.traj)")
    p.add_argument("--every", type=int, default=1, help="keep every K-th frame (from --start)")
    p.add_argument(
        "--start",
        type=int,
        default=0,
        help="first frame kept (skip the built starting structure and the equilibration)",
    )
    p.add_argument("--output", default="pool.extxyz", help="extxyz of the candidates")
    _add_overwrite(p)
    p.set_defaults(run=_pool)


SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_structures,
    _add_label,
    _add_export,
    _add_train,
    _add_active_learn,
    _add_pool,
    _add_evaluate,
    _add_model_card,
    _add_yardsticks,
    _add_scan,
    _add_relax,
    _add_md,
    _add_phonons,
    _add_data_card,
    _add_lammps_plugin,
)


def build_parser() -> argparse.ArgumentParser:
    from spinmultinet_ase import __version__

    parser = _Parser(prog="spinmultinet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


# What a user's input can cause: reported as one line and exit code 2, never a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, KeyError, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; user errors are one line on stderr and exit code 2."""
    if "OMPI_COMM_WORLD_SIZE" in os.environ or "PMI_SIZE" in os.environ:
        # Started by mpiexec: GPAW must use its own MPI backend (GPAW >= 25 asks for this). Set
        # before building the parser, since ASE's io plugins import gpaw, which reads it then.
        os.environ.setdefault("GPAW_MPI_BACKEND", "cgpaw")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error (already printed)
        return int(done.code or 0)
    prefix = f"spinmultinet {args.command}"

    def one_line_warning(message, *_, **__) -> None:
        print(f"{prefix}: warning: {_one_line(message)}", file=sys.stderr)

    with warnings.catch_warnings():  # restores the warning machinery afterwards
        warnings.showwarning = one_line_warning
        try:
            args.run(args)
        except USER_ERRORS as error:
            print(f"{prefix}: error: {_one_line(error)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{prefix}: interrupted", file=sys.stderr)
            return 130
    return 0


def _one_line(error: BaseException | Warning) -> str:
    """The message of an error or warning on one line (a missing key named as such)."""
    if isinstance(error, KeyError):
        return f"missing entry {error}"
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
