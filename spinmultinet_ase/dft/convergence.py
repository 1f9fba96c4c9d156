"""Protocol convergence: how cutoff and k-point density change what we train on.

One rattled, strained 4-atom NiO cell in FM and AFM-II (same geometry) is computed at the
protocol settings and with the cutoff or the k-point density changed one at a time. Reported
against the tighter setting of each axis: the FM-AFM-II energy difference (meV/atom), forces
(meV/Å) and stress (GPa).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from ase.build import niggli_reduce
from ase.units import GPa

from spinmultinet_ase.dft.label import STATUS, STATUS_OK, label_structure
from spinmultinet_ase.dft.protocol import DEFAULT_PROTOCOL
from spinmultinet_ase.dft.structures import CELLS, Distortion, distort
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered

SETTINGS = [(900.0, 2.0), (700.0, 2.0), (1100.0, 2.0), (900.0, 1.5), (900.0, 2.5)]


def convergence_structures() -> dict:
    """The test cell: rattled, strained 4-atom NiO, as FM and AFM-II."""
    rng = np.random.default_rng(7)
    distortion = Distortion(volume_strain=0.02, rhombohedral_strain=-0.01, rattle_angstrom=0.06)
    base = distort(rocksalt_ordered("NiO", "AFM-II", CELLS["afm2-4"]), distortion, rng)
    niggli_reduce(base)
    fm = base.copy()
    fm.set_initial_magnetic_moments(np.abs(base.get_initial_magnetic_moments()))
    return {"FM": fm, "AFM-II": base}


def run_convergence_study(out: Path) -> dict:
    """Compute the settings not yet in ``out`` (JSON), saving after each; returns the results."""
    from gpaw.mpi import world

    results = json.loads(out.read_text()) if out.exists() else {}
    for ecut, density in SETTINGS:
        key = f"ecut={ecut:.0f} kdensity={density}"
        if key in results:
            continue
        protocol = dataclasses.replace(DEFAULT_PROTOCOL, ecut_ev=ecut, kpoint_density=density)
        entry = {}
        for name, atoms in convergence_structures().items():
            labelled = label_structure(
                atoms, protocol, f"/tmp/convergence_{name}_{ecut}_{density}.txt"
            )
            assert labelled.info[STATUS] == STATUS_OK, labelled.info[STATUS]
            entry[name] = {
                "energy": labelled.get_potential_energy(),
                "forces": labelled.get_forces().tolist(),
                "stress": labelled.get_stress().tolist(),
                "wall_s": labelled.info["dft_wall_s"],
            }
        results[key] = entry
        if world.rank == 0:
            out.write_text(json.dumps(results, indent=1))
            print(key, "done", flush=True)
    return results


def summarise(results: dict) -> dict:
    """Differences of each setting from the tightest one along its axis."""

    def difference(entry, reference):
        n = len(entry["FM"]["forces"])
        d_order = (entry["FM"]["energy"] - entry["AFM-II"]["energy"]) - (
            reference["FM"]["energy"] - reference["AFM-II"]["energy"]
        )
        d_forces = max(
            np.abs(np.array(entry[o]["forces"]) - reference[o]["forces"]).max() for o in entry
        )
        d_stress = max(
            np.abs(np.array(entry[o]["stress"]) - reference[o]["stress"]).max() for o in entry
        )
        return {
            "ordering_energy_meV_per_atom": 1000 * abs(d_order) / n,
            "forces_meV_per_A": 1000 * d_forces,
            "stress_GPa": d_stress / GPa,
            "wall_s": sum(entry[o]["wall_s"] for o in entry),
        }

    references = {
        "cutoff": ("ecut=1100 kdensity=2.0", 2.0),
        "k-points": ("ecut=900 kdensity=2.5", 900.0),
    }
    table = {}
    for key, entry in results.items():
        ecut, density = (float(part.split("=")[1]) for part in key.split())
        for axis, (reference_key, fixed) in references.items():
            same_axis = density == fixed if axis == "cutoff" else ecut == fixed
            if key != reference_key and same_axis and reference_key in results:
                table[f"{key} vs {reference_key}"] = difference(entry, results[reference_key])
    return table
