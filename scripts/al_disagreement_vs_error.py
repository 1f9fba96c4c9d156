"""Did a committee's disagreement rank the true errors of the pool it picked from?

For each round K of a finished ``spinmultinet active-learn`` run with a ``labelled_pool``
(committee ``RUN/round_K/member_*/model.pt``), on the pool structures not yet picked when
that committee picked (the picks of ``round_1 … round_K``, from their ``candidates.extxyz``,
left out): per structure the committee's disagreement
(:func:`spinmultinet_ase.train.active.spreads`: the largest per-atom force spread, eV/Å)
and the committee mean's true errors against the labels: force MAE (meV/Å, over atoms and
components, as the learning curve's), largest per-atom force error (eV/Å, the norm; the
disagreement's counterpart) and energy error (meV/atom); Spearman's ρ between the
disagreement and each error (with its p-value), over all of them and per material, and which
structures round K + 1 picked. Likewise for the energy: the committee's energy spread per
magnetic ion (:func:`spinmultinet_ase.train.active.spreads`, the ``score: energy``) against
the energy error per magnetic ion (both meV; per atom in a structure without moments, as
:func:`spinmultinet_ase.train.active.magnetic_ions` counts). Written as JSON, atomically.

Run: python scripts/al_disagreement_vs_error.py runs/al_retro/disagreement \\
        --pool runs/al_retro/pool.extxyz --labelled runs/al_retro/labelled_pool.extxyz \\
        --output runs/al_retro/disagreement_vs_error.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import read
from scipy.stats import spearmanr

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.dft.label import STRUCTURE_ID
from spinmultinet_ase.outputs import write_text_atomic
from spinmultinet_ase.train.active import magnetic_ions, spreads

ERRORS = ("forces_mae_meV_per_A", "forces_max_eV_per_A", "energy_meV_per_atom")
ENERGY_SPREAD = "energy_spread_meV_per_ion"  # ranked against energy_meV_per_ion


def picks(run: Path, round_: int) -> list[str]:
    """The structure ids round ``round_`` picked (none if it has no candidates file)."""
    path = run / f"round_{round_}" / "candidates.extxyz"
    return [a.info[STRUCTURE_ID] for a in read(path, ":")] if path.is_file() else []


def frame_row(atoms: Atoms, labelled: Atoms, calc: SpinMultiNetCalculator) -> dict[str, Any]:
    """One pool structure's disagreements and the committee mean's errors against its labels."""
    spread, energy_spread = spreads(atoms, calc)
    copy = atoms.copy()
    copy.calc = calc
    error = copy.get_forces() - labelled.get_forces()
    energy = copy.get_potential_energy() - labelled.get_potential_energy()
    return {
        STRUCTURE_ID: atoms.info[STRUCTURE_ID],
        "material": atoms.info.get("material", "all"),
        "cell_name": atoms.info.get("cell_name", ""),
        "disagreement_eV_per_A": spread,
        "forces_mae_meV_per_A": 1e3 * float(np.abs(error).mean()),
        "forces_max_eV_per_A": float(np.linalg.norm(error, axis=1).max()),
        "energy_meV_per_atom": 1e3 * abs(energy) / len(atoms),
        "energy_spread_meV_per_ion": 1e3 * energy_spread,
        "energy_meV_per_ion": 1e3 * abs(energy) / magnetic_ions(atoms),
    }


def round_report(
    run: Path, round_: int, pool: Sequence[Atoms], labels: dict[str, Atoms]
) -> dict[str, Any]:
    """Round ``round_``'s committee on the pool left to it: rows, ρ per error, next picks."""
    members = sorted((run / f"round_{round_}").glob("member_*/model.pt"))
    calc = SpinMultiNetCalculator([str(path) for path in members])
    taken = {sid for r in range(1, round_ + 1) for sid in picks(run, r)}
    left = [a for a in pool if a.info[STRUCTURE_ID] not in taken]
    rows = [frame_row(a, labels[a.info[STRUCTURE_ID]], calc) for a in left]
    chosen = set(picks(run, round_ + 1))
    for row in rows:
        row["picked_next_round"] = row[STRUCTURE_ID] in chosen
    materials = sorted({row["material"] for row in rows})
    return {
        "round": round_,
        "committee": [str(path) for path in members],
        "structures": len(rows),
        "spearman_vs_disagreement": spearman(rows),
        "spearman_vs_disagreement_by_material": {
            material: spearman([row for row in rows if row["material"] == material])
            for material in materials
        },
        "frames": rows,
    }


def spearman(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Spearman's ρ (and p-value) between the disagreement and each error of ``rows``, and
    between the energy spread and the energy error per magnetic ion."""
    spreads = [row["disagreement_eV_per_A"] for row in rows]
    result = {"structures": len(rows)}
    for name in ERRORS:
        rho = spearmanr(spreads, [row[name] for row in rows])
        result[name] = {"rho": float(rho.statistic), "p_value": float(rho.pvalue)}
    rho = spearmanr(*([row[k] for row in rows] for k in (ENERGY_SPREAD, "energy_meV_per_ion")))
    result[ENERGY_SPREAD] = {"rho": float(rho.statistic), "p_value": float(rho.pvalue)}
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run's output_dir")
    parser.add_argument("--pool", required=True, help="the run's pool")
    parser.add_argument("--labelled", required=True, help="the run's labelled_pool")
    parser.add_argument("--rounds", type=int, nargs="+", default=[0], help="committees (K)")
    parser.add_argument("--output", type=Path, required=True, help="JSON report")
    args = parser.parse_args(argv)
    labels = {a.info[STRUCTURE_ID]: a for a in read(args.labelled, ":")}
    pool = read(args.pool, ":")
    reports = [round_report(args.run, k, pool, labels) for k in args.rounds]
    write_text_atomic(args.output, json.dumps({"run": str(args.run), "rounds": reports}, indent=1))
    for report in reports:
        groups = {"all": report["spearman_vs_disagreement"]}
        groups.update(report["spearman_vs_disagreement_by_material"])
        for group, result in groups.items():
            rhos = ", ".join(
                f"{name} {result[name]['rho']:.2f} (p {result[name]['p_value']:.2g})"
                for name in (*ERRORS, ENERGY_SPREAD)
            )
            print(f"round {report['round']} {group} ({result['structures']} structures): ρ {rhos}")


if __name__ == "__main__":
    main()
