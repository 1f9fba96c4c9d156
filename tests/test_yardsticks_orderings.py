"""Ordering yardsticks of ideal cells in several orderings (corundum), against a Heisenberg
model summed pair by pair, and the rocksalt yardsticks through the same entry point."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read
from ase.neighborlist import neighbor_list

from spinmultinet_ase.cli import main
from spinmultinet_ase.dft.corundum_structures import corundum_yardsticks
from spinmultinet_ase.dft.distortions import Distortion, tag
from spinmultinet_ase.dft.structures import (
    RHOMBOHEDRAL_STRAINS,
    extension_strains,
    rhombohedral_series,
    yardstick_structures,
)
from spinmultinet_ase.magnetism.corundum import CORUNDUM_PARAMETERS, corundum_cell
from spinmultinet_ase.magnetism.orderings import enumerate_collinear_orderings
from spinmultinet_ase.magnetism.yardsticks import (
    ordering_yardsticks,
    yardstick_key,
    yardstick_table,
)
from spinmultinet_ase.reference.model_card import (
    EXCHANGE_TOLERANCE,
    ORDERING_TOLERANCE,
    _exchange_shell_lines,
    yardstick_checks,
)
from spinmultinet_ase.train.evaluate import _yardstick_lines

MATERIALS = ("Cr2O3", "Fe2O3")
KEYS = {material: yardstick_key(material, "rh-10") for material in MATERIALS}
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
    assert set(table) == {"Cr2O3 rh-10", "Fe2O3 rh-10"} == set(KEYS.values())
    model = heisenberg(EXCHANGE)
    for material in MATERIALS:
        mine = [a for a in frames if a.info["material"] == material]
        entry = table[KEYS[material]]
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
    assert {table[KEYS[m]]["lowest_is_ground_state"] for m in MATERIALS} == {True, False}


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
        entry = checks[KEYS[material]]
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
        key = KEYS[material]
        lines = _yardstick_lines(key, yardsticks["dft"][key], yardsticks["model"][key])
        assert any(line.split()[:3] == ["J4S2_meV", f"{EXCHANGE[4]:.2f}", "2.60"] for line in lines)
    shell_lines = "\n".join(_exchange_shell_lines(yardsticks["dft"]))
    assert "Cr2O3 rh-10: Heisenberg fit over the 5 ideal-cell orderings" in shell_lines
    assert "shell(s) 3 (" in shell_lines

    flipped = heisenberg({k: -v for k, v in EXCHANGE.items()})  # ferromagnetic couplings
    checks = yardstick_checks({"dft": yardsticks["dft"], "model": yardstick_table(frames, flipped)})
    for material in MATERIALS:
        ground = CORUNDUM_PARAMETERS[material].ground_state
        assert checks[KEYS[material]]["lowest ordering"][1:] == ("uuuu", False)
        assert checks[KEYS[material]][f"observed ground state {ground} lowest"][1:] == (
            "no",
            False,
        )


def test_shell_3_is_absorbed_in_j1_three_times_and_the_fit_says_so(frames):
    """With J3 ≠ 0 the 10-atom orderings fit J1 + 3·J3 (shell 3's pair counts are three times
    shell 1's in each of them), and the fit's warning, the report and the card say so."""
    exchange = {**EXCHANGE, 3: 4.0}
    model = heisenberg(exchange)
    table = yardstick_table(labelled(frames, model))
    shown = yardstick_table(frames, heisenberg({**exchange, 3: 5.0}))
    card = "\n".join(_exchange_shell_lines(table))
    for material in MATERIALS:
        key = KEYS[material]
        entry = table[key]
        assert entry["J1S2_meV"] == pytest.approx(exchange[1] + 3 * exchange[3], abs=1e-8)
        for shell in (2, 4):
            assert entry[f"J{shell}S2_meV"] == pytest.approx(exchange[shell], abs=1e-8)
        assert entry["exchange_rms_residual_meV"] == pytest.approx(0.0, abs=1e-8)
        assert [s["fitted_as"] for s in entry["exchange_shells"]] == [
            "J1 + 3·J3",
            "J2",
            None,
            "J4",
        ]
        assert any("absorbed in the fitted J1 = J1 + 3·J3" in w for w in entry["exchange_warnings"])
        assert f"{key}: Heisenberg fit" in card
        lines = _yardstick_lines(key, entry, shown[key])
        j1 = next(line for line in lines if line.split()[0] == "J1S2_meV")
        assert j1.split()[1:3] == ["32.00", "35.00"] and j1.endswith("= J1 + 3·J3)")
    assert card.count("Å (1 per ion) = J1 + 3·J3") == len(MATERIALS)
    assert "absorbed in the fitted J as shown" in card


def cell_yardsticks(material: str, cell: str) -> list[Atoms]:
    """The ideal cell ``cell`` of a corundum material in every enumerated ordering, tagged as
    yardsticks."""
    frames = []
    for ordered in enumerate_collinear_orderings(corundum_cell(material, cell)):
        ordering = ordered.info["ordering"]
        sid = f"{material}-yardstick-{cell}-{ordering}"
        frames.append(tag(ordered, sid, material, cell, ordering, Distortion()))
        frames[-1].info["yardstick"] = True
    return frames


def test_yardstick_cells_get_a_table_each(frames):
    """Yardsticks in three cells (two of them 20-atom cells with the same ordering names)
    give one table per material and cell, each measured within its cell, as that cell alone
    gives it; only the 10-atom cell's orderings name the observed ground state."""
    exchange = {**EXCHANGE, 3: 4.0}
    model = heisenberg(exchange)
    cells = ("rh211-20", "rh2x-20")
    extra = {cell: cell_yardsticks("Cr2O3", cell) for cell in cells}
    table = yardstick_table(labelled(frames + extra["rh211-20"] + extra["rh2x-20"], model))
    assert set(table) == {*KEYS.values(), "Cr2O3 rh211-20", "Cr2O3 rh2x-20"}
    alone = yardstick_table(labelled(frames, model))
    for key in KEYS.values():
        assert table[key] == alone[key]
    for cell, mine in extra.items():
        entry = table[yardstick_key("Cr2O3", cell)]
        energies = {a.info["ordering"]: per_fu(a, model(a)) for a in mine}
        assert entry["reference"] == "u" * 8
        assert entry["orderings_meV_per_fu"] == pytest.approx(
            {o: e - energies["u" * 8] for o, e in energies.items()}, abs=1e-8
        )
        assert "ground_state" not in entry
        # these cells tell shell 3 from shell 1
        for shell, value in exchange.items():
            assert entry[f"J{shell}S2_meV"] == pytest.approx(value, abs=1e-8)


def test_a_cell_without_an_ideal_frame_is_left_out(frames):
    strained = []
    for atoms in frames:
        copy = atoms.copy()
        if atoms.info["material"] == "Cr2O3":
            copy.info["rhombohedral_strain"] = 0.01
        strained.append(copy)
    table = yardstick_table(labelled(strained, heisenberg(EXCHANGE)))
    assert set(table) == {KEYS["Fe2O3"]}
    with pytest.raises(ValueError, match="at least one ideal cell"):
        ordering_yardsticks([])


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


@pytest.mark.parametrize("centre", [-0.012, -0.045, 0.05])
def test_an_e_delta_minimum_beyond_the_sampled_strains_is_not_called_bracketed(centre):
    """E(δ) a parabola about ``centre``: inside the sampled strains its minimum is found there;
    beyond them the minimum reported is the nearer end, marked as not bracketed."""

    def energy(atoms: Atoms) -> float:
        delta = atoms.info["rhombohedral_strain"]
        return -10.0 * len(atoms) + 5.0 * (delta - centre) ** 2 * len(atoms) / 2

    for curve in yardstick_table(yardstick_structures("FeO"), energy)["FeO"][
        "rhombohedral"
    ].values():
        minimum, strains = curve["minimum"], curve["strains"]
        inside = min(strains) < centre < max(strains)
        assert minimum["bracketed"] == inside
        expected = centre if inside else min(strains, key=lambda d: abs(d - centre))
        assert minimum["strain"] == pytest.approx(expected, abs=1e-4)


def test_an_extended_series_brackets_a_minimum_beyond_the_reference_strains():
    """The cells of ``rhombohedral_series`` join the yardstick cells' E(δ) curves, so a
    minimum beyond the reference strains is bracketed and found."""
    centre = -0.045

    def energy(atoms: Atoms) -> float:
        delta = atoms.info["rhombohedral_strain"]
        return -10.0 * len(atoms) + 5.0 * (delta - centre) ** 2 * len(atoms) / 2

    extension = rhombohedral_series("FeO", extension_strains([-0.06, -0.05, -0.04]))
    assert not {a.info["structure_id"] for a in extension} & {
        a.info["structure_id"] for a in yardstick_structures("FeO")
    }
    entry = yardstick_table(yardstick_structures("FeO") + extension, energy)["FeO"]
    for curve in entry["rhombohedral"].values():
        assert curve["strains"] == pytest.approx([-0.06, -0.05, -0.04, *RHOMBOHEDRAL_STRAINS])
        assert curve["minimum"]["bracketed"]
        assert curve["minimum"]["strain"] == pytest.approx(centre, abs=1e-4)


def test_the_structures_command_writes_an_extension_and_refuses_bad_strains(tmp_path, capsys):
    out = tmp_path / "strains.extxyz"
    argv = ["structures", str(out), "--materials", "FeO", "--rhombohedral-strains"]
    assert main([*argv, "-0.05", "-0.06"]) == 0
    written = read(out, index=":")
    expected = rhombohedral_series("FeO", [-0.06, -0.05])
    assert [a.info for a in written] == [a.info for a in expected]
    for atoms, reference in zip(written, expected, strict=True):
        np.testing.assert_allclose(atoms.cell.array, reference.cell.array, atol=1e-9)
    capsys.readouterr()
    for bad, message in (
        (["-0.03"], "none of the reference series"),
        (["-0.05", "-0.050"], "given twice"),
        (["-0.0004"], "none of the reference series"),
        (["0.15"], "below 0.1"),
        (["-0.05", "--materials", "Cr2O3"], "builds rocksalt cells"),
        (["-0.05", "--orderings-pool"], "give one of"),
    ):
        target = tmp_path / "bad.extxyz"
        assert main(["structures", str(target), *argv[2:], *bad]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and message in error, error
        assert not target.exists()


def test_without_the_ferromagnet_the_first_ordering_is_the_reference(frames):
    """While labelling runs, DFT and model measure against the same ordering."""
    partial = [a for a in frames if a.info["ordering"] != "uuuu"]
    dft = yardstick_table(labelled(partial, heisenberg(EXCHANGE)))
    model = yardstick_table(partial, heisenberg({k: 2 * v for k, v in EXCHANGE.items()}))
    for material in MATERIALS:
        first = next(a.info["ordering"] for a in partial if a.info["material"] == material)
        key = KEYS[material]
        assert dft[key]["reference"] == model[key]["reference"] == first
        checks = yardstick_checks({"dft": dft, "model": model})[key]
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


def test_the_lowest_line_keeps_a_long_model_answer_apart_from_dft(frames):
    """A spin-blind model's lowest ordering, ``none (all equal)``, is wider than its column."""
    dft = yardstick_table(labelled(frames, heisenberg(EXCHANGE)))
    key = KEYS["Cr2O3"]
    blind = {**dft[key], "lowest": "none (all equal)"}
    (line,) = [line for line in _yardstick_lines(key, dft[key], blind) if "lowest" in line]
    assert line.split(maxsplit=2) == ["lowest", dft[key]["lowest"], "none (all equal)"]
