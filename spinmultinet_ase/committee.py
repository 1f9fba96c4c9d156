"""Committees of models: the members' mean as the prediction and their spread as its uncertainty.

A committee is several models of the same species, cutoff, spin mode and dtype, trained from
different seeds (and data orders). Its results are the members' mean; the spread is the
population standard deviation over the members (``ddof=0``), per component: ``forces_std`` has
the shape of ``forces``, ``stress_std`` of the Voigt ``stress``, and so on. The mean forces,
stress and magnetic forces are the derivatives of the mean energy, so they stay consistent.
Each member's own energy is kept too (:data:`MEMBER_ENERGIES`): the spread of a difference of
energies (an ordering energy) is the spread of the members' differences, which the spreads of
the two energies do not give (the members' errors are correlated).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spinmultinet_ase import keys
from spinmultinet_ase.export import LoadedModel

# result -> its spread's name; all in the result's unit (eV, eV/Å, eV/Å³, μB)
SPREADS = {
    "energy": "energy_std",
    "energies": "energies_std",
    "forces": "forces_std",
    "stress": "stress_std",
    "magmoms": "magmoms_std",
}
# each member's energy (eV), shape (M,), in the order the members were given
MEMBER_ENERGIES = "member_energies"
# results averaged over the members (spin latents are not: each model has its own latent basis)
AVERAGED = (
    "energy",
    "free_energy",
    "energies",
    "forces",
    "stress",
    "magmoms",
    "magmom",
    keys.MAGNETIC_FORCES,
)


def check_members(models: Sequence[LoadedModel]) -> None:
    """Raise ``ValueError`` (one line) unless all models agree on species (in order), cutoff,
    spin mode and dtype, and there is at least one."""
    if not models:
        raise ValueError("no model given: pass a model file, or a list of them for a committee")
    first = models[0]
    for number, model in enumerate(models[1:], start=2):
        for what, key in (("species", "species"), ("cutoff", "cutoff"), ("spin mode", "spin_mode")):
            if model.metadata[key] != first.metadata[key]:
                raise ValueError(
                    f"committee model {number} has {what} {model.metadata[key]}, model 1 has "
                    f"{first.metadata[key]}; a committee needs models of the same species (in "
                    "the same order), cutoff and spin mode"
                )
        if model.metadata["dtype"] != first.metadata["dtype"]:
            raise ValueError(
                f"committee model {number} is {model.metadata['dtype']}, model 1 is "
                f"{first.metadata['dtype']}; pass dtype='float32' or 'float64' to run all in one"
            )


def committee_results(members: Sequence[dict]) -> dict:
    """The members' mean results, the spreads of :data:`SPREADS` (population std) and the
    members' energies (:data:`MEMBER_ENERGIES`).

    Args:
        members: one calculator results dict per member (ASE units), all for one structure.
    """
    results = {}
    for key in AVERAGED:
        if key not in members[0]:
            continue
        stacked = np.stack([np.asarray(member[key], dtype=float) for member in members])
        mean = stacked.mean(axis=0)
        results[key] = float(mean) if mean.ndim == 0 else mean
        if key in SPREADS:
            spread = stacked.std(axis=0, ddof=0)
            results[SPREADS[key]] = float(spread) if spread.ndim == 0 else spread
    results[MEMBER_ENERGIES] = np.array([float(member["energy"]) for member in members])
    return results


def atom_force_spreads(forces_std: np.ndarray) -> np.ndarray:
    """Each atom's force spread (eV/Å), shape (N,): the norm over x, y, z of ``forces_std``,
    which is the root mean square over the members of ``|F_k,i − F̄_i|``."""
    return np.linalg.norm(np.asarray(forces_std), axis=1)
