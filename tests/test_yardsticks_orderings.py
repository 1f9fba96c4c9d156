"""Ordering yardsticks of ideal cells in several orderings (corundum), against a Heisenberg
model summed pair by pair, and the rocksalt yardsticks through the same entry point."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.neighborlist import neighbor_list

from spinmultinet_ase.dft.corundum_structures import corundum_yardsticks
from spinmultinet_ase.dft.structures import yardstick_structures
from spinmultinet_ase.magnetism.corundum import CORUNDUM_PARAMETERS
from spinmultinet_ase.magnetism.yardsticks import yardstick_table
from spinmultinet_ase.reference.model_card import (
    EXCHANGE_TOLERANCE,
    ORDERING_TOLERANCE,
    _exchange_shell_lines,
    yardstick_checks,
)
from spinmultinet_ase.train.evaluate import _yardstick_lines

MATERIALS = ("Cr2O3", "Fe2O3")
# J S² (meV) by metal–metal shell, nearest first; shell 3 is left at zero: in the orderings
# of the 10-atom cell its pair counts are those of shell 1 (three times), so no fit over
# them can tell the two apart.
EXCHANGE = {1: 20.0, 2: 10.0, 4: 2.0}
RADIUS = 4.0  # Å, beyond the fourth shell


def metal_shells(atoms: Atoms) -> np.ndarray:
    """The distinct metal–metal distances (Å) of the ideal cell, nearest first."""
    metals = atoms[[a.index for a in atoms if a.symbol != "O"]]
    return np.unique(np.round(neighbor_list("d", metals, RADIUS), 3))


def heisenberg(exchange: dict[int, float], e0_per_atom: float = -7.0):
    """Energy (eV) of ``E0 + Σ_<ij> J_k s_i s_j``, pairs once, ``s`` the signs of the
    metals' initial moments, ``J_k`` on the k-th distinct metal–metal distance."""

    def energy(atoms: Atoms) -> float:
        metals = atoms[[a.index for a in atoms if a.symbol != "O"]]
        signs = np.sign(metals.get_initial_magnetic_moments())
        i, j, d = neighbor_list("ijd", metals, RADIUS)
        shells = metal_shells(atoms)
        coupling = np.zeros(len(d))
        for k, value in exchange.items():
            coupling[np.abs(d - shells[k - 1]) < 2e-3] = value
        pairs = 0.5 * np.sum(coupling * signs[i] * signs[j])  # each pair seen from both ends
        return e0_per_atom * len(atoms) + 1e-3 * pairs

    return energy


def per_fu(atoms: Atoms, energy: float) -> float:
    """meV per M2O3 unit."""
    metals = sum(a.symbol != "O" for a in atoms)
    return 1000 * energy / (metals / 2)


@pytest.fixture(scope="module")
def frames() -> list[Atoms]:
    return [a for material in MATERIALS for a in corundum_yardsticks(material)]


def labelled(frames: list[Atoms], energy) -> list[Atoms]:
    """Copies with the energy as their stored (DFT) label."""
    out = []
    for atoms in frames:
        copy = atoms.copy()
        copy.calc = SinglePointCalculator(copy, energy=energy(atoms))
        out.append(copy)
    return out


def test_ordering_yardsticks_recover_the_heisenberg_model(frames):
    table = yardstick_table(labelled(frames, heisenberg(EXCHANGE)))
    assert set(table) == set(MATERIALS)
    model = heisenberg(EXCHANGE)
    for material in MATERIALS:
        mine = [a for a in frames if a.info["material"] == material]
        entry = table[material]
        energies = {a.info["ordering"]: per_fu(a, model(a)) for a in mine}
        assert entry["reference"] == "uuuu"
        for ordering, value in energies.items():
            relative = entry["orderings_meV_per_fu"][ordering]
            assert relative == pytest.approx(value - energies["uuuu"], abs=1e-8)
            above = entry["above_lowest_meV_per_fu"][ordering]
            assert above == pytest.approx(value - min(energies.values()), abs=1e-8)
        lowest = min(energies, key=energies.get)
        assert entry["lowest"] == lowest
        ground = CORUNDUM_PARAMETERS[material].ground_state
        assert entry["ground_state"] == ground
        assert entry["lowest_is_ground_state"] == (lowest == ground)
        for shell, value in EXCHANGE.items():
            assert entry[f"J{shell}S2_meV"] == pytest.approx(value, abs=1e-8)
        assert "J3S2_meV" not in entry  # not separable from shell 1 in these orderings
        shells = entry["exchange_shells"]
        distances = metal_shells(mine[0])
        assert [s["distance_A"] for s in shells] == pytest.approx(distances[:4], abs=1e-3)
        assert [s["JS2_meV"] is None for s in shells] == [False, False, True, False]
        assert entry["exchange_rms_residual_meV"] == pytest.approx(0.0, abs=1e-8)
    # with the same model the two ground states cannot both be lowest
    assert {table[m]["lowest_is_ground_state"] for m in MATERIALS} == {True, False}


def test_a_different_model_gives_the_right_errors(frames):
    dft_model = heisenberg(EXCHANGE)
    scaled = {1: 1.04, 2: 1.08, 4: 1.3}
    model_exchange = {k: v * scaled[k] for k, v in EXCHANGE.items()}
    model = heisenberg(model_exchange, e0_per_atom=-6.5)  # another E0: no effect
    yardsticks = {
        "dft": yardstick_table(labelled(frames, dft_model)),
        "model": yardstick_table(frames, model),
    }
    checks = yardstick_checks(yardsticks)
    for material in MATERIALS:
        mine = [a for a in frames if a.info["material"] == material]
        fm = next(a for a in mine if a.info["ordering"] == "uuuu")
        entry = checks[material]
        for atoms in mine:
            ordering = atoms.info["ordering"]
            if ordering == "uuuu":
                continue
            dft = per_fu(atoms, dft_model(atoms)) - per_fu(fm, dft_model(fm))
            ours = per_fu(atoms, model(atoms)) - per_fu(fm, model(fm))
            value, predicted, ok = entry[f"E({ordering})-E(uuuu)"]
            assert (value, predicted) == pytest.approx((dft, ours), abs=1e-8)
            assert ok == (abs(ours - dft) <= ORDERING_TOLERANCE * abs(dft))
        by_shell = {name.split("S2")[0]: check for name, check in entry.items() if "S2" in name}
        for shell, value in EXCHANGE.items():
            dft, predicted, ok = by_shell[f"J{shell}"]
            assert (dft, predicted) == pytest.approx((value, model_exchange[shell]), abs=1e-8)
            assert ok == (scaled[shell] - 1 <= EXCHANGE_TOLERANCE)
        assert entry["lowest ordering"][2]
        lines = _yardstick_lines(
            material, yardsticks["dft"][material], yardsticks["model"][material]
        )
        assert any(line.split()[:3] == ["J4S2_meV", f"{EXCHANGE[4]:.2f}", "2.60"] for line in lines)
    shell_lines = "\n".join(_exchange_shell_lines(yardsticks["dft"]))
    assert "Cr2O3: Heisenberg fit over the 5 ideal-cell orderings" in shell_lines
    assert "shell(s) 3 (" in shell_lines

    flipped = heisenberg({k: -v for k, v in EXCHANGE.items()})  # ferromagnetic couplings
    checks = yardstick_checks({"dft": yardsticks["dft"], "model": yardstick_table(frames, flipped)})
    for material in MATERIALS:
        ground = CORUNDUM_PARAMETERS[material].ground_state
        assert checks[material]["lowest ordering"][1:] == ("uuuu", False)
        assert checks[material][f"observed ground state {ground} lowest"][1:] == ("no", False)


def test_rocksalt_yardsticks_keep_their_scheme():
    """FM, AFM-I, AFM-II per ion (PHYSICS.md): S²(6 J1 + 3 J2), S²(−2 J1 + 3 J2), −3 S² J2."""
    j1, j2 = 3.0, 9.0  # meV
    per_ion = {"FM": 6 * j1 + 3 * j2, "AFM-I": -2 * j1 + 3 * j2, "AFM-II": -3 * j2}

    def energy(atoms: Atoms) -> float:
        return -10.0 * len(atoms) + 1e-3 * per_ion[atoms.info["ordering"]] * len(atoms) / 2

    entry = yardstick_table(yardstick_structures("NiO"), energy)["NiO"]
    assert entry["J1S2_meV"] == pytest.approx(j1, abs=1e-8)
    assert entry["J2S2_meV"] == pytest.approx(j2, abs=1e-8)
    assert entry["orderings_meV_per_fu"]["AFM-II"] == pytest.approx(-6 * (j1 + j2), abs=1e-8)
    assert entry["lowest"] == "AFM-II"
    assert "exchange_shells" not in entry and "ground_state" not in entry


def test_without_the_ferromagnet_the_first_ordering_is_the_reference(frames):
    """While labelling runs, DFT and model measure against the same ordering."""
    partial = [a for a in frames if a.info["ordering"] != "uuuu"]
    dft = yardstick_table(labelled(partial, heisenberg(EXCHANGE)))
    model = yardstick_table(partial, heisenberg({k: 2 * v for k, v in EXCHANGE.items()}))
    for material in MATERIALS:
        first = next(a.info["ordering"] for a in partial if a.info["material"] == material)
        assert dft[material]["reference"] == model[material]["reference"] == first
        checks = yardstick_checks({"dft": dft, "model": model})[material]
        assert f"E(udud)-E({first})" in checks


def test_ordering_partners_of_corundum_are_measured_against_ferromagnet_or_source(tmp_path):
    from spinmultinet_ase.dft.corundum_structures import corundum_partners, corundum_pool
    from spinmultinet_ase.train.config import DataConfig
    from spinmultinet_ase.train.evaluate import ordering_partner_errors

    pool = corundum_pool("Cr2O3")
    partners = [a for group in corundum_partners("Cr2O3", pool).values() for a in group]
    sources = {a.info["partner_of"] for a in partners}
    rng = np.random.default_rng(1)
    orderings = sorted({a.info["ordering"] for a in partners})
    dft_offset = dict(zip(orderings, rng.uniform(-0.1, 0.1, len(orderings)), strict=True))
    model_offset = dict(zip(orderings, rng.uniform(-0.01, 0.01, len(orderings)), strict=True))

    def formula_units(atoms: Atoms) -> int:
        return sum(a.symbol != "O" for a in atoms) // 2

    frames = labelled(
        [a for a in pool if a.info["structure_id"] in sources] + partners,
        lambda a: -7.0 * len(a) + dft_offset[a.info["ordering"]] * formula_units(a),
    )

    def model(atoms: Atoms) -> float:
        offset = model_offset[atoms.info["ordering"]]
        return atoms.get_potential_energy() + offset * formula_units(atoms)

    rows = ordering_partner_errors(frames, model, DataConfig(path=str(tmp_path / "x.extxyz")))
    assert sum(row["pairs"] for row in rows) == len(partners)
    by_id = {a.info["structure_id"]: a for a in frames}
    expected_references = {
        "uuuu"
        if "uuuu" in (a.info["ordering"], by_id[a.info["partner_of"]].info["ordering"])
        else by_id[a.info["partner_of"]].info["ordering"]
        for a in partners
    }
    assert {row["reference"] for row in rows} == expected_references
    for row in rows:
        ordering, reference = row["ordering"], row["reference"]
        assert ordering != reference
        dft = 1000 * (dft_offset[ordering] - dft_offset[reference])
        error = 1000 * (model_offset[ordering] - model_offset[reference])
        assert row["dft_mean_meV_per_fu"] == pytest.approx(dft, abs=1e-6)
        assert row["error_mean_meV_per_fu"] == pytest.approx(error, abs=1e-6)
