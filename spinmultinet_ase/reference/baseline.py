"""A model's card metrics against a baseline model's, row by row.

``spinmultinet model-card RUN_DIR OUT_DIR --compare-to BASELINE/metrics.json`` adds the
comparison to the card and to ``metrics.json``: for every row the baseline has (test MAE per
material and target, magnetic yardsticks, orderings never seen, against DFT or the
Heisenberg stand-in), the baseline's value, the new one and a verdict, "not worse", "worse" or
"missing" (the new model has no such row, e.g. a material it lacks), then one overall verdict.
Entries of a baseline's ``metrics.json`` that are not rows (such as the
``guess_sensitivity_meV_per_fu`` of older cards) are ignored.

A baseline card's test MAEs are over its own test split, which need not be the new model's.
With ``--baseline-run BASELINE_RUN`` (the baseline model evaluated on the new model's data
split, restricted to the frames of elements it has: ``spinmultinet evaluate BASELINE/model.pt
DATA --split-of NEW/model.pt --known-species-only``, plus the Heisenberg stand-in) every row
also has the baseline model's value on the new model's frames, and the verdict is taken on
that like-for-like value where the row has it, else on the card's value; the verdict against
the card's value alone stays in the metrics and in the card's note.

The rule: a quantity where smaller is better (a test MAE; a yardstick's error against DFT,
both models measured against the DFT value of the new evaluation) is not worse when
``new ≤ baseline × (1 + RELATIVE_SLACK) + floor`` (the floor of its kind below) and a card
target the baseline met is still met. A yes/no yardstick (the lowest ordering is DFT's) is not
worse unless the baseline had it right and the new model has not.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spinmultinet_ase.magnetism.yardsticks import exchange_keys
from spinmultinet_ase.reference.card_targets import (
    ERROR_TARGETS,
    STRAIN_TOLERANCE,
    UNSEEN_ORDERING_TARGET,
    exchange_met,
    ordering_met,
    same_minimum,
)
from spinmultinet_ase.train.evaluate import RESOLVED_ORDERING_MEV
from spinmultinet_ase.train.loss import REPORT_UNITS

# Slack for the spread between retrainings (seed, data order) that a regression must exceed.
RELATIVE_SLACK = 0.10
# Floors (absolute, in the quantity's unit): changes below them decide no target and would
# otherwise count float noise on rows whose errors are near zero (the ideal cells' forces
# vanish by symmetry) as a regression.
# Test MAE: 5 % of the card's accuracy target.
TEST_FLOORS = {target: 0.05 * limit for target, limit in ERROR_TARGETS.items()}
# Ordering energies and unseen-ordering errors (meV/f.u.): half the energy difference the
# protocol's DFT resolves between orderings.
ORDERING_FLOOR_MEV = RESOLVED_ORDERING_MEV / 2
# J S² (meV): ordering energies divided by the neighbours that change (8 per ion between FM and
# AFM-I in rocksalt), so an ordering change within ORDERING_FLOOR_MEV moves J S² by less.
EXCHANGE_FLOOR_MEV = 0.1
# The E(δ) minimum: a quarter of the δ resolution the card claims (STRAIN_TOLERANCE's floor).
STRAIN_FLOOR = STRAIN_TOLERANCE[1] / 4
# A count of pairs of unseen orderings in the other order than DFT's.
PAIRS_FLOOR = 0.0

NOT_WORSE, WORSE, MISSING = "not worse", "worse", "missing"
# The metrics entry of the unseen-orderings rows against the two-shell Heisenberg stand-in
# (scripts/unseen_orderings_heisenberg.py), and the comparison's section of them.
STAND_IN = "unseen_orderings_heisenberg"
STAND_IN_SECTION = "unseen orderings (Heisenberg stand-in)"
STAND_IN_NAME = "the two-shell Heisenberg stand-in"
# The metrics entry of the unseen-orderings rows against DFT, and the comparison's section.
UNSEEN, UNSEEN_SECTION = "unseen_orderings", "unseen orderings"


def read_baseline(path: str | Path) -> dict[str, Any]:
    """The baseline's ``metrics.json`` as written by the model card.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not JSON, an entry the comparison reads is not what a card writes (the
            message names it), or no row to compare with (every model would be "not worse").
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no baseline metrics file at {path}")
    try:
        metrics = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"baseline {path} is not JSON: {error}") from None
    where = f"baseline {path}"
    metrics = _table(metrics, where)
    _table(metrics.get("test_errors"), f"{where}: test_errors")
    yardsticks = _table(metrics.get("yardsticks"), f"{where}: yardsticks")
    _table(yardsticks.get("dft"), f"{where}: yardsticks/dft")
    _table(yardsticks.get("model"), f"{where}: yardsticks/model")
    try:  # reads every entry a comparison does: a bad one raises here
        rows = compare_metrics(metrics, {})["rows"]
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if not rows:
        raise ValueError(f"baseline {path} has no row to compare with")
    return dict(metrics)


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} is not a table of entries (got {_shown(value)})")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} is not a number (got {_shown(value)})")
    return float(value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} is not a name (got {_shown(value)})")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _judge(old: float, new: float | None, floor: float, old_ok: bool, new_ok: bool) -> str:
    """The verdict on a quantity where smaller is better (see the module docstring)."""
    if new is None:
        return MISSING
    within = new <= old * (1 + RELATIVE_SLACK) + floor
    return NOT_WORSE if within and (new_ok or not old_ok) else WORSE


def _judge_yes_no(old_right: bool, new_right: bool | None) -> str:
    if new_right is None:
        return MISSING
    return NOT_WORSE if new_right or not old_right else WORSE


def _row(section: str, subject: str, quantity: str, unit: str, **values: Any) -> dict[str, Any]:
    return {"section": section, "subject": subject, "quantity": quantity, "unit": unit} | values


def _test_rows(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Test MAE per row (material, or its ideal cells) and target."""
    rows = []
    for group, old_values in old.items():
        where = f"baseline test_errors/{group}"
        old_values = _table(old_values, where)
        new_values = new.get(group, {})
        frames = (old_values.get("frames"), new_values.get("frames"))
        note = (
            f"test frames {frames[0]} → {frames[1]}"
            if None not in frames and len(set(frames)) > 1
            else ""
        )
        for target, limit in ERROR_TARGETS.items():
            if target not in old_values:
                continue
            before = _number(old_values[target], f"{where}/{target}")
            after = new_values.get(target)
            after = None if after is None else _number(after, f"test_errors/{group}/{target}")
            verdict = _judge(
                before,
                after,
                TEST_FLOORS[target],
                before <= limit,
                after is not None and after <= limit,
            )
            rows.append(
                _row(
                    "test errors",
                    group,
                    f"{target} MAE",
                    REPORT_UNITS[target][0],
                    dft=None,
                    baseline=before,
                    new=after,
                    verdict=verdict,
                    note=note,
                )
            )
    return rows


def _yardstick_quantities(dft: Mapping[str, Any], where: str) -> list[tuple[str, str, Any]]:
    """The quantities of one yardstick entry: (name, unit, the path of its value in an entry;
    ``("ground", G)`` for whether the lowest ordering is the observed ground state G)."""
    quantities: list[tuple[str, str, Any]] = []
    reference = dft.get("reference", "FM")
    energies = _table(dft.get("orderings_meV_per_fu", {}), f"{where}/orderings_meV_per_fu")
    for ordering in energies:
        if ordering != reference:
            quantities.append(
                (
                    f"E({ordering})-E({reference})",
                    "meV/f.u.",
                    ("orderings_meV_per_fu", ordering),
                )
            )
    if "lowest" in dft:
        quantities.append(("lowest ordering", "", ("lowest",)))
    if "ground_state" in dft:
        ground = _text(dft["ground_state"], f"{where}/ground_state")
        quantities.append((f"observed ground state {ground} lowest", "", ("ground", ground)))
    for exchange, shell in exchange_keys(dft):
        quantities.append((f"J{shell} S²", "meV", (exchange,)))
    curves = _table(dft.get("rhombohedral", {}), f"{where}/rhombohedral")
    for ordering in curves:
        quantities.append(
            (
                f"{ordering} E(δ) minimum strain",
                "",
                ("rhombohedral", ordering, "minimum", "strain"),
            )
        )
    return quantities


def _lookup(entry: Mapping[str, Any] | None, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in nested tables, None where any step is absent."""
    value: Any = entry
    for step in path:
        if not isinstance(value, Mapping) or step not in value:
            return None
        value = value[step]
    return value


def _yardstick_rows(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each magnetic yardstick of the baseline: both models' errors against the new DFT."""
    rows = []
    old_dft, old_model = old["dft"], old["model"]
    new_dft, new_model = new.get("dft", {}), new.get("model", {})
    for key, dft_entry in old_dft.items():
        where = f"baseline yardsticks/dft/{key}"
        dft_entry = _table(dft_entry, where)
        before_entry = _table(old_model.get(key), f"baseline yardsticks/model/{key}")
        dft_now, after_entry = new_dft.get(key), new_model.get(key)
        for name, unit, path in _yardstick_quantities(dft_entry, where):
            if path[0] == "rhombohedral" and _lookup(before_entry, path) is None:
                continue  # the baseline model has no such curve: as in its card
            if path[0] in ("lowest", "ground"):
                rows.append(
                    _yes_no_row(key, name, path, dft_entry, before_entry, dft_now, after_entry)
                )
                continue
            rows.append(
                _error_row(key, name, unit, path, dft_entry, before_entry, dft_now, after_entry)
            )
    return rows


def _yes_no_row(
    key: str,
    name: str,
    path: tuple[str, ...],
    dft_then: Mapping[str, Any],
    before: Mapping[str, Any],
    dft_now: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The lowest ordering (DFT's, per model) or whether it is the observed ground state."""
    where = f"baseline yardsticks/model/{key}/lowest"
    old_lowest = _text(before.get("lowest"), where)
    new_lowest = _lookup(after, ("lowest",))
    if path[0] == "ground":
        truth = path[1]
    else:
        truth = _lookup(dft_now, ("lowest",)) or _text(dft_then["lowest"], where)
    new_right = None if new_lowest is None else new_lowest == truth
    return _row(
        "yardsticks",
        key,
        name,
        "",
        dft=truth,
        baseline=old_lowest,
        new=new_lowest,
        verdict=_judge_yes_no(old_lowest == truth, new_right),
        note="",
    )


def _yardstick_floor(path: tuple[str, ...]) -> float:
    if path[0] == "rhombohedral":
        return STRAIN_FLOOR
    return ORDERING_FLOOR_MEV if path[0] == "orderings_meV_per_fu" else EXCHANGE_FLOOR_MEV


def _bracketed(entry: Mapping[str, Any] | None, path: tuple[str, ...]) -> bool:
    """Whether the E(δ) minimum whose strain is at ``path`` is bracketed (an entry written
    before the mark counts as bracketed, as in the card)."""
    return _lookup(entry, (*path[:-1], "bracketed")) is not False


def _meets_yardstick(
    path: tuple[str, ...], dft: float, value: float, bracketed: tuple[bool, bool]
) -> bool:
    """Whether a model's yardstick number meets the card's target against DFT's;
    ``bracketed``: whether DFT's and the model's E(δ) minima are (rhombohedral paths only)."""
    if path[0] == "rhombohedral":
        return same_minimum(dft, value, *bracketed)
    if path[0] == "orderings_meV_per_fu":
        return ordering_met(dft, value)
    return exchange_met(dft, value)


def _error_row(
    key: str,
    name: str,
    unit: str,
    path: tuple[str, ...],
    dft_then: Mapping[str, Any],
    before: Mapping[str, Any],
    dft_now: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A yardstick number: both models' errors against the new evaluation's DFT value (the
    baseline's where the new one lacks it), with the card's target for each."""
    where = f"baseline yardsticks/{{}}/{key}/{'/'.join(path)}"
    then = _number(_lookup(dft_then, path), where.format("dft"))
    old_value = _number(_lookup(before, path), where.format("model"))
    new_dft, new_value = _lookup(dft_now, path), _lookup(after, path)
    dft = then if new_dft is None else _number(new_dft, f"yardsticks/dft/{key}")
    new_value = None if new_value is None else _number(new_value, f"yardsticks/model/{key}")
    old_error = abs(old_value - dft)
    new_error = None if new_value is None else abs(new_value - dft)
    dft_bracketed = _bracketed(dft_then if new_dft is None else dft_now, path)
    verdict = _judge(
        old_error,
        new_error,
        _yardstick_floor(path),
        _meets_yardstick(path, dft, old_value, (dft_bracketed, _bracketed(before, path))),
        new_value is not None
        and _meets_yardstick(path, dft, new_value, (dft_bracketed, _bracketed(after, path))),
    )
    same_dft = math.isclose(then, dft, rel_tol=1e-6, abs_tol=1e-9)
    return _row(
        "yardsticks",
        key,
        name,
        unit,
        dft=dft,
        baseline=old_value,
        new=new_value,
        baseline_error=old_error,
        new_error=new_error,
        verdict=verdict,
        note="" if same_dft else f"baseline's DFT {then:.4g}",
    )


# Per unseen-orderings row: (key, label given what the model is compared with, unit, floor,
# whether a value meets the card's target)
_UNSEEN_NUMBERS = (
    (
        "error_mae_meV_per_fu",
        "ordering-energy MAE against {}",
        "meV/f.u.",
        ORDERING_FLOOR_MEV,
        lambda value: True,
    ),
    (
        "error_max_meV_per_fu",
        "largest ordering-energy error against {}",
        "meV/f.u.",
        ORDERING_FLOOR_MEV,
        lambda value: value <= UNSEEN_ORDERING_TARGET,
    ),
    (
        "swapped_resolved_pairs",
        f"pairs in the other order than {{}} (more than {RESOLVED_ORDERING_MEV:g} meV/f.u. apart "
        "there)",
        "",
        PAIRS_FLOOR,
        lambda value: value == 0,
    ),
)


def _unseen_rows(
    old: list[Any], new: list[Any], section: str, key: str, against: str
) -> list[dict[str, Any]]:
    """Per material and held-out cell of the baseline: its errors on orderings never seen
    (``section`` of the rows, ``key`` the metrics entry they come from, ``against`` what
    the models are compared with there)."""
    by_cell = {(row.get("material"), row.get("cell")): row for row in new}
    rows = []
    for index, row in enumerate(old):
        where = f"baseline {key}/{index}"
        row = _table(row, where)
        material = _text(row.get("material"), f"{where}/material")
        cell = _text(row.get("cell"), f"{where}/cell")
        ours = by_cell.get((material, cell))
        subject = f"{material} {cell}"
        for number, label, unit, floor, meets in _UNSEEN_NUMBERS:
            before = _number(row.get(number), f"{where}/{number}")
            after = None if ours is None else _number(ours[number], f"{key}/{number}")
            verdict = _judge(
                before, after, floor, meets(before), after is not None and meets(after)
            )
            rows.append(
                _row(
                    section,
                    subject,
                    label.format(against),
                    unit,
                    dft=None,
                    baseline=before,
                    new=after,
                    verdict=verdict,
                    note="",
                )
            )
        before = row.get("same_lowest")
        if not isinstance(before, bool):
            raise ValueError(f"{where}/same_lowest is not true or false (got {_shown(before)})")
        after = None if ours is None else bool(ours["same_lowest"])
        rows.append(
            _row(
                section,
                subject,
                f"same lowest ordering as {against}",
                "",
                dft=None,
                baseline=before,
                new=after,
                verdict=_judge_yes_no(before, after),
                note="",
            )
        )
    return rows


def _materials(metrics: Mapping[str, Any]) -> set[str]:
    """The materials a metrics table has any row for."""
    keys = [
        *metrics.get("test_errors", {}),
        *metrics.get("yardsticks", {}).get("dft", {}),
        *(row.get("material", "") for row in metrics.get("unseen_orderings", [])),
        *(row.get("material", "") for row in metrics.get(STAND_IN, [])),
    ]
    return {key.split()[0] for key in keys if key}


def _list(metrics: Mapping[str, Any], key: str) -> list[Any]:
    value = metrics.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"baseline {key} is not a list (got {_shown(value)})")
    return value


def compare_metrics(baseline: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Every row of ``baseline`` (a card's ``metrics.json``) against ``new`` (the same layout).

    Returns:
        ``rows`` (section, subject, quantity, unit, dft, baseline, new, for yardsticks the
        errors ``baseline_error`` and ``new_error``, verdict, note), the baseline's materials
        the new metrics lack (``materials_missing``) and the new metrics' materials the
        baseline lacks (``materials_new``), whether the baseline's unseen-orderings rows could
        be compared (``unseen_orderings_compared``: it has some), the tolerance, and
        ``not_worse``: every row is.

    Raises:
        ValueError: a baseline entry that is not what a model card writes (one line).
    """
    unseen, stand_in = _list(baseline, UNSEEN), _list(baseline, STAND_IN)
    rows = [
        *_test_rows(baseline["test_errors"], new.get("test_errors", {})),
        *_yardstick_rows(baseline["yardsticks"], new.get("yardsticks", {})),
        *_unseen_rows(unseen, new.get(UNSEEN, []), UNSEEN_SECTION, UNSEEN, "DFT"),
        *_unseen_rows(stand_in, new.get(STAND_IN, []), STAND_IN_SECTION, STAND_IN, STAND_IN_NAME),
    ]
    old_materials, new_materials = _materials(baseline), _materials(new)
    return {
        "tolerance": {
            "relative": RELATIVE_SLACK,
            "floors": {
                **{f"{t} MAE ({REPORT_UNITS[t][0]})": f for t, f in TEST_FLOORS.items()},
                "ordering energies, unseen-ordering errors (meV/f.u.)": ORDERING_FLOOR_MEV,
                "J S² (meV)": EXCHANGE_FLOOR_MEV,
                "E(δ) minimum strain": STRAIN_FLOOR,
                "swapped pairs": PAIRS_FLOOR,
            },
        },
        "rows": rows,
        "materials_missing": sorted(old_materials - new_materials),
        "materials_new": sorted(new_materials - old_materials),
        "unseen_orderings_compared": bool(unseen or stand_in),
        "not_worse": all(row["verdict"] == NOT_WORSE for row in rows),
    }


def _check_same_frames(here: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Raise a ValueError unless ``here``'s test rows are ``new``'s, less the materials
    ``here`` left out for an element its model lacks: the same number of frames per row and,
    where both evaluations record it, the same frames (``frames_fingerprint``)."""
    left_out = set(here["left_out"])
    theirs, ours = here["test_errors"], new.get("test_errors", {})
    groups = set(theirs) | {g for g in ours if g.split()[0] not in left_out}
    for group in sorted(groups):
        there, mine = theirs.get(group, {}), ours.get(group, {})
        counts = (there.get("frames", 0), mine.get("frames", 0))
        prints = (there.get("frames_fingerprint"), mine.get("frames_fingerprint"))
        if counts[0] != counts[1]:
            differ = f"{counts[0]} frames there, {counts[1]} here"
        elif None not in prints and prints[0] != prints[1]:
            differ = f"{counts[0]} frames in both, but other frames"
        else:
            continue
        raise ValueError(
            f"the baseline's evaluation is not on this model's test frames ({group}: {differ}): "
            "evaluate the baseline model on this model's data with `spinmultinet evaluate ... "
            "--split-of THIS_MODEL --known-species-only`"
        )


def _row_key(row: Mapping[str, Any]) -> tuple[str, str, str]:
    return row["section"], row["subject"], row["quantity"]


def compare_with_baseline(
    card: Mapping[str, Any], new: Mapping[str, Any], here: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """:func:`compare_metrics` of ``card`` (the baseline's ``metrics.json``: each value over
    its own test frames) with ``new``, and, given ``here`` (the baseline model's metrics on
    ``new``'s test frames and yardsticks, in the same layout, with ``left_out``: frames per
    material left out for an element the baseline lacks), like for like.

    With ``here`` every row has both baseline values, ``baseline`` (its card's) and
    ``baseline_here`` (on these frames), a row only ``here`` has joins, and the verdict is
    taken on ``baseline_here`` where the row has it, else on the card's value
    (``verdict_card``: the verdict against the card's value alone; ``card_not_worse``: every
    row is not worse than the card). ``like_for_like`` holds the test frames compared per row
    and the frames left out per material.

    Raises:
        ValueError: a baseline entry that is not what a model card writes, or ``here``'s
            test frames are not ``new``'s (one line).
    """
    comparison = compare_metrics(card, new)
    if here is None:
        return comparison
    _check_same_frames(here, new)
    same = compare_metrics(here, new)
    like_for_like = {_row_key(row): row for row in same["rows"]}
    rows = []
    for row in comparison["rows"]:
        ours = like_for_like.pop(_row_key(row), None)
        if ours is None:
            rows.append(row | {"baseline_here": None, "verdict_card": row["verdict"]})
        else:
            rows.append(_merged(row, ours))
    rows += [_merged(None, ours) for ours in like_for_like.values()]
    return comparison | {
        "rows": rows,
        "unseen_orderings_compared": (
            comparison["unseen_orderings_compared"] or same["unseen_orderings_compared"]
        ),
        "card_not_worse": comparison["not_worse"],
        "not_worse": all(row["verdict"] == NOT_WORSE for row in rows),
        "like_for_like": {
            "test_frames": {g: v["frames"] for g, v in here["test_errors"].items()},
            "left_out": dict(here["left_out"]),
        },
    }


def _merged(card: dict[str, Any] | None, here: dict[str, Any]) -> dict[str, Any]:
    """A like-for-like row (``here``) with the card's value and verdict (``card``, where the
    card has the row)."""
    row = dict(here) | {"baseline_here": here["baseline"], "baseline": None, "note": ""}
    if "baseline_error" in here:
        row["baseline_here_error"] = row.pop("baseline_error")
    if card is None:
        return row | {"verdict_card": None}
    return row | {
        "baseline": card["baseline"],
        "baseline_error": card.get("baseline_error"),
        "verdict_card": card["verdict"],
        "note": card["note"],
    }


def _shown_value(value: Any, error: float | None = None) -> str:
    if value is None:
        return "–"
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    return text if error is None else f"{text} (Δ {error:.2g})"


def _listed(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _like_for_like_intro(comparison: Mapping[str, Any], baseline_run: str) -> str:
    frames = comparison["like_for_like"]["test_frames"]
    left_out = comparison["like_for_like"]["left_out"]
    per_material: dict[str, int] = {}
    for group, count in frames.items():
        material = group.split()[0]
        per_material[material] = per_material.get(material, 0) + count
    text = (
        f"The baseline model was also evaluated on this model's test frames and yardsticks "
        f"(`{baseline_run}`: `spinmultinet evaluate BASELINE/model.pt DATA --split-of "
        f"THIS_MODEL --known-species-only`, and the Heisenberg stand-in): "
        + (
            f"{_listed([f'{m} {n}' for m, n in sorted(per_material.items())])} test frames"
            if per_material
            else "no test frame"
        )
    )
    if left_out:
        text += f"; {_listed(list(left_out))}: not in the baseline (an element it lacks)"
    return (
        text + ". The verdict is taken on that like-for-like value where a row has it, else on "
        "the baseline card's own value (over its own test split: where the frame counts differ, "
        "so do the frames); the note gives the verdict against the card where it differs."
    )


def comparison_lines(
    comparison: Mapping[str, Any], baseline: str, baseline_run: str | None = None
) -> list[str]:
    """The card's section on a comparison (:func:`compare_with_baseline`) with the metrics at
    ``baseline`` and, where given, the baseline model's evaluation in ``baseline_run`` (paths
    as the reader should see them)."""
    floors = comparison["tolerance"]["floors"]
    rows = comparison["rows"]
    here = "like_for_like" in comparison
    lines = [
        "",
        "## Against the baseline model",
        "",
        f"Baseline: `{baseline}`. A row is not worse when this model's value (for a yardstick: "
        "its error Δ against DFT, both models measured against the DFT value of this "
        f"evaluation) is at most the baseline's × {1 + RELATIVE_SLACK:g} plus the floor of its "
        "kind ("
        + ", ".join(f"{name} {value:g}" for name, value in floors.items())
        + ") and a target the baseline met is still met; the lowest ordering stays DFT's "
        "where the baseline's was. A baseline row this model lacks is missing. "
        + (
            _like_for_like_intro(comparison, str(baseline_run))
            if here
            else "Test MAEs are over each model's own test split: where the frame counts "
            "differ, so do the frames."
        ),
        "",
    ]
    if here:
        lines += [
            "| row | quantity | DFT | baseline's card | baseline on these frames | this model "
            "| verdict | note |",
            "|---|---|---|---|---|---|---|---|",
        ]
    else:
        lines += [
            "| row | quantity | DFT | baseline | this model | verdict | note |",
            "|---|---|---|---|---|---|---|",
        ]
    for row in rows:
        quantity = f"{row['quantity']} ({row['unit']})" if row["unit"] else row["quantity"]
        values = [_shown_value(row["baseline"], row.get("baseline_error"))]
        note = row["note"]
        if here:
            values.append(_shown_value(row["baseline_here"], row.get("baseline_here_error")))
            if row["verdict_card"] not in (None, row["verdict"]):
                note = "; ".join(filter(None, [note, f"against the card: {row['verdict_card']}"]))
        lines.append(
            f"| {row['subject']} | {quantity} | {_shown_value(row['dft'])} | "
            + " | ".join(values)
            + f" | {_shown_value(row['new'], row.get('new_error'))} | {row['verdict']} | "
            f"{note} |"
        )
    if not comparison["unseen_orderings_compared"]:
        lines += ["", "Orderings never seen: not compared, the baseline has no such rows."]
    if comparison["materials_new"]:
        lines += ["", f"Not in the baseline: {', '.join(comparison['materials_new'])}."]
    lines += ["", f"**Overall: {_overall(comparison)}**"]
    if here:
        card_rows = [row for row in rows if row["verdict_card"] is not None]
        against_card = _overall(
            {
                "rows": [row | {"verdict": row["verdict_card"]} for row in card_rows],
                "not_worse": comparison["card_not_worse"],
                "materials_missing": comparison["materials_missing"],
            }
        )
        lines += ["", f"Against the baseline card's own values alone: {against_card}"]
    return lines


def _overall(comparison: Mapping[str, Any]) -> str:
    """The overall line of a comparison: not worse on every row, or the rows that are not."""
    rows = comparison["rows"]
    if comparison["not_worse"]:
        return f"not worse than the baseline on all {len(rows)} rows."
    worse = [r for r in rows if r["verdict"] == WORSE]
    missing = [r for r in rows if r["verdict"] == MISSING]
    parts = []
    if worse:
        named = "; ".join(f"{r['subject']} {r['quantity']}" for r in worse)
        parts.append(f"worse on {len(worse)} of {len(rows)} rows ({named})")
    if missing:
        lacking = comparison["materials_missing"]
        parts.append(
            f"{len(missing)} rows missing"
            + (f" (materials {', '.join(lacking)} not in this model)" if lacking else "")
        )
    return "; ".join(parts) + "."
