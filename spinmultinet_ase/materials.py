"""Which materials a model was trained on, recorded in its file and checked by name.

A model's species say which elements it can read, not which compounds it has seen: a model
trained on Fe2O3 reads FeO too and returns numbers nothing has tested. The training summary
(``metadata["training"]["trained_materials"]``) therefore records the reduced formula of every
training frame with its frame count, and the ``spinmultinet`` commands given a material by
name warn when it is not among them
(:func:`~spinmultinet_ase.workflows.inputs.warn_if_untrained`; the Python workflow functions,
such as ``run_scan``, do not). A model file without the record (trained before it existed)
makes no claim and gives no warning.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ase import Atoms
from ase.formula import Formula

from spinmultinet_ase.export import LoadedModel


def reduced_formula(formula: str | Atoms) -> str:
    """The reduced formula of a structure or a formula, metals first (``Fe4O6`` -> ``Fe2O3``).

    Raises:
        ValueError: ``formula`` is a string that is not a chemical formula.
    """
    text = formula.get_chemical_formula() if isinstance(formula, Atoms) else formula
    return Formula(text).reduce()[0].format("metal")


def trained_materials(
    frames: Iterable[Atoms], earlier: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Frame count per reduced formula of the training ``frames``, plus the counts ``earlier``
    recorded by the model this one was fine-tuned from.

    A fine-tuned model learned its source's materials as well as its own data's, so both are
    listed. The counts add up over the chain of runs: a frame trained on in two runs (a
    replayed one) counts twice, so a count says how much training a material had, not how many
    distinct frames of it exist.
    """
    counts = Counter(reduced_formula(atoms) for atoms in frames)
    for name, count in (earlier or {}).items():
        counts[reduced_formula(name)] += count
    return dict(sorted(counts.items()))


def recorded_materials(metadata: Mapping[str, Any]) -> dict[str, int] | None:
    """The trained materials a model file records (None: it records none)."""
    return metadata.get("training", {}).get("trained_materials")


def untrained_warning(
    material: str, models: Sequence[LoadedModel], labels: Sequence[str]
) -> str | None:
    """The warning for running the models (a committee: several) on the named ``material``,
    or None when all of them that record their trained materials were trained on it.

    A committee's result is its members' mean, so every member's numbers enter it: the
    material counts as trained only if each member that records materials lists it (their
    intersection, not their union). Members without a record make no claim either way.

    Args:
        material: the formula the user named (``'FeO'``).
        models: the model, or a committee's members.
        labels: a name for each model in the message (its file name).
    """
    name = reduced_formula(material)
    records = {
        label: {reduced_formula(f) for f in record}
        for model, label in zip(models, labels, strict=True)
        if (record := recorded_materials(model.metadata)) is not None
    }
    missing = [label for label, formulas in records.items() if name not in formulas]
    if not missing:
        return None
    common = sorted(set.intersection(*records.values()))
    return (
        f"{', '.join(missing)} {'was' if len(missing) == 1 else 'were'} not trained on "
        f"{material} (trained on: {', '.join(common) or 'no material common to the committee'}"
        f"); its {material} numbers are untested"
    )
