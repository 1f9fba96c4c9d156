"""The multi-task loss and the error metrics reported for each target."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from ase.units import GPa

from spinmultinet_ase import keys
from spinmultinet_ase.train.config import LossConfig

TARGETS = ("energy", "forces", "stress", "magmoms")

# How each target's errors are reported: unit name and the factor from model units.
REPORT_UNITS = {
    "energy": ("meV/atom", 1000.0),
    "forces": ("meV/Å", 1000.0),
    "stress": ("GPa", 1.0 / GPa),
    "magmoms": ("μB", 1.0),
}


def errors(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Prediction minus target for each target, flattened (energy per atom; stress where known)."""
    num_atoms = batch[keys.NUM_ATOMS].to(out[keys.ENERGY].dtype)
    has_stress = batch[keys.HAS_STRESS]
    return {
        "energy": (out[keys.ENERGY] - batch[keys.TARGET_ENERGY]) / num_atoms,
        "forces": (out[keys.FORCES] - batch[keys.TARGET_FORCES]).reshape(-1),
        "stress": (out[keys.STRESS] - batch[keys.TARGET_STRESS])[has_stress].reshape(-1),
        "magmoms": (out[keys.MAGMOMS] - batch[keys.TARGET_MAGMOMS]).reshape(-1),
    }


def partner_deviations(energy_errors: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """For each frame that shares its group (``keys.PARTNER_GROUP``) with another: its
    per-atom energy error minus the mean over its group, i.e. the error of its energy relative
    to the same geometry in the other orderings."""
    _, group, size = torch.unique(groups, return_inverse=True, return_counts=True)
    total = torch.zeros(len(size), dtype=energy_errors.dtype).index_add(0, group, energy_errors)
    deviation = energy_errors - (total / size.to(energy_errors.dtype))[group]
    return deviation[size[group] > 1]


def _report_values(
    out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """(target, prediction) columns per target in report units (energy: eV/atom)."""
    num_atoms = batch[keys.NUM_ATOMS].to(out[keys.ENERGY].dtype)
    has_stress = batch[keys.HAS_STRESS]
    pairs = {
        "energy": (batch[keys.TARGET_ENERGY] / num_atoms, out[keys.ENERGY] / num_atoms, 1.0),
        "forces": (batch[keys.TARGET_FORCES], out[keys.FORCES], 1.0),
        "stress": (batch[keys.TARGET_STRESS][has_stress], out[keys.STRESS][has_stress], 1 / GPa),
        "magmoms": (batch[keys.TARGET_MAGMOMS], out[keys.MAGMOMS], 1.0),
    }
    return {
        t: torch.stack([a.detach().reshape(-1), b.detach().reshape(-1)], dim=1).double() * f
        for t, (a, b, f) in pairs.items()
    }


@dataclass
class MultiTaskLoss:
    """Σ_t w_t · mean ℓ(error_t / scale_t): each target in units of its training-set spread.

    Besides the four targets, the term ``partners`` takes the energy of ordering partners
    relative to each other (:func:`partner_deviations`): the magnetic energy of one geometry,
    where DFT's k-point error largely cancels, unlike in the total energies of different cells.
    """

    config: LossConfig
    scales: dict[str, float]

    def terms(
        self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The errors each loss term averages (:func:`errors`, plus ``partners``)."""
        terms = errors(out, batch)
        if keys.PARTNER_GROUP in batch:
            terms["partners"] = partner_deviations(terms["energy"], batch[keys.PARTNER_GROUP])
        return terms

    def __call__(
        self,
        out: dict[str, torch.Tensor],
        batch: dict[str, torch.Tensor],
        counts: dict[str, int] | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of ``batch`` and its terms.

        Args:
            out: the model's outputs.
            batch: the batch with its targets.
            counts: how many values each term averages over; default: those in ``batch``.
                A share of a batch split over processes passes the whole batch's counts, so
                that the shares' losses add up to the loss of the whole batch.
        """
        total = torch.zeros((), dtype=out[keys.ENERGY].dtype)
        parts = {}
        for target, error in self.terms(out, batch).items():
            weight = getattr(self.config, target)
            count = error.numel() if counts is None else counts[target]
            if weight == 0 or error.numel() == 0 or count == 0:
                continue
            scaled = error / self.scales[target]
            if self.config.kind == "huber":
                term = torch.nn.functional.huber_loss(
                    scaled, torch.zeros_like(scaled), reduction="sum", delta=self.config.huber_delta
                )
            else:
                term = scaled.pow(2).sum()
            term = term / count
            total = total + weight * term
            parts[target] = float(term.detach())
        return total, parts


class ErrorAccumulator:
    """Running MAE and RMSE per target, reported in :data:`REPORT_UNITS`.

    With ``keep_values`` it also keeps (target, prediction) pairs in report units, for plots.
    """

    def __init__(self, keep_values: bool = False) -> None:
        self.abs_sum = dict.fromkeys(TARGETS, 0.0)
        self.sq_sum = dict.fromkeys(TARGETS, 0.0)
        self.count = dict.fromkeys(TARGETS, 0)
        self.values: dict[str, list[torch.Tensor]] | None = (
            {t: [] for t in TARGETS} if keep_values else None
        )

    def add(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> None:
        for target, error in errors(out, batch).items():
            error = error.detach().double()
            self.abs_sum[target] += float(error.abs().sum())
            self.sq_sum[target] += float(error.pow(2).sum())
            self.count[target] += error.numel()
        if self.values is not None:
            for target, pair in _report_values(out, batch).items():
                self.values[target].append(pair)

    def summary(self) -> dict[str, float]:
        """``{target}_mae`` and ``{target}_rmse`` in report units, for targets seen."""
        result = {}
        for target in TARGETS:
            if self.count[target]:
                factor = REPORT_UNITS[target][1]
                result[f"{target}_mae"] = factor * self.abs_sum[target] / self.count[target]
                result[f"{target}_rmse"] = (
                    factor * (self.sq_sum[target] / self.count[target]) ** 0.5
                )
        return result
