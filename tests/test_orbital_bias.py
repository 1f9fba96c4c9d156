"""The orbital bias of FeO/CoO starts on a real GPAW setup, without any SCF."""

from __future__ import annotations

import numpy as np
import pytest
from ase.units import Ha

from spinmultinet_ase.dft.orbital_bias import (
    AFM_II_AXIS,
    T2G,
    BiasTarget,
    OrbitalBias,
    a1g_vector,
    bias_targets,
    check_symmetric,
    run_biased_start,
    target_occupations,
    three_fold_axis,
    trigonal_projector,
)
from spinmultinet_ase.dft.orientation import bond_alignment_rotation, rotated
from spinmultinet_ase.dft.protocol import DEFAULT_PROTOCOL
from spinmultinet_ase.dft.scf_budget import check_scf_budget
from spinmultinet_ase.dft.states import EMPTY, FILLED, WHOLE, state_problem
from spinmultinet_ase.magnetism.rocksalt import ROCKSALT_LATTICE_CONSTANTS, rocksalt_ordered
from spinmultinet_ase.testing.symmetry import random_orthogonal

LAMBDA_EV = 2.0


def _setup(symbol: str):
    """GPAW's PAW setup of ``symbol`` with the protocol's U on d (two d partial waves)."""
    from gpaw.setup import create_setup

    return create_setup(symbol, "PBE", lmax=2, type=DEFAULT_PROTOCOL.setups({symbol})[symbol])


@pytest.fixture(scope="module")
def fe_setup():
    return _setup("Fe")


def _random_density_matrices(setup, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(2, setup.ni, setup.ni))
    return d + d.transpose(0, 2, 1)


def _d_slices(setup) -> list[slice]:
    starts = np.cumsum([0] + [2 * ell + 1 for ell in setup.l_j])
    return [slice(starts[j], starts[j] + 5) for j, ell in enumerate(setup.l_j) if ell == 2]


def _turn(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation matrix by ``angle`` about the unit vector ``axis``."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _frame(formula: str, ordering: str, ferromagnetic: bool = False):
    atoms = rocksalt_ordered(formula, ordering)
    if ferromagnetic:
        atoms.set_initial_magnetic_moments(np.abs(atoms.get_initial_magnetic_moments()))
    return rotated(atoms, bond_alignment_rotation(atoms))


def test_bias_enters_the_minority_d_block_as_gpaw_embeds_the_hubbard_u(fe_setup):
    from gpaw.hubbard import hubbard

    projector = trigonal_projector(1)
    bias = OrbitalBias({0: BiasTarget(spin=1, projector=projector)}, LAMBDA_EV)
    dh = np.zeros((2, fe_setup.ni, fe_setup.ni))
    bias.update_non_local_hamiltonian(_random_density_matrices(fe_setup), fe_setup, 0, dh)
    # GPAW's own embedding: at zero occupation its U term is U/2 on the d diagonal, each
    # partial-wave pair weighted by the radial overlap factor it uses.
    zero = np.zeros((2, fe_setup.ni, fe_setup.ni))
    _, dh_u = hubbard(
        zero, U=2.0, l=2, l_j=fe_setup.l_j, n_j=fe_setup.n_j, N0_q=fe_setup.N0_q, scale=True
    )
    expected = np.zeros_like(dh)
    for rows in _d_slices(fe_setup):
        for columns in _d_slices(fe_setup):
            weight = dh_u[1][rows, columns][0, 0]
            assert np.allclose(dh_u[1][rows, columns], weight * np.eye(5))
            expected[1][rows, columns] = weight * (-LAMBDA_EV / Ha) * projector
    assert np.allclose(dh, expected, rtol=0, atol=1e-14)
    bound = _d_slices(fe_setup)[0]
    assert np.allclose(dh[1][bound, bound], -LAMBDA_EV / Ha * projector, rtol=0, atol=1e-14)
    assert not dh[0].any()


def test_bias_energy_is_minus_lambda_times_the_target_occupation(fe_setup):
    from gpaw.hubbard import aoom

    projector = trigonal_projector(2)
    bias = OrbitalBias({3: BiasTarget(spin=0, projector=projector)}, LAMBDA_EV)
    density = _random_density_matrices(fe_setup, seed=1)
    dh = np.zeros((2, fe_setup.ni, fe_setup.ni))
    energy = bias.update_non_local_hamiltonian(density, fe_setup, 3, dh)
    # A term linear in D: its energy is Tr(D dH), the identity GPAW's kinetic-energy
    # correction relies on (gpaw/new/pot_calc.py).
    assert energy == pytest.approx(np.sum(density * dh), rel=1e-12)
    n_mm, _ = aoom(density[0], 2, fe_setup.l_j, fe_setup.n_j, fe_setup.N0_q, True)
    assert energy == pytest.approx(-LAMBDA_EV / Ha * np.trace(projector @ n_mm), rel=1e-12)
    assert target_occupations({3: density}, {3: fe_setup}, bias.targets) == {
        3: pytest.approx(np.trace(projector @ n_mm), rel=1e-12)
    }


def test_released_or_untargeted_bias_adds_nothing(fe_setup):
    bias = OrbitalBias({0: BiasTarget(spin=1, projector=trigonal_projector(1))}, LAMBDA_EV)
    density = _random_density_matrices(fe_setup, seed=2)
    before = _random_density_matrices(fe_setup, seed=3)
    dh = before.copy()
    assert bias.update_non_local_hamiltonian(density, fe_setup, 1, dh) == 0.0
    assert np.array_equal(dh, before)
    bias.active = False
    assert bias.update_non_local_hamiltonian(density, fe_setup, 0, dh) == 0.0
    assert np.array_equal(dh, before)


@pytest.mark.parametrize("total_steps", [0, 5, 9.0, True])
def test_a_biased_start_refuses_a_budget_as_the_labeller_does(total_steps):
    """``run_biased_start(total_steps=...)`` runs the labeller's budget check, with its biased
    steps: the labeller's one-line error, before any GPAW work (no calculator is touched)."""
    bias = OrbitalBias({0: BiasTarget(spin=1, projector=trigonal_projector(1))}, LAMBDA_EV)
    with pytest.raises(ValueError) as raised:
        run_biased_start(None, _frame("CoO", "AFM-II"), bias, max_steps=5, total_steps=total_steps)
    assert str(raised.value) == (
        "max_scf_steps (--max-scf-steps) must be a whole number from 6 (above the 5 steps of a "
        f"biased start), got {total_steps!r}"
    )


def test_the_budget_check_takes_the_steps_above_the_biased_ones_up_to_the_limit():
    for budget in (None, 21, 300):
        check_scf_budget(budget, 300)
    check_scf_budget(1000, biased=5)  # no limit given: any budget above the biased steps
    for budget in (20, 301, 30.0, "120"):
        with pytest.raises(ValueError, match=f"to the protocol's 300, got {budget!r}$"):
            check_scf_budget(budget, 300)


@pytest.mark.parametrize("diagonal", [(1, 1, 1), (1, -1, 1), (-1, 1, 1)])
def test_a1g_is_the_orbital_along_the_axis_and_keeps_its_threefold_turn(diagonal):
    from gpaw.rotation import rotation
    from gpaw.sphere.spherical_harmonics import Y

    axis = np.array(diagonal) / np.sqrt(3.0)
    vector = a1g_vector(axis)
    # GPAW's harmonics combined with these coefficients give (n·r)² − r²/3 up to a factor.
    points = np.random.default_rng(4).normal(size=(20, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    orbital = np.array([sum(c * Y(4 + m, *r) for m, c in enumerate(vector)) for r in points])
    polynomial = (points @ axis) ** 2 - 1.0 / 3.0
    factor = orbital @ polynomial / (polynomial @ polynomial)
    assert np.allclose(orbital, factor * polynomial, atol=1e-12)
    assert abs(factor) > 0.1
    turn = rotation(2, _turn(axis, 2 * np.pi / 3))
    assert np.allclose(turn @ vector, vector, atol=1e-12)
    pair = trigonal_projector(2, axis)
    assert np.allclose(turn @ pair @ turn.T, pair, atol=1e-12)
    other = np.array([-diagonal[0], diagonal[1], diagonal[2]]) / np.sqrt(3.0)
    assert not np.allclose(rotation(2, _turn(other, 2 * np.pi / 3)) @ vector, vector, atol=1e-3)


def test_a1g_along_111_is_xy_plus_yz_plus_zx_and_eg_prime_the_rest_of_t2g():
    assert np.allclose(a1g_vector(AFM_II_AXIS), np.array([1, 1, 0, 1, 0]) / np.sqrt(3.0))
    pair = trigonal_projector(2)
    assert np.allclose(pair @ pair, pair) and np.trace(pair) == pytest.approx(2.0)
    assert np.allclose(pair @ a1g_vector(AFM_II_AXIS), 0.0)
    outside = [m for m in range(5) if m not in T2G]
    assert not pair[outside].any() and not pair[:, outside].any()
    with pytest.raises(ValueError, match="body diagonal"):
        a1g_vector(np.array([0.0, 0.0, 1.0]))


def test_the_afm2_stacking_axis_of_the_bond_aligned_frame_is_111():
    atoms = _frame("FeO", "AFM-II").repeat((2, 2, 2))
    metals = np.array(atoms.get_chemical_symbols()) == "Fe"
    signs = np.sign(atoms.get_initial_magnetic_moments()[metals])
    a = ROCKSALT_LATTICE_CONSTANTS["FeO"]
    for diagonal in ([1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]):
        # AFM-II: ferromagnetic planes r·n = const, alternating every a/√3 along n.
        planes = np.rint(atoms.positions[metals] @ np.array(diagonal) / a).astype(int)
        stacked = np.all(signs == signs[0] * (-1.0) ** (planes - planes[0]))
        assert stacked == (diagonal == [1, 1, 1]), diagonal


def test_targets_bias_each_metal_s_minority_spin_with_its_material_s_orbitals():
    feo = _frame("FeO", "AFM-II")
    moments = feo.get_initial_magnetic_moments()
    targets = bias_targets(feo)
    assert sorted(targets) == [i for i, s in enumerate(feo.get_chemical_symbols()) if s == "Fe"]
    assert {t.spin for t in targets.values()} == {0, 1}
    for a, target in targets.items():
        assert target.spin == (1 if moments[a] > 0 else 0)
        assert np.allclose(target.projector, np.outer(*[a1g_vector(AFM_II_AXIS)] * 2))
    coo = _frame("CoO", "AFM-II", ferromagnetic=True)
    assert all(t.spin == 1 for t in bias_targets(coo).values())
    assert all(np.trace(t.projector) == pytest.approx(2.0) for t in bias_targets(coo).values())
    with pytest.raises(ValueError, match="no orbital bias for MnO"):
        bias_targets(_frame("MnO", "AFM-II"))
    feo.set_initial_magnetic_moments(np.zeros(len(feo)))
    with pytest.raises(ValueError, match="no initial moment"):
        bias_targets(feo)


@pytest.mark.filterwarnings("ignore:.*grid:UserWarning")
@pytest.mark.parametrize(
    ("formula", "ordering", "ferromagnetic", "symmetry", "allowed"),
    [
        ("FeO", "AFM-II", False, "on", True),
        ("CoO", "AFM-II", True, "on", True),
        ("FeO", "FM", False, "on", False),
        ("CoO", "AFM-I", False, "on", False),
        ("FeO", "FM", False, {"point_group": False}, True),
    ],
)
def test_symmetry_on_keeps_the_bias_only_in_trigonal_cells(
    formula, ordering, ferromagnetic, symmetry, allowed
):
    from gpaw.dft import PW, Parameters

    atoms = _frame(formula, ordering, ferromagnetic)
    params = Parameters(
        mode=PW(300),
        xc="PBE",
        setups=DEFAULT_PROTOCOL.setups(set(atoms.get_chemical_symbols())),
        kpts={"density": 1.0, "gamma": True},
        spinpol=True,
        symmetry=symmetry,
    )
    symmetries = params.dft_component_builder(atoms, log=None).ibz.symmetries
    if allowed:
        check_symmetric(bias_targets(atoms), symmetries)
    else:
        with pytest.raises(ValueError, match="point_group"):
            check_symmetric(bias_targets(atoms), symmetries)


# Orbitals in GPAW's order xy, yz, 3z²−r², zx, x²−y²: the a1g about [111], an orthonormal
# pair e_g' spanning the rest of t2g, and the e_g pair.
A1G = np.array([1.0, 1.0, 0.0, 1.0, 0.0]) / np.sqrt(3.0)
EG_PRIME = (
    np.array([1.0, -1.0, 0.0, 0.0, 0.0]) / np.sqrt(2.0),
    np.array([1.0, 1.0, 0.0, -2.0, 0.0]) / np.sqrt(6.0),
)
EG = (np.eye(5)[2], np.eye(5)[4])
XY, YZ, ZX = np.eye(5)[0], np.eye(5)[1], np.eye(5)[3]


def _occupation(*filled: tuple[float, np.ndarray]) -> np.ndarray:
    """The occupation matrix Σ f |v⟩⟨v| of orthonormal orbitals v with occupations f."""
    return sum(f * np.outer(v, v) for f, v in filled)


def _labeller_verdict(formula: str, n_mm: np.ndarray, gap: float = 1.9) -> tuple[str, float]:
    """``state_problem`` of the AFM-II frame of ``formula`` whose metals all have the minority
    d occupation matrix ``n_mm``, the target filling computed the labeller's way (PAW density
    matrices of a real setup -> Tr(P N)); and that filling."""
    atoms = _frame(formula, "AFM-II")
    targets = bias_targets(atoms)
    setup = _setup(formula.removesuffix("O"))
    bound = _d_slices(setup)[0]
    density = {}
    for a, target in targets.items():
        d = np.zeros((2, setup.ni, setup.ni))
        d[target.spin][bound, bound] = n_mm
        d[1 - target.spin][bound, bound] = np.eye(5)  # the filled majority d shell
        density[a] = d
    filling = target_occupations(density, {a: setup for a in targets}, targets)
    assert len(set(filling.values())) == 1
    problem = state_problem(formula, gap, {a: n_mm for a in targets}, filling)
    return problem, filling[min(targets)]


# Minority d occupations of the converged study runs (data/studies/feo_coo_states.md): FeO
# AFM-II from moments x 1.4 (0.973, 0.07, 0.07, 0.02, 0.02) and CoO AFM-II (0.983, 0.983,
# 0.101, 0.101, 0.031), with the filled orbitals the target ones or others.
STUDY_STATES = {
    "FeO a1g": ("FeO", [(0.973, A1G), (0.07, EG_PRIME[0]), (0.07, EG_PRIME[1])], ""),
    "FeO xy": ("FeO", [(0.973, XY), (0.07, YZ), (0.07, ZX)], ""),
    "CoO e_g'": ("CoO", [(0.983, EG_PRIME[0]), (0.983, EG_PRIME[1]), (0.031, A1G)], ""),
    "CoO a1g + e_g'": (
        "CoO",
        [(0.983, A1G), (0.983, EG_PRIME[0]), (0.031, EG_PRIME[1])],
        "hold 1.01 of 2 electrons",
    ),
}


@pytest.mark.parametrize("state", list(STUDY_STATES))
def test_state_check_asks_coo_for_its_target_orbitals_and_feo_for_any_whole_orbital(state):
    """The occupation eigenvalues of every filling pass; CoO's target check tells its two
    fillings apart, FeO's rule accepts its electron in a1g and in another whole orbital."""
    formula, filled, message = STUDY_STATES[state]
    small = 0.02 if formula == "FeO" else 0.101
    problem, _ = _labeller_verdict(formula, _occupation(*filled, (small, EG[0]), (small, EG[1])))
    if message:
        assert problem.startswith("atom 0 target orbitals " + message)
        assert problem.count("target orbitals") == 2  # both Co
        assert "whole orbital" not in problem
    else:
        assert problem == ""


def _turned(eigenvalues: list[float], a1g_filling: float) -> np.ndarray:
    """An Fe minority occupation matrix with ``eigenvalues`` (descending): the whole orbital
    turned within t2g from a1g towards e_g' until a1g holds ``a1g_filling``, the next
    eigenvalue on its t2g partner, then the other e_g' orbital and the e_g pair."""
    first, second, third, *eg = eigenvalues
    share = (a1g_filling - second) / (first - second)  # cos² of the turn
    c, s = np.sqrt(share), np.sqrt(1.0 - share)
    return _occupation(
        (first, c * A1G + s * EG_PRIME[0]),
        (second, -s * A1G + c * EG_PRIME[0]),
        (third, EG_PRIME[1]),
        *zip(eg, EG, strict=True),
    )


# The FeO runs of scripts/bias_release_study.py's filled-msr1 (FeO's rule: a1g start, capped
# MSR1), data/studies/bias_release.jsonl: gap (eV) and per Fe the minority d occupation
# eigenvalues and the a1g filling.
FILLED_MSR1_RUNS = {
    "FeO-FM-filled-msr1": (
        0.925,
        [([0.966, 0.066, 0.055, 0.018, 0.018], 0.718), ([0.97, 0.062, 0.05, 0.019, 0.017], 0.634)],
    ),
    "FeO-AFM-II-filled-msr1": (
        1.347,
        [
            ([0.978, 0.072, 0.059, 0.017, 0.017], 0.726),
            ([0.978, 0.068, 0.055, 0.017, 0.016], 0.623),
        ],
    ),
}


@pytest.mark.parametrize("run", list(FILLED_MSR1_RUNS))
def test_feo_check_accepts_the_turned_whole_orbitals_of_its_rule_s_runs(run):
    gap, atoms = FILLED_MSR1_RUNS[run]
    for eigenvalues, a1g_filling in atoms:
        n_mm = _turned(eigenvalues, a1g_filling)
        problem, filling = _labeller_verdict("FeO", n_mm, gap)
        assert filling == pytest.approx(a1g_filling, abs=1e-12)
        assert problem == ""
        # in the cubic harmonics the turned orbital shows as a split t2g diagonal
        assert np.diag(n_mm)[list(T2G)].max() < WHOLE


def _shared(share: float) -> np.ndarray:
    """The AFM-II filled-msr1 Fe occupation matrix with ``share`` of the whole orbital's
    electron moved to its t2g partner (eigenvalues 0.978, 0.072 mixed)."""
    top, partner = 0.978, 0.072
    n_mm = _turned([top, partner, 0.059, 0.017, 0.017], 0.65)
    vectors = np.linalg.eigh(n_mm)[1]
    for old, new, v in (
        (top, (1 - share) * top + share * partner, vectors[:, -1]),
        (partner, share * top + (1 - share) * partner, vectors[:, -2]),
    ):
        n_mm = n_mm + (new - old) * np.outer(v, v)
    return n_mm


@pytest.mark.parametrize("share", [0.45, 0.15])
def test_feo_check_rejects_an_electron_shared_between_two_orbitals(share):
    """About half the electron moved (as in the symmetric metal) or 0.15 of it: both
    rejected, the second only by FeO's whole-orbital bound (it passes CoO's FILLED, EMPTY)."""
    n_mm = _shared(share)
    eigenvalues = np.sort(np.linalg.eigvalsh(n_mm))[::-1]
    problem, _ = _labeller_verdict("FeO", n_mm)
    assert problem.count("not 1 whole orbital(s)") == 2
    assert "target" not in problem
    if share < 0.45:
        assert FILLED < eigenvalues[0] < WHOLE and eigenvalues[1] < EMPTY


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_state_check_is_invariant_under_a_rotation_of_the_d_orbitals(seed):
    """Turning the d shell (the l = 2 image of a rotation or rotation-inversion, or any
    orthogonal change of the 5 orbitals) changes neither verdict: the check reads the
    occupation matrix's eigenvalues."""
    from gpaw.rotation import rotation

    turned = _turned([0.966, 0.066, 0.055, 0.018, 0.018], 0.718)
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(5, 5)))
    for turn in (rotation(2, random_orthogonal(seed, proper=seed != 1)), q):
        assert np.allclose(turn @ turn.T, np.eye(5), atol=1e-12)
        for n_mm in (turned, _shared(0.15), _shared(0.45)):
            verdicts = [
                state_problem("FeO", 1.0, {0: m}, {0: 0.1}) for m in (n_mm, turn @ n_mm @ turn.T)
            ]
            assert verdicts[0] == verdicts[1]
            assert ("not 1 whole orbital" in verdicts[0]) == (n_mm is not turned)


def test_three_fold_axis_is_the_afm2_stacking_axis_or_111_where_there_is_no_single_one():
    afm2 = _frame("FeO", "AFM-II")
    assert np.allclose(three_fold_axis(afm2), AFM_II_AXIS)
    # A cube turn about z (bonds stay on the axes) carries the stacking axis to [-1, 1, 1].
    quarter = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    turned_axis = np.array([-1.0, 1.0, 1.0]) / np.sqrt(3.0)
    assert np.allclose(three_fold_axis(rotated(afm2, quarter)), turned_axis)
    fm_in_afm2_cell = rotated(_frame("FeO", "AFM-II", ferromagnetic=True), quarter)
    assert np.allclose(three_fold_axis(fm_in_afm2_cell), turned_axis)
    for ordering in ("FM", "AFM-I"):  # four 3-fold axes, none
        frame = rotated(_frame("CoO", ordering), quarter)
        assert np.allclose(three_fold_axis(frame), AFM_II_AXIS)
    with pytest.raises(ValueError, match="not a rocksalt supercell with bonds along the axes"):
        three_fold_axis(rotated(afm2, _turn(np.array([0.0, 0.0, 1.0]), np.pi / 5)))
