"""The labelling budget: the most SCF steps a frame may take, biased and free together.

Kept apart from :mod:`~spinmultinet_ase.dft.orbital_bias` (which imports GPAW) so that a
budget is checked before any GPAW work, and without GPAW installed.
"""

from __future__ import annotations

# Most SCF steps run with the orbital bias before it is released regardless.
MAX_BIAS_STEPS = 20


def check_scf_budget(
    max_scf_steps: int | None, most: int | None = None, biased: int = MAX_BIAS_STEPS
) -> None:
    """Raise a one-line ValueError unless ``max_scf_steps`` is None (no budget) or an SCF
    budget: a whole number of SCF steps, biased and free together, above the ``biased`` steps
    a biased start may take (so that free steps are left) and, if given, at most ``most`` (the
    protocol's limit)."""
    if max_scf_steps is None:
        return
    if (
        not isinstance(max_scf_steps, int)
        or isinstance(max_scf_steps, bool)
        or max_scf_steps <= biased
        or (most is not None and max_scf_steps > most)
    ):
        upper = "" if most is None else f" to the protocol's {most}"
        raise ValueError(
            f"max_scf_steps (--max-scf-steps) must be a whole number from {biased + 1} "
            f"(above the {biased} steps of a biased start){upper}, got {max_scf_steps!r}"
        )
