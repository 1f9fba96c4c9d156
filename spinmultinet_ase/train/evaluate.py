"""``spinmultinet evaluate``: errors per target, split and material, parity plots, yardsticks."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spinmultinet_ase import keys
from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.data.partners import geometry_of
from spinmultinet_ase.export import DTYPES, load_model
from spinmultinet_ase.magnetism.sites import is_ferromagnetic
from spinmultinet_ase.magnetism.yardsticks import (
    exchange_keys,
    formula_units,
    yardstick_table,
)
from spinmultinet_ase.outputs import atomic_path, write_text_atomic
from spinmultinet_ase.train.config import DataConfig
from spinmultinet_ase.train.dataset import (
    SPLITS,
    Dataset,
    frame_to_sample,
    frames_fingerprint,
    read_frames,
    split_of,
)
from spinmultinet_ase.train.loss import REPORT_UNITS, TARGETS, ErrorAccumulator, errors
from spinmultinet_ase.train.replay import checked_records, file_sha256, recorded_rules, split_by

IDEAL_CELLS = "ideal cells"
LARGEST_ERRORS_SHOWN = 5
# DFT energy differences of orderings (meV/f.u.) below this are not resolved by the protocol's
# k-point and cell errors: a model that swaps such a pair is not counted as reordering it.
RESOLVED_ORDERING_MEV = 1.0
TIED_MEV = 1e-6  # energy differences (meV/f.u.) that are rounding: the orderings are equal


def _undistorted_yardsticks(frames: list) -> list:
    """The yardstick cells at zero rhombohedral strain (ideal rocksalt geometry)."""
    return [
        atoms
        for atoms in frames
        if atoms.info.get("yardstick") and atoms.info["rhombohedral_strain"] == 0.0
    ]


def ideal_cell_errors(
    frames: list, model_energy: Callable[[Any], float]
) -> dict[str, dict[str, float]]:
    """Per material and undistorted yardstick cell (``'<cell> <ordering>'``): model − DFT
    energy in meV per formula unit. Shows how an ordering-energy error splits between the
    two orderings, and whether the model's one FM crystal sides with one cell's DFT energy."""
    table: dict[str, dict[str, float]] = {}
    for atoms in _undistorted_yardsticks(frames):
        info = atoms.info
        error = (model_energy(atoms) - atoms.get_potential_energy()) / formula_units(atoms)
        cell = f"{info['cell_name']} {info['ordering']}"
        table.setdefault(info["material"], {})[cell] = 1000 * error
    return table


def ordering_partner_errors(
    frames: list, model_energy: Callable[[Any], float], config: DataConfig
) -> list[dict[str, Any]]:
    """The magnetic energy of ordering partners (one geometry in the same cell in two
    orderings: ``info['partner_of']``), per split, material, cell, ordering and reference
    ordering (the pair's ferromagnetic frame, else its source frame): the number of pairs,
    DFT's mean E(ordering) − E(reference) and the model's mean and mean absolute error of it,
    in meV per formula unit. Within a pair DFT's k-point error largely
    cancels, so these are the cleanest magnetic energies in the data; a bias shared by the
    training pairs is not a generalisation error but one the model did not fit."""
    by_id = {atoms.info["structure_id"]: atoms for atoms in frames}
    groups: dict[tuple[str, str, str, str], list[tuple[float, float]]] = {}
    for atoms in frames:
        source = by_id.get(atoms.info.get("partner_of"))
        if source is None:
            continue
        reference, ordered = (atoms, source) if is_ferromagnetic(atoms) else (source, atoms)
        units = formula_units(atoms)
        dft = (ordered.get_potential_energy() - reference.get_potential_energy()) / units
        model = (model_energy(ordered) - model_energy(reference)) / units
        key = (
            split_of(atoms, config),
            material_of(atoms),
            atoms.info["cell_name"],
            ordered.info["ordering"],
            reference.info["ordering"],
        )
        groups.setdefault(key, []).append((1000 * dft, 1000 * model))
    rows = []
    for (split, material, cell, ordering, reference), pairs in sorted(
        groups.items(), key=lambda item: (SPLITS.index(item[0][0]), item[0][1:])
    ):
        dft, model = np.array(pairs).T
        rows.append(
            {
                "split": split,
                "material": material,
                "cell": cell,
                "ordering": ordering,
                "reference": reference,
                "pairs": len(pairs),
                "dft_mean_meV_per_fu": float(dft.mean()),
                "error_mean_meV_per_fu": float((model - dft).mean()),
                "error_mae_meV_per_fu": float(np.abs(model - dft).mean()),
            }
        )
    return rows


def kendall_tau(first: np.ndarray, second: np.ndarray) -> float:
    """Kendall's rank correlation of two sequences of energies (meV/f.u.; tau-b, which allows
    for ties, differences up to :data:`TIED_MEV` counting as ties): 1 for the same order, −1
    for the reverse."""
    i, j = np.triu_indices(len(first), k=1)

    def signs(values: np.ndarray) -> np.ndarray:
        differences = values[i] - values[j]
        return np.where(np.abs(differences) > TIED_MEV, np.sign(differences), 0.0)

    a, b = signs(first), signs(second)
    norm = np.sqrt(np.count_nonzero(a) * np.count_nonzero(b))
    return float((a * b).sum() / norm) if norm else 1.0


def unseen_ordering_errors(
    frames: list, model_energy: Callable[[Any], float], config: DataConfig
) -> list[dict[str, Any]]:
    """Ordering energies on orderings never trained on: per material and geometry held out of
    training whole (``config.test_cells``/``test_orderings``) in two or more orderings (an
    ordering group: one frame and its partners, ``info['partner_of']``), the energies of all
    orderings relative to DFT's lowest one, model against DFT, in meV per formula unit.

    Returns:
        One row per group: material, cell, the reference ordering (DFT's lowest), the number
        of orderings, the MAE and largest error of the relative energies, Kendall's tau of the
        two rankings, whether the model orders every pair as DFT does (pairs equal to
        :data:`TIED_MEV` aside), whether the model's lowest ordering is DFT's lowest (within
        :data:`RESOLVED_ORDERING_MEV`), the number of pairs DFT separates by more than that
        which the model puts in the other order, and per ordering (DFT order) its DFT and
        model relative energies.
    """
    groups: dict[tuple[str, str], list] = {}
    for atoms in frames:
        info = atoms.info
        if info.get("ordering") in config.test_orderings or info.get("cell_name") in (
            config.test_cells
        ):
            groups.setdefault((material_of(atoms), geometry_of(atoms)), []).append(atoms)
    rows = []
    for (material, _), group in sorted(groups.items()):
        if len(group) < 2:
            continue
        units = formula_units(group[0])
        dft = np.array([a.get_potential_energy() for a in group]) / units
        model = np.array([model_energy(a) for a in group]) / units
        order = np.argsort(dft, kind="stable")
        dft = 1000 * (dft[order] - dft[order[0]])
        model = 1000 * (model[order] - model[order[0]])
        names = [group[k].info["ordering"] for k in order]
        error = np.abs(model - dft)[1:]
        i, j = np.triu_indices(len(dft), k=1)  # i before j in DFT's order
        reversed_pair = model[i] - model[j] > TIED_MEV
        swapped = reversed_pair & (dft[j] - dft[i] > RESOLVED_ORDERING_MEV)
        rows.append(
            {
                "material": material,
                "cell": group[0].info.get("cell_name", "unknown"),
                "reference": names[0],
                "orderings": len(group),
                "error_mae_meV_per_fu": float(error.mean()),
                "error_max_meV_per_fu": float(error.max()),
                "kendall_tau": kendall_tau(dft, model),
                "same_order": not bool(np.any(reversed_pair & (dft[j] - dft[i] > TIED_MEV))),
                "same_lowest": bool(dft[np.argmin(model)] <= RESOLVED_ORDERING_MEV),
                "swapped_resolved_pairs": int(swapped.sum()),
                "relative_meV_per_fu": [
                    {"ordering": n, "dft": float(d), "model": float(m)}
                    for n, d, m in zip(names, dft, model, strict=True)
                ],
            }
        )
    return rows


def material_of(atoms) -> str:
    """The material a frame is reported under (``'all'`` for data that does not name one)."""
    return atoms.info.get("material", "all")


def error_group(atoms) -> str:
    """The row a frame's errors go to: its material, with the yardstick cells apart (their
    undistorted geometries have zero or small forces, which would dilute force errors)."""
    material = material_of(atoms)
    return f"{material} {IDEAL_CELLS}" if atoms.info.get("yardstick") else material


def missing_materials(
    materials: tuple[str, ...],
    test_errors: dict[str, Any],
    dft_yardsticks: dict[str, Any],
    unseen_orderings: list[dict[str, Any]],
) -> dict[str, list[str]]:
    """Per material of ``materials`` that the evaluation cannot judge fully: what the data
    lacks for it: ``"test frames"`` (no row of ``test_errors``, keyed by :func:`error_group`),
    ``"DFT yardsticks"`` (no entry of ``dft_yardsticks``, keyed by
    :func:`~spinmultinet_ase.magnetism.yardsticks.yardstick_key`) and/or ``"unseen
    orderings"`` (no row of :func:`unseen_ordering_errors`)."""
    present = {
        "test frames": {group.split()[0] for group in test_errors},
        "DFT yardsticks": {key.split()[0] for key in dft_yardsticks},
        "unseen orderings": {row["material"] for row in unseen_orderings},
    }
    missing = {}
    for material in materials:
        lacks = [what for what, have in present.items() if material not in have]
        if lacks:
            missing[material] = lacks
    return missing


def data_config_of(metadata: dict[str, Any], data_path: str | Path) -> DataConfig:
    """The split rules the model was trained with (defaults if it does not say), on new data;
    on a file it replayed (``data.replay_paths``, matched by content), the rules that file was
    split by in its training, so its test frames are ones the model never trained on.

    Raises:
        ValueError: the model replayed files without recording how it split each, or
            ``data_path`` is named like a file it replayed but its content differs
            (:func:`~spinmultinet_ase.train.replay.recorded_rules`; one line).
    """
    data = dict(metadata.get("train_config", {}).get("data", {}))
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    config = DataConfig(**{**data, "path": str(data_path)})
    owner = "the model"
    records = checked_records(metadata.get("replay_split_rules"), config.replay_paths, owner)
    if not records:
        return config
    rules = recorded_rules(records, data_path, file_sha256(data_path), owner)
    return config if rules is None else split_by(config, rules)


def errors_by_group(
    module: torch.nn.Module, dataset: Dataset
) -> tuple[dict, ErrorAccumulator, list[dict[str, Any]]]:
    """MAE/RMSE of ``module`` on ``dataset``, the accumulator holding all pairs, and per frame
    (in dataset order) its id, material, ordering, size, rattle, energy error (meV/atom,
    model − DFT) and force MAE (meV/Å), all from one pass of the model."""
    accumulator = ErrorAccumulator(keep_values=True)
    frames = iter(dataset.frames)
    rows = []
    for batch in dataset.batches(16):
        out = module(batch)
        accumulator.add(out, batch)
        error = errors(out, batch)
        atom_force_error = error["forces"].detach().reshape(-1, 3).abs().mean(dim=1)
        frame_force_error = torch.zeros_like(error["energy"]).index_add(
            0, batch[keys.BATCH], atom_force_error
        ) / batch[keys.NUM_ATOMS].to(atom_force_error.dtype)
        for energy_error, force_error in zip(
            error["energy"].detach().tolist(), frame_force_error.tolist(), strict=True
        ):
            atoms = next(frames)
            rows.append(
                {
                    "structure_id": atoms.info["structure_id"],
                    "material": material_of(atoms),
                    "ordering": atoms.info.get("ordering", "unknown"),
                    "atoms": len(atoms),
                    "rattle_angstrom": atoms.info.get("rattle_angstrom"),
                    "energy_meV_per_atom": 1000 * energy_error,
                    "forces_mae_meV_per_A": 1000 * force_error,
                }
            )
    return accumulator.summary(), accumulator, rows


def errors_by_ordering(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per material and magnetic ordering, from per-frame rows of :func:`errors_by_group`: the
    number of frames, the mean (signed, model − DFT) and mean absolute energy error in
    meV/atom, and the force MAE in meV/Å averaged over frames. A held-out ordering that the
    model misses shows as a large mean error on its rows."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["material"], row["ordering"]), []).append(row)
    table = []
    for (material, ordering), group in sorted(groups.items()):
        energy = np.array([row["energy_meV_per_atom"] for row in group])
        forces = np.array([row["forces_mae_meV_per_A"] for row in group])
        table.append(
            {
                "material": material,
                "ordering": ordering,
                "frames": len(group),
                "energy_mean_meV_per_atom": float(energy.mean()),
                "energy_mae_meV_per_atom": float(np.abs(energy).mean()),
                "forces_mae_meV_per_A": float(forces.mean()),
            }
        )
    return table


def parity_plot(accumulator: ErrorAccumulator, path: Path, title: str) -> None:
    """Four panels, DFT against model, for energy, forces, stress and moments."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {
        "energy": "energy (eV/atom)",
        "forces": "force components (eV/Å)",
        "stress": "stress components (GPa)",
        "magmoms": "moments (μB)",
    }
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    for ax, target in zip(axes, TARGETS, strict=True):
        values = accumulator.values[target]
        pairs = torch.cat(values).numpy() if values else np.empty((0, 2))
        if len(pairs):  # none: e.g. no frame with a stress label
            ax.scatter(pairs[:, 0], pairs[:, 1], s=4, alpha=0.5)
            low, high = pairs.min(), pairs.max()
            ax.plot([low, high], [low, high], "k--", lw=0.8)
        ax.set_xlabel(f"DFT {names[target]}")
        ax.set_ylabel("SpinMultiNet")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as temporary:
        fig.savefig(temporary, dpi=120)
    plt.close(fig)


def known_species_frames(frames: list, species: Sequence[str]) -> tuple[list, dict[str, int]]:
    """The frames whose elements are all in ``species``, and per material (:func:`material_of`)
    how many frames were left out for an element not in it."""
    known = set(species)
    kept: list = []
    left_out: Counter[str] = Counter()
    for atoms in frames:
        if set(atoms.get_chemical_symbols()) <= known:
            kept.append(atoms)
        else:
            left_out[material_of(atoms)] += 1
    return kept, dict(sorted(left_out.items()))


def evaluate_model(
    model_path: str | Path,
    data_path: str | Path,
    output_dir: str | Path,
    test_cells: tuple[str, ...] = (),
    split_model: str | Path | None = None,
    known_species_only: bool = False,
) -> dict:
    """Evaluate a model file on a labelled extxyz; writes ``evaluation.json`` and PNG plots.

    Args:
        test_cells: cell names held out on top of those of the training config's.
        split_model: another model file whose training config's split rules (and materials)
            replace this model's (:func:`data_config_of`): its test frames are the test
            split, e.g. to measure a baseline model on a new model's test frames.
        known_species_only: leave out the frames with an element the model lacks (else they
            raise); ``result["left_out"]`` names the model's species and counts them per
            material, and those materials are not reported as missing.
    """
    output = Path(output_dir)
    loaded = load_model(model_path)
    rules = loaded if split_model is None else load_model(split_model)
    config = data_config_of(rules.metadata, data_path)
    config = dataclasses.replace(config, test_cells=config.test_cells + test_cells)
    dtype = DTYPES[loaded.metadata["dtype"]]
    frames = read_frames(config)
    left_out: dict[str, int] = {}
    if known_species_only:
        frames, left_out = known_species_frames(frames, loaded.species)
        materials = tuple(m for m in config.materials if m not in left_out)
        config = dataclasses.replace(config, materials=materials)
    groups: dict[tuple[str, str], list] = {}
    for atoms in frames:
        key = (split_of(atoms, config), error_group(atoms))
        groups.setdefault(key, []).append(atoms)
    result: dict[str, Any] = {"units": {t: REPORT_UNITS[t][0] for t in TARGETS}, "errors": {}}
    if split_model is not None:
        result["split_of"] = str(split_model)
    if known_species_only:
        result["left_out"] = {"species": list(loaded.species), "frames": left_out}
    test_rows: list[dict[str, Any]] = []
    for split in SPLITS:
        split_frames = [a for (s, _), group in groups.items() if s == split for a in group]
        if not split_frames:
            continue
        per_split = {}
        for material in sorted({m for (s, m) in groups if s == split}):
            subset = groups[(split, material)]
            samples = [
                frame_to_sample(a, config, loaded.species, loaded.cutoff, dtype, loaded.spin_mode)
                for a in subset
            ]
            per_split[material], accumulator, rows = errors_by_group(
                loaded.module, Dataset(subset, samples)
            )
            per_split[material]["frames"] = len(subset)
            per_split[material]["frames_fingerprint"] = frames_fingerprint(subset)
            if split == "test":
                test_rows += rows
            parity_plot(
                accumulator, output / f"parity_{split}_{material}.png", f"{split}: {material}"
            )
        result["errors"][split] = per_split
    result["test_errors_by_ordering"] = errors_by_ordering(test_rows)
    test_rows.sort(key=lambda row: abs(row["energy_meV_per_atom"]), reverse=True)
    result["largest_test_errors"] = test_rows[:LARGEST_ERRORS_SHOWN]
    calc = SpinMultiNetCalculator(loaded)

    def model_energy(atoms) -> float:
        copy = atoms.copy()
        copy.calc = calc
        return copy.get_potential_energy()

    result["yardsticks"] = {
        "dft": yardstick_table(frames),
        "model": yardstick_table(frames, model_energy),
    }
    result["ideal_cell_errors_meV_per_fu"] = ideal_cell_errors(frames, model_energy)
    result["ordering_partner_errors"] = ordering_partner_errors(frames, model_energy, config)
    result["unseen_orderings"] = unseen_ordering_errors(frames, model_energy, config)
    result["missing"] = missing_materials(
        config.materials,
        result["errors"].get("test", {}),
        result["yardsticks"]["dft"],
        result["unseen_orderings"],
    )
    write_text_atomic(output / "evaluation.json", json.dumps(result, indent=2))
    return result


def format_report(result: dict) -> str:
    """A terminal table of the errors and the ordering energies, model against DFT."""
    lines = []
    units = result["units"]
    header = f"{'split':<11}{'material':<17}{'frames':>7}" + "".join(
        f"{t + ' MAE (' + units[t] + ')':>24}" for t in TARGETS
    )
    lines.append(header)
    for split, per_material in result["errors"].items():
        for material, errs in per_material.items():
            cells = "".join(f"{errs.get(t + '_mae', float('nan')):>24.4g}" for t in TARGETS)
            lines.append(f"{split:<11}{material:<17}{errs['frames']:>7}{cells}")
    if result["test_errors_by_ordering"]:
        lines.append(
            "\ntest errors by ordering: frames, energy mean and MAE (meV/atom, model − DFT), "
            "force MAE (meV/Å)"
        )
        for row in result["test_errors_by_ordering"]:
            lines.append(
                f"  {row['material']:<6}{row['ordering']:<9}{row['frames']:>5}"
                f"{row['energy_mean_meV_per_atom']:>+10.2f}{row['energy_mae_meV_per_atom']:>10.2f}"
                f"{row['forces_mae_meV_per_A']:>10.1f}"
            )
    if result["largest_test_errors"]:
        lines.append("\nlargest test energy errors (meV/atom, model − DFT; force MAE meV/Å)")
        for row in result["largest_test_errors"]:
            lines.append(
                f"  {row['structure_id']:<36}{row['atoms']:>4} atoms"
                f"{row['energy_meV_per_atom']:>10.2f}{row['forces_mae_meV_per_A']:>10.1f}"
            )
    if result["ordering_partner_errors"]:
        lines.append(
            "\nordering partners (same geometry and cell): pairs, DFT E(ordering) − "
            "E(reference) and model − DFT error mean and MAE (meV/f.u.)"
        )
        for row in result["ordering_partner_errors"]:
            lines.append(
                f"  {row['split']:<11}{row['material']:<6}{row['cell']:<8}"
                f"{row['ordering'] + ' − ' + row['reference']:<14}"
                f"{row['pairs']:>4}{row['dft_mean_meV_per_fu']:>10.2f}"
                f"{row['error_mean_meV_per_fu']:>+10.2f}{row['error_mae_meV_per_fu']:>10.2f}"
            )
    if result["unseen_orderings"]:
        lines.append(
            "\nunseen orderings (held-out shapes, ideal geometry): orderings, energy relative "
            "to DFT's lowest, model − DFT MAE and max (meV/f.u.), Kendall tau, same order"
        )
        for row in result["unseen_orderings"]:
            lines.append(
                f"  {row['material']:<6}{row['cell']:<12}{row['orderings']:>4}"
                f"{row['error_mae_meV_per_fu']:>10.2f}{row['error_max_meV_per_fu']:>10.2f}"
                f"{row['kendall_tau']:>8.2f}  {'yes' if row['same_order'] else 'no'}"
            )
    if result.get("left_out", {}).get("frames"):
        counts = result["left_out"]["frames"]
        lines.append(
            f"\nleft out, an element not in the model ({', '.join(result['left_out']['species'])}"
            f"): {', '.join(f'{m} {n} frames' for m, n in counts.items())}"
        )
    for material, lacks in result.get("missing", {}).items():
        lines.append(f"\n{material}: missing, the data has no {' and no '.join(lacks)} of it")
    dft, model = result["yardsticks"]["dft"], result["yardsticks"]["model"]
    for key in dft:
        lines += _yardstick_lines(key, dft[key], model[key])
    return "\n".join(lines)


def _yardstick_lines(key: str, dft: dict, model: dict) -> list[str]:
    """One yardstick table entry (:func:`yardstick_table`), DFT against model."""
    reference = dft.get("reference", "FM")
    lines = [f"\n{key}: ordering energies (meV/f.u., {reference} = 0), DFT vs model"]
    for ordering, value in dft["orderings_meV_per_fu"].items():
        predicted = model["orderings_meV_per_fu"].get(ordering, np.nan)
        lines.append(f"  {ordering:<8}{value:>10.1f}{predicted:>10.1f}")
    if "lowest" in dft:
        lines.append(f"  {'lowest':<8}{dft['lowest']:>10} {model.get('lowest', '–'):>9}")
    if "ground_state" in dft:
        lines.append(f"  observed ground state: {dft['ground_state']}")
    shells = {s["shell"]: s for s in dft.get("exchange_shells", [])}
    for name, k in exchange_keys(dft):
        notes = [f"{shells[k]['distance_A']:.3f} Å"] if k in shells else []
        if k in shells and shells[k]["fitted_as"] != f"J{k}":
            notes.append(f"= {shells[k]['fitted_as']}")
        at = f" ({', '.join(notes)})" if notes else ""
        predicted = model.get(name, np.nan)
        lines.append(f"  {name:<8}{dft[name]:>10.2f}{predicted:>10.2f}{at}")
    return lines
