"""The model card of a trained model, written from its evaluation files.

``spinmultinet model-card RUN_DIR OUT_DIR [--ablation NAME=RUN_DIR ...] [--config CONFIG]
[--compare-to METRICS_JSON [--baseline-run BASELINE_RUN]]`` reads ``RUN_DIR/summary.json``,
``RUN_DIR/evaluation/evaluation.json`` (and, where present,
``RUN_DIR/evaluation/unseen_orderings_heisenberg.json``) and the model's metadata,
compares the held-out test errors and the DFT yardsticks with the accuracy targets below, and
writes ``OUT_DIR/card.md`` plus ``metrics.json``; ``--compare-to`` adds the comparison with
a baseline (``reference/baseline.py``). Every number in the card comes from those
files (and the DFT convergence study next to the data), so rerunning training and evaluation
regenerates it.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ase.io import read

from spinmultinet_ase.export import load_model
from spinmultinet_ase.magnetism.corundum import CORUNDUM_PARAMETERS
from spinmultinet_ase.magnetism.rocksalt import ROCKSALT_LATTICE_CONSTANTS
from spinmultinet_ase.magnetism.yardsticks import exchange_keys
from spinmultinet_ase.materials import recorded_materials, reduced_formula
from spinmultinet_ase.outputs import write_text_atomic
from spinmultinet_ase.reference.baseline import (
    STAND_IN,
    compare_with_baseline,
    comparison_lines,
    read_baseline,
)
from spinmultinet_ase.reference.card_targets import (
    ERROR_TARGETS,
    EXCHANGE_TOLERANCE,
    NO_DISTORTION,
    ORDERING_TOLERANCE,
    STRAIN_TOLERANCE,
    UNSEEN_ORDERING_TARGET,
    exchange_met,
    ordering_met,
    same_minimum,
)
from spinmultinet_ase.reference.convergence import ORDERING_DENSITIES, yardstick_kpoint_errors
from spinmultinet_ase.reference.data_card import ordering_kpoints_table
from spinmultinet_ase.reference.default_model import model_dir
from spinmultinet_ase.train.config import (
    LOSS_WEIGHTS,
    DataConfig,
    LossConfig,
    TrainConfig,
    config_from_dict,
    load_config,
)
from spinmultinet_ase.train.dataset import TRAINING_SPLITS, split_of
from spinmultinet_ase.train.evaluate import IDEAL_CELLS, RESOLVED_ORDERING_MEV


def yardstick_checks(yardsticks: dict) -> dict[str, dict[str, Any]]:
    """Per yardstick table entry (a material, or a material and cell): ordering energies, the
    lowest ordering (and whether it is the observed ground state, where one is known),
    exchange constants and the rhombohedral minimum of the model against DFT, each with
    whether it meets its target."""
    checks: dict[str, dict[str, Any]] = {}
    dft_all, model_all = yardsticks["dft"], yardsticks["model"]
    for key, dft in dft_all.items():
        model = model_all[key]
        entry: dict[str, Any] = {}
        reference = dft.get("reference", "FM")
        for ordering, value in dft.get("orderings_meV_per_fu", {}).items():
            if ordering == reference:
                continue
            predicted = model["orderings_meV_per_fu"][ordering]
            ok = ordering_met(value, predicted)
            entry[f"E({ordering})-E({reference})"] = (value, predicted, ok)
        if "lowest" in dft:
            entry["lowest ordering"] = (
                dft["lowest"],
                model["lowest"],
                dft["lowest"] == model["lowest"],
            )
        if "ground_state" in dft:
            ground = dft["ground_state"]
            entry[f"observed ground state {ground} lowest"] = (
                "yes" if dft["lowest"] == ground else "no",
                "yes" if model["lowest"] == ground else "no",
                model["lowest"] == ground,
            )
        distances = {s["shell"]: s["distance_A"] for s in dft.get("exchange_shells", [])}
        for exchange, shell in exchange_keys(dft):
            name = f"{exchange} ({distances[shell]:.3f} Å)" if shell in distances else exchange
            predicted = model.get(exchange)
            ok = predicted is not None and exchange_met(dft[exchange], predicted)
            entry[name] = (dft[exchange], predicted, ok)
        for ordering, curve in dft.get("rhombohedral", {}).items():
            ours = model["rhombohedral"].get(ordering)
            if ours is None:
                continue
            strain, predicted = curve["minimum"]["strain"], ours["minimum"]["strain"]
            bracketed = curve["minimum"].get("bracketed", True)
            name = f"{ordering} E(δ) minimum strain"
            if not bracketed:
                name += " (DFT's at the end of the sampled strains)"
            entry[name] = (
                strain,
                predicted,
                same_minimum(strain, predicted, bracketed, ours["minimum"].get("bracketed", True)),
            )
        checks[key] = entry
    return checks


def _exchange_shell_lines(dft: dict) -> list[str]:
    """Which pair shells the exchange constants of ordering yardsticks belong to, and what
    each fitted J stands for."""
    lines = []
    for key, entry in dft.items():
        shells = entry.get("exchange_shells", [])
        if not shells:
            continue
        fitted = [
            f"J{s['shell']} at {s['distance_A']:.3f} Å ({s['coordination']:g} per ion)"
            + (f" = {s['fitted_as']}" if s["fitted_as"] != f"J{s['shell']}" else "")
            for s in shells
            if s["JS2_meV"] is not None
        ]
        absorbed = [
            f"{s['shell']} ({s['distance_A']:.3f} Å)" for s in shells if s["JS2_meV"] is None
        ]
        line = (
            f"* {key}: Heisenberg fit over the {len(entry['above_lowest_meV_per_fu'])} "
            f"ideal-cell orderings, shells by distance: {', '.join(fitted)}"
        )
        if absorbed:
            into = "the fitted J as shown" if any(" = " in f for f in fitted) else "E0"
            line += (
                f"; shell(s) {', '.join(absorbed)} not separable from nearer ones in these "
                f"orderings, their exchange absorbed in {into}"
            )
        lines.append(line + f"; rms residual {entry['exchange_rms_residual_meV']:.2g} meV per ion.")
    return ["", *lines] if lines else []


def _read_run(run_dir: Path) -> tuple[dict, dict]:
    summary = json.loads((run_dir / "summary.json").read_text())
    evaluation = json.loads((run_dir / "evaluation" / "evaluation.json").read_text())
    return summary, evaluation


def _test_errors(evaluation: dict) -> dict[str, dict[str, float]]:
    """Test-split MAE per row (material, or its ideal yardstick cells) and target (report
    units), with the number of frames and their fingerprint (where the evaluation has it)."""
    return {
        group: {
            "frames": errs["frames"],
            **{k: errs[k] for k in ("frames_fingerprint",) if k in errs},
            **{t: errs[f"{t}_mae"] for t in ERROR_TARGETS if f"{t}_mae" in errs},
        }
        for group, errs in evaluation["errors"].get("test", {}).items()
    }


def _evaluated_materials(evaluation: dict) -> list[str]:
    """The materials of every split of ``evaluation``, in alphabetical order."""
    return sorted(
        {group.split()[0] for groups in evaluation["errors"].values() for group in groups}
    )


def _materials_phrase(materials: Sequence[str]) -> str:
    """``materials`` with their structure family, e.g. "corundum Cr2O3, rocksalt MnO and
    NiO"."""
    families: dict[str, list[str]] = {}
    for material in materials:
        if material in ROCKSALT_LATTICE_CONSTANTS:
            family = "rocksalt"
        elif material in CORUNDUM_PARAMETERS:
            family = "corundum"
        else:
            family = "other"
        families.setdefault(family, []).append(material)
    parts = []
    for family, names in families.items():
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        parts.append(listed if family == "other" else f"{family} {listed}")
    return ", ".join(parts)


def _untrained(materials: Sequence[str], metadata: dict) -> list[str]:
    """The ``materials`` the model records it was never trained on (none when it records no
    trained materials): evaluated on held-out frames only, or not at all."""
    trained = recorded_materials(metadata)
    if trained is None:
        return []
    learned = {reduced_formula(name) for name in trained}
    return [m for m in materials if reduced_formula(m) not in learned]


def _train_config(metadata: dict) -> TrainConfig:
    """The training config stored in a model's metadata, with today's defaults for settings
    added since it was saved."""
    return config_from_dict(metadata["train_config"])


def _pool_of(data_path: Path) -> Path | None:
    """The structure pool a labelled file was labelled from: ``structures<suffix>.extxyz`` for
    ``reference<suffix>.extxyz`` (None for a file not named so)."""
    name = data_path.name
    if not name.startswith("reference"):
        return None
    return data_path.with_name("structures" + name.removeprefix("reference"))


def _data_status(
    data: DataConfig, summary: dict, tested: int, sources: tuple[str, ...] = ()
) -> tuple[str, bool]:
    """One line on how complete the data was: the training and validation frames the model
    learned from (``data``: its training data and split rules), and the ``tested`` test frames
    it was evaluated on, against the structure pools the data was labelled from; and whether
    the model is provisional, trained before the pools' training and validation structures
    were all labelled.

    ``sources``: the labelled files the training data was frozen from, each judged against its
    own pool (:func:`_pool_of`; a file without one counts with the frames it holds); without
    them, the pool is ``structures.extxyz`` next to the (first) training file.
    """
    trained = {name: summary["num_frames"][name] for name in TRAINING_SPLITS}
    counts = f"train {trained['train']}, validation {trained['validation']}, test {tested}"
    if sources:
        files = [(Path(p), _pool_of(Path(p))) for p in sources]
        pools = [(path, pool) for path, pool in files if pool is not None and pool.exists()]
    else:
        path = Path(data.paths[0])
        pools = [(path, path.with_name("structures.extxyz"))]
        pools = [(p, pool) for p, pool in pools if pool.exists()]
        files = pools
    if not pools:
        where = ", ".join(f"`{p}`" for p, _ in files) or f"`{data.paths[0]}`"
        return f"* Frames: {counts} (no structure pool found next to {where})", False
    planned: Counter[str] = Counter()
    for path, pool in files:
        frames = read(pool if pool is not None and pool.exists() else path, index=":")
        rules = dataclasses.replace(data, path=str(path))
        planned.update(split_of(atoms, rules) for atoms in frames)
    to_learn = sum(planned[name] for name in TRAINING_SPLITS)
    named = ", ".join(f"`{pool}`" for _, pool in pools)
    if sum(trained.values()) < to_learn:
        return (
            f"* **Provisional model**: trained while the reference data was being labelled, "
            f"on {sum(trained.values())} of the {to_learn} training and validation structures "
            f"of the pool ({named}); it will be retrained on the full set, and its errors "
            f"below are those of this small set. Frames: {counts}."
        ), True
    return (
        f"* Frames: {counts}: all {to_learn} training and validation structures of the pool "
        f"({named}), and {tested} of its {planned['test']} test structures (the test split "
        "grows as its frames are labelled; they do not change the model)."
    ), False


def _reproduce_line(
    frames: int,
    provisional: bool,
    with_ablations: bool,
    config_path: str | None = None,
    out_dir: Path | None = None,
) -> str:
    """The command that retrains this model on the same frames (the first ``frames`` of the
    growing data file for a provisional model trained on one file; the data as it is then,
    for several), with or without the ablations, from the training config at ``config_path``
    (None: the script's default config), shipping it to ``out_dir`` where that is not the
    config's own model folder (:func:`~spinmultinet_ase.reference.default_model.model_dir`,
    from the current folder: the repository's, where the script writes the card)."""
    options = [config_path] if config_path else []
    options.append("--fresh")
    if not with_ablations:
        options.append("--no-ablations")
    if provisional:
        options.append(f"--frames {frames}")
    if config_path and out_dir and out_dir.resolve() != model_dir(config_path).resolve():
        options.append(f"--model-dir {out_dir}")
    trains = "this model and the ablations" if with_ablations else "this model"
    return (
        f"* Reproduce: `bash scripts/train_default_model.sh {' '.join(options)}` (resumable; "
        f"trains {trains}, evaluates and writes this card)."
    )


def _held_out_phrase(data: DataConfig) -> str:
    """What the split rules ``data`` hold out of training whole, in words."""
    parts = [f"every {o} frame" for o in data.test_orderings]
    if data.test_cells:
        shapes = "shapes" if len(data.test_cells) > 1 else "shape"
        parts.append(f"every frame of the cell {shapes} {', '.join(data.test_cells)}")
    if data.test_yardsticks:
        parts.append("the yardstick cells")
    if not parts:
        return "split deterministically by structure id"
    listed = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    return f"split deterministically by structure id; the test split holds {listed}"


def _ablation_tables(
    runs: dict[str, tuple[dict, dict]], train_configs: dict[str, TrainConfig], units: dict[str, str]
) -> list[str]:
    """How each run (summary, evaluation) trained within its budget (the training config it
    was trained with: ``optim`` budget, partner-loss weight), its test errors, and its
    ordering energies at fixed lattice against DFT."""
    # an ablation's budget is the full model's epochs (train_default_model.sh --max-epochs)
    full_epochs = runs["full model"][0]["epochs"]
    full_partners = train_configs["full model"].loss.partners
    other_setup = [
        name
        for name, config in train_configs.items()
        if name != "full model"
        and (config.optim.max_epochs != full_epochs or config.loss.partners != full_partners)
    ]
    same = "same budget" if not other_setup else "budgets differ, see below the table"
    lines = [
        "",
        f"## Ablations (same data, {same})",
        "",
        "| model | budget (epochs, min) | partner loss weight | epochs (best) | wall time (min) "
        "| stopped because |",
        "|---|---|---|---|---|---|",
    ]
    for name, (summary, _) in runs.items():
        budget, loss = train_configs[name].optim, train_configs[name].loss
        lines.append(
            f"| {name} | {budget.max_epochs}, {budget.max_minutes:g} | "
            f"{loss.partners:g} | {summary['epochs']} ({summary['best_epoch']}) | "
            f"{summary['wall_time_minutes']:.0f} | {summary['stopped_because']} |"
        )
    if other_setup:
        lines += [
            "",
            f"Not yet the same budget: {' and '.join(map(repr, other_setup))} trained for another "
            "number of epochs or with another partner-loss weight than the full model; rerunning "
            "`bash scripts/train_default_model.sh` without their committed `ablations/<run>/` "
            "retrains them.",
        ]
    lines += [
        "",
        "Test errors (MAE):",
        "",
        "| model | rows | " + " | ".join(f"{t} ({units[t]})" for t in ERROR_TARGETS) + " |",
        "|---|---|" + "---|" * len(ERROR_TARGETS),
    ]
    for name, (_, evaluation) in runs.items():
        for group, values in _test_errors(evaluation).items():
            cells = [f"{values[t]:.3g}" if t in values else "–" for t in ERROR_TARGETS]
            lines.append(f"| {name} | {group} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Ordering energies of the yardstick cells (meV/f.u., fixed lattice):",
        "",
        "| model | material | ordering energies | lowest |",
        "|---|---|---|---|",
    ]
    first = next(iter(runs.values()))[1]["yardsticks"]["dft"]
    for material, dft in first.items():
        lines.append(f"| DFT | {material} | {_ordering_energies(dft)} | {dft.get('lowest', '–')} |")
    for name, (_, evaluation) in runs.items():
        for material, model in evaluation["yardsticks"]["model"].items():
            lines.append(
                f"| {name} | {material} | {_ordering_energies(model)} | "
                f"{model.get('lowest', '–')} |"
            )
    return lines


def _guess_note(metadata: dict) -> str:
    """What the size of a guessed moment does to the model's prediction, from the saturation
    moment ``m_c`` the model was built with (:mod:`spinmultinet_ase.nn.embedding`) and the
    guess sizes its training saw per element (empty for a model that records no ``m_c``)."""
    full = metadata["model_config"].get("full_moment")
    if not full:
        return ""
    ranges = metadata.get("training", {}).get("guess_ranges_muB")
    below = {s: low for s, (low, high) in (ranges or {}).items() if high > 0 and low < full}
    if ranges is None:
        tail = "below m_c its size enters"
    elif below:
        seen = ", ".join(f"{s} {low:.2g} μB" for s, low in below.items())
        tail = f"below m_c its size enters (the smallest guesses training saw: {seen})"
    else:
        tail = "guesses below m_c are outside the training data"
    return (
        f" The guess enters through its direction, saturated at m_c = {full:g} μB: any guess "
        "of at least m_c on an atom gives the same prediction, by construction, so a guess "
        f"off in size changes nothing while it stays at or above m_c; {tail}."
    )


def _ordering_energies(entry: dict) -> str:
    """A yardstick entry's ordering energies against its reference ordering, in one cell."""
    reference = entry.get("reference", "FM")
    energies = entry.get("orderings_meV_per_fu", {})
    return ", ".join(f"{o} {e:.1f}" for o, e in energies.items() if o != reference) or "–"


def _dft_cell_dependence(evaluation: dict, data_path: Path) -> list[str]:
    """How far DFT's own yardsticks depend on the cell and the k-point mesh: the FM energy
    difference between the two 4-atom cells, the model's error on each undistorted cell next
    to DFT's k-point error there, the ordering partners, and the convergence study's ordering
    energies (``convergence.json`` next to the data) when it has them."""
    dft = evaluation["yardsticks"]["dft"]
    differences = {
        m: abs(v["fm_cell_difference_meV_per_fu"])
        for m, v in dft.items()
        if "fm_cell_difference_meV_per_fu" in v
    }
    lines = []
    if differences:
        lines += [
            "",
            "DFT's own precision: at the protocol's k-point mesh the same FM crystal's energy "
            "differs between the AFM-I cell (afm1-4) and the AFM-II cell (afm2-4) by "
            + ", ".join(f"{m} {v:.2f}" for m, v in differences.items())
            + " meV/f.u. A model gives the one crystal one energy, so its FM energy can match "
            "DFT's in one of the cells at most, and an ordering energy (taken within one cell) "
            "can differ from DFT's by up to that much for this reason alone.",
        ]
    convergence_path = data_path.with_name("convergence.json")
    convergence = json.loads(convergence_path.read_text()) if convergence_path.exists() else {}
    kpoint_errors = yardstick_kpoint_errors(convergence)
    cell_errors = evaluation.get("ideal_cell_errors_meV_per_fu", {})
    cells = sorted({cell for errors in cell_errors.values() for cell in errors})
    if cells:
        dense = ORDERING_DENSITIES[-1]
        lines += [
            "",
            "Model − DFT energy on each undistorted yardstick cell (meV/f.u.), and DFT's own "
            f"k-point error there (protocol mesh − k-point density {dense:g}, convergence "
            "study):",
            "",
            "| material | " + " | ".join(cells) + " |",
            "|---|" + "---|" * len(cells),
        ]
        for material, errors in cell_errors.items():
            named = {"model − DFT": errors}
            if material in kpoint_errors:
                named["DFT k-point error"] = kpoint_errors[material]
            lines += [
                f"| {material} {name} | "
                + " | ".join(f"{values[c]:+.2f}" if c in values else "–" for c in cells)
                + " |"
                for name, values in named.items()
            ]
    lines += _partner_table(evaluation.get("ordering_partner_errors", []))
    rows = ordering_kpoints_table(convergence, _evaluated_materials(evaluation))
    if rows:
        lines += [
            "",
            "DFT's yardsticks of the undistorted crystal from the convergence study "
            "(`data/README.md`), at the protocol's k-point mesh and a denser one:",
            "",
            *rows,
        ]
    return lines


def _loss_line(loss: LossConfig) -> str:
    """The training loss: its kind and the weight of each term (partners: ordering partners'
    energies relative to each other)."""
    weights = ", ".join(f"{term} {getattr(loss, term):g}" for term in LOSS_WEIGHTS)
    return (
        f"* Loss: {loss.kind}, weights {weights} (`partners`: the energy of ordering "
        "partners relative to each other, see the ordering-partner table below)."
    )


def _partner_table(rows: list[dict[str, Any]]) -> list[str]:
    """The magnetic energy of ordering partners, model against DFT, in every split."""
    if not rows:
        return []
    lines = [
        "",
        "Ordering partners: one geometry in the same cell in two orderings (rattled, "
        "strained), so DFT's k-point error largely cancels in their energy difference. A "
        "bias shared by the training pairs is not a generalisation error but one the model did "
        "not fit (meV/f.u.):",
        "",
        "| split | material | cell | energy difference | pairs | DFT mean | model − DFT mean "
        "| model − DFT MAE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['split']} | {row['material']} | {row['cell']} | "
            f"{row['ordering']} − {row.get('reference', 'FM')} | "
            f"{row['pairs']} | {row['dft_mean_meV_per_fu']:.1f} | "
            f"{row['error_mean_meV_per_fu']:+.2f} | {row['error_mae_meV_per_fu']:.2f} |"
        )
    return lines


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _ordering_errors_table(rows: list[dict[str, Any]]) -> list[str]:
    """Test energy and force errors per material and ordering: AFM-III, never trained on,
    against the orderings the model learned."""
    if not rows:
        return []
    lines = [
        "",
        "Test errors per magnetic ordering (AFM-III is held out of training entirely); energy "
        "mean is the signed model − DFT average:",
        "",
        "| material | ordering | frames | energy mean (meV/atom) | energy MAE (meV/atom) "
        "| force MAE (meV/Å) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['material']} | {row['ordering']} | {row['frames']} | "
            f"{row['energy_mean_meV_per_atom']:+.2f} | {row['energy_mae_meV_per_atom']:.2f} | "
            f"{row['forces_mae_meV_per_A']:.1f} |"
        )
    return lines


def _unseen_orderings_table(rows: list[dict[str, Any]], missing: Sequence[str] = ()) -> list[str]:
    """Per material and held-out shape: the ordering energies of orderings never trained on,
    model against DFT, with the target (:data:`UNSEEN_ORDERING_TARGET`, the same ranking);
    a row marked missing for each material of ``missing``, whose data has no such shape."""
    if not rows and not missing:
        return []
    lines = [
        "",
        "Orderings never seen: every symmetry-distinct ordering of a supercell shape held out "
        "of training whole, at the ideal geometry, as `spinmultinet scan` meets them. Energies "
        "relative to DFT's lowest ordering (meV/f.u.); Kendall tau of the model's ranking "
        "against DFT's; swapped: pairs DFT separates by more than "
        f"{RESOLVED_ORDERING_MEV:g} meV/f.u. that the model puts in the other order. Target: "
        f"largest error ≤ {UNSEEN_ORDERING_TARGET:g} meV/f.u. and no swapped pair.",
        "",
        "| material | cell | orderings | MAE | max | Kendall tau | same order | same lowest "
        "| swapped | meets target |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ok = (
            row["error_max_meV_per_fu"] <= UNSEEN_ORDERING_TARGET
            and row["swapped_resolved_pairs"] == 0
        )
        lines.append(
            f"| {row['material']} | {row['cell']} | {row['orderings']} | "
            f"{row['error_mae_meV_per_fu']:.2f} | {row['error_max_meV_per_fu']:.2f} | "
            f"{row['kendall_tau']:.2f} | {'yes' if row['same_order'] else 'no'} | "
            f"{'yes' if row['same_lowest'] else 'no'} | {row['swapped_resolved_pairs']} | "
            f"{'✓' if ok else '✗'} |"
        )
    for material in missing:
        lines.append(
            f"| {material} | – | missing: no held-out shape labelled in two or more orderings "
            "| – | – | – | – | – | – | ✗ |"
        )
    return lines


# Written by scripts/unseen_orderings_heisenberg.py --output into RUN_DIR/evaluation/.
HEISENBERG_STAND_IN = "unseen_orderings_heisenberg.json"


def _unseen_orderings_limit(evaluation: dict, run_dir: Path, materials: Sequence[str] = ()) -> str:
    """The card's limit on orderings never trained on: measured against DFT (the evaluation's
    held-out shapes), else against the two-shell Heisenberg stand-in where its file is in
    ``run_dir/evaluation/``, else said to be unmeasured; naming the ``materials`` (those the
    model is meant for) that the rows do not cover, whose verdict is open."""
    rows = evaluation.get("unseen_orderings", [])
    source = "DFT (the table above)"
    stand_in = run_dir / "evaluation" / HEISENBERG_STAND_IN
    if not rows and stand_in.exists():
        rows = json.loads(stand_in.read_text())
        source = (
            "the two-shell Heisenberg model of the DFT J1 S², J2 S² (a stand-in until DFT "
            "labels the held-out shape: `python scripts/unseen_orderings_heisenberg.py MODEL`, "
            "`docs/ordering_data.md`)"
        )
    if not rows:
        return (
            "* Orderings never trained on (supercell shapes held out whole): not measured; "
            "`docs/ordering_data.md` says how."
        )
    met = all(
        row["error_max_meV_per_fu"] <= UNSEEN_ORDERING_TARGET and row["swapped_resolved_pairs"] == 0
        for row in rows
    )
    shown = "; ".join(
        f"{row['material']} `{row['cell']}` ({row['orderings']} orderings): MAE "
        f"{row['error_mae_meV_per_fu']:.1f}, max {row['error_max_meV_per_fu']:.1f} meV/f.u., "
        f"Kendall tau {row['kendall_tau']:.2f}, "
        f"{'the same' if row['same_lowest'] else 'another'} lowest ordering, "
        f"{row['swapped_resolved_pairs']} pairs more than {RESOLVED_ORDERING_MEV:g} meV/f.u. "
        "apart in the other order"
        for row in rows
    )
    measured = source.startswith("DFT")
    verdict = (
        ("met." if measured else "met by the stand-in only, which bounds nothing against DFT.")
        if met
        else "missed: the ranking of close orderings in a `spinmultinet scan` of a supercell "
        "it never saw is not to be trusted; check it with DFT."
    )
    covered = {row["material"] for row in rows}
    uncovered = [material for material in materials if material not in covered]
    return (
        "* Orderings never trained on (every ordering of a supercell shape held out whole), "
        f"against {source}: {shown}. Target (largest error ≤ {UNSEEN_ORDERING_TARGET:g} "
        f"meV/f.u., no pair in the other order) {verdict}"
        + (f" Not measured for {', '.join(uncovered)}." if uncovered else "")
    )


def _largest_errors_table(rows: list[dict[str, Any]]) -> list[str]:
    """The test frames with the largest energy errors, where the model is weakest."""
    if not rows:
        return []
    lines = [
        "",
        "Largest test energy errors (model − DFT), with each frame's rattle amplitude:",
        "",
        "| frame | atoms | rattle (Å) | energy (meV/atom) | force MAE (meV/Å) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        rattle = row["rattle_angstrom"]
        lines.append(
            f"| {row['structure_id']} | {row['atoms']} | "
            f"{'–' if rattle is None else f'{rattle:.3f}'} | "
            f"{row['energy_meV_per_atom']:+.1f} | {row['forces_mae_meV_per_A']:.0f} |"
        )
    return lines


def run_metrics(evaluation: dict, run_dir: Path) -> dict[str, Any]:
    """The metrics a card keeps of an evaluation (``run_dir/evaluation/evaluation.json``), with
    the Heisenberg stand-in's unseen-orderings rows where its file is next to it."""
    metrics = {
        "test_errors": _test_errors(evaluation),
        "yardsticks": evaluation["yardsticks"],
        "unseen_orderings": evaluation.get("unseen_orderings", []),
        "missing": evaluation.get("missing", {}),
    }
    stand_in = run_dir / "evaluation" / HEISENBERG_STAND_IN
    if stand_in.is_file():
        metrics[STAND_IN] = json.loads(stand_in.read_text())
    return metrics


def _baseline_here(baseline_run: Path) -> dict[str, Any]:
    """The baseline model's metrics on this model's frames, from its evaluation in
    ``baseline_run`` (with ``left_out``: frames per material of an element it lacks).

    Raises:
        FileNotFoundError: no ``evaluation/evaluation.json`` in ``baseline_run``.
        ValueError: that evaluation did not split the data by another model's rules.
    """
    path = baseline_run / "evaluation" / "evaluation.json"
    if not path.is_file():
        raise FileNotFoundError(f"no baseline evaluation at {path}")
    evaluation = json.loads(path.read_text())
    if "split_of" not in evaluation:
        raise ValueError(
            f"{path} is the baseline model on its own split: evaluate it with --split-of "
            "THIS_MODEL --known-species-only"
        )
    left_out = evaluation.get("left_out", {}).get("frames", {})
    return run_metrics(evaluation, baseline_run) | {"left_out": left_out}


def write_model_card(
    run_dir: str | Path,
    out_dir: str | Path,
    ablations: dict[str, str | Path] | None = None,
    config_path: str | Path | None = None,
    compare_to: str | Path | None = None,
    baseline_run: str | Path | None = None,
) -> str:
    """Write ``card.md`` and ``metrics.json`` for the model trained in ``run_dir``.

    ``config_path``: the training config the model was trained from (its ``data.path`` the
    labelled files, where the training itself read a frozen copy of them); named in the
    reproduce line. ``compare_to``: a baseline model's ``metrics.json``; the card and the
    metrics then compare this model with it, row by row; ``baseline_run``: with
    ``compare_to``, the baseline model evaluated on this model's frames, compared like for
    like (:func:`~spinmultinet_ase.reference.baseline.compare_with_baseline`).

    Raises:
        ValueError: ``baseline_run`` without ``compare_to``, a bad baseline, or a baseline
            evaluation that is not on this model's test frames (one line).
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if baseline_run is not None and compare_to is None:
        raise ValueError("--baseline-run needs --compare-to (the baseline's own metrics.json)")
    baseline = read_baseline(compare_to) if compare_to is not None else None
    here = _baseline_here(Path(baseline_run)) if baseline_run is not None else None
    summary, evaluation = _read_run(run_dir)
    metadata = load_model(run_dir / "model.pt").metadata
    train_config = _train_config(metadata)
    sources = load_config(config_path).data.paths if config_path else train_config.data.paths
    errors = _test_errors(evaluation)
    missing = evaluation.get("missing", {})
    checks = yardstick_checks(evaluation["yardsticks"])
    units = evaluation["units"]
    frames_used = sum(summary["num_frames"].values())
    tested = sum(values["frames"] for values in errors.values())
    data_status, provisional = _data_status(
        train_config.data, summary, tested, sources if config_path else ()
    )
    evaluated = _evaluated_materials(evaluation)
    absent = [m for m in train_config.data.materials if m not in evaluated]
    untrained = _untrained(evaluated, metadata)
    # what the card calls the model's materials: those it learned (all, if it learned none)
    materials = _materials_phrase([m for m in evaluated if m not in untrained] or evaluated)
    lines = [
        f"# Model card: {out_dir.name}",
        "",
        f"SpinMultiNet potential for {materials} ({metadata['spin_mode']} spin input). Input: the "
        "structure and the initial moments a user would set (`initial_magmoms`); output: "
        "energy, forces, stress, predicted moments (μB) and spin latents."
        + (
            f" Meant also for {', '.join(absent)}, of which its data holds no frames yet."
            if absent
            else ""
        )
        + (
            f" Its data also holds {', '.join(untrained)}, never trained on (every frame of "
            "them is held out for testing or validation): its numbers for them are untested."
            if untrained
            else ""
        ),
        "",
        "## Model",
        "",
        f"* species {metadata['species']}, cutoff {metadata['cutoff']} Å, spin mode "
        f"{metadata['spin_mode']}, saved in {metadata['dtype']}, package "
        f"{metadata['package_version']} (torch {metadata['torch_version']}, e3nn "
        f"{metadata['e3nn_version']})",
        f"* configuration: `config.yaml` (copied from the training config); model settings: "
        f"`{json.dumps(metadata['model_config'])}`",
        "",
        "## Data and training",
        "",
        f"* Reference data: {', '.join(f'`{p}`' for p in sources)} (GPAW PBE+U, protocol "
        f"and card in `data/README.md`), {_held_out_phrase(train_config.data)}.",
        data_status,
        f"* Trained on {', '.join(f'`{p}`' for p in train_config.data.paths)}, data fingerprint "
        f"`{summary['data']['fingerprint'][:16]}` (`spinmultinet_ase.train.dataset."
        "data_fingerprint`: which frames, with their energies, the model learned from)"
        if "data" in summary
        else "",
        f"* Training: {summary['epochs']} epochs (best {summary['best_epoch']}), "
        f"{summary['wall_time_minutes']:.0f} min wall time on {platform.machine()} with the "
        f"config's threads; stopped because: {summary['stopped_because']}.",
        _loss_line(train_config.loss),
        _reproduce_line(
            frames_used,
            provisional and len(sources) == 1,
            with_ablations=bool(ablations),
            config_path=str(config_path) if config_path else None,
            out_dir=out_dir,
        ),
        "",
        "## Accuracy on the held-out test split (MAE)",
        "",
        f"Rows '{IDEAL_CELLS}': the undistorted yardstick cells, whose forces vanish by "
        "symmetry (an equivariant model gets them exactly), kept apart so they do not dilute "
        "the errors on the distorted frames.",
        "",
        "| material | frames | " + " | ".join(f"{t} ({units[t]})" for t in ERROR_TARGETS) + " |",
        "|---|---|" + "---|" * len(ERROR_TARGETS),
    ]
    for material, values in errors.items():
        cells = [
            f"{values[t]:.3g} {'✓' if values[t] <= ERROR_TARGETS[t] else '✗'}"
            if t in values
            else "–"
            for t in ERROR_TARGETS
        ]
        lines.append(f"| {material} | {values['frames']} | " + " | ".join(cells) + " |")
    for material, lacks in missing.items():
        if "test frames" in lacks:
            cells = " | ".join("–" for _ in ERROR_TARGETS)
            lines.append(f"| {material} | 0 (missing: no test frames) | {cells} |")
    targets = " | ".join(f"≤ {v:g}" for v in ERROR_TARGETS.values())
    lines.append(f"| target | | {targets} |")
    lines += _ordering_errors_table(evaluation.get("test_errors_by_ordering", []))
    lines += _unseen_orderings_table(
        evaluation.get("unseen_orderings", []),
        [material for material, lacks in missing.items() if "unseen orderings" in lacks],
    )
    lines += _largest_errors_table(evaluation.get("largest_test_errors", []))
    lines += [
        "",
        "## Magnetic yardsticks: model against DFT (fixed lattice)",
        "",
        f"Targets: ordering energies within {100 * ORDERING_TOLERANCE:.0f} %, exchange "
        f"constants J S² within {100 * EXCHANGE_TOLERANCE:.0f} %, the same lowest ordering "
        "(and the observed ground state lowest, where one is known), and the "
        f"rhombohedral E(δ) minimum within {100 * STRAIN_TOLERANCE[0]:.0f} % of DFT's δ (at "
        f"least {STRAIN_TOLERANCE[1]:g}) and on the same side (δ < 0: contraction along "
        f"[111]) where DFT's |δ| ≥ {NO_DISTORTION:g}; below that DFT's sign is not resolved. "
        "Where DFT's minimum falls to an end of the sampled strains, the model's must fall to "
        "the same end. Energies in meV per formula unit, J in meV.",
        "",
        "| material | quantity | DFT | model | meets target |",
        "|---|---|---|---|---|",
    ]
    for material, entry in checks.items():
        for name, (dft, model, ok) in entry.items():
            lines.append(
                f"| {material} | {name} | {_fmt(dft)} | {_fmt(model)} | {'✓' if ok else '✗'} |"
            )
    for material, lacks in missing.items():
        if "DFT yardsticks" in lacks:
            lines.append(f"| {material} | DFT yardsticks | missing (none labelled) | – | ✗ |")
    lines += _exchange_shell_lines(evaluation["yardsticks"]["dft"])
    lines += _dft_cell_dependence(evaluation, Path(sources[0]))
    metrics = run_metrics(evaluation, run_dir) | {"ablations": {}}
    if baseline is not None:
        compared = {"baseline": str(compare_to)}
        if baseline_run is not None:
            compared["baseline_run"] = str(baseline_run)
        metrics["comparison"] = compared | compare_with_baseline(baseline, metrics, here)
        lines += comparison_lines(
            metrics["comparison"], str(compare_to), compared.get("baseline_run")
        )
    if not ablations:
        lines += [
            "",
            "## Ablations",
            "",
            "None trained with this model; ablations are reported only on the same data and "
            "budget as the model.",
        ]
    else:
        runs = {"full model": (summary, evaluation)}
        runs.update({name: _read_run(Path(path)) for name, path in ablations.items()})
        train_configs = {"full model": train_config}
        for name, path in ablations.items():
            train_configs[name] = _train_config(load_model(Path(path) / "model.pt").metadata)
        lines += _ablation_tables(runs, train_configs, units)
        committed = [
            f"`ablations/{Path(path).name}/`"
            for path in ablations.values()
            if (out_dir / "ablations" / Path(path).name / "model.pt").exists()
        ]
        if committed:
            lines += [
                "",
                f"The ablation models, with their configs and training summaries: "
                f"{', '.join(committed)} next to this card (in the repository, not installed "
                "with the package); `spinmultinet evaluate` rechecks them.",
            ]
        for name, (_, ablation_eval) in runs.items():
            if name != "full model":
                metrics["ablations"][name] = {
                    "test_errors": _test_errors(ablation_eval),
                    "yardsticks": ablation_eval["yardsticks"],
                }
    lines += [
        "",
        "## Intended use and limits",
        "",
        f"* {materials[0].upper()}{materials[1:]} near their equilibrium volume (±5 %), "
        "rattles "
        "up to ~0.15 Å, strains of a few percent, collinear FM/AFM/random orderings, with "
        "initial moments as a user would guess them (nominal ±40 %)." + _guess_note(metadata),
        "* Not trained on: other elements or structures, surfaces, defects, non-collinear "
        "spins, high temperature melts, moments far from the nominal ones (low-spin states).",
        _unseen_orderings_limit(evaluation, run_dir, train_config.data.materials),
        "* The DFT reference is PBE+U with Materials Project U values; the model inherits its "
        "errors (e.g. PBE+U exchange constants and Néel temperatures differ from experiment).",
    ]
    text = "\n".join(lines) + "\n"
    write_text_atomic(out_dir / "card.md", text)
    write_text_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=2))
    return text
