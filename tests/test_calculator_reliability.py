"""What the calculator promises: threads, processes, finite results, generated bad input."""

from __future__ import annotations

import copy
import multiprocessing
import pickle
import threading

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import CalculationFailed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.testing.models import as_loaded, random_model
from spinmultinet_ase.testing.threads import in_threads

# The TorchScript model runs optimised, as users run it (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("optimised_torchscript")

PROPERTIES = ("energy", "forces", "stress", "magmoms")


def _structures(count: int) -> list[Atoms]:
    """Distinct rattled NiO/MnO cells (AFM-II and FM), so no two share a result."""
    structures = []
    for k in range(count):
        atoms = rocksalt_ordered(("NiO", "MnO")[k % 2], ("AFM-II", "FM")[k // 2 % 2])
        atoms.rattle(0.05, seed=k)
        structures.append(atoms)
    return structures


def _properties(calc: SpinMultiNetCalculator, atoms: Atoms) -> dict[str, np.ndarray]:
    """Energy, forces, stress and moments of ``atoms``, each asked for separately."""
    atoms = atoms.copy()
    atoms.calc = calc
    return {name: np.asarray(atoms.calc.get_property(name, atoms)) for name in PROPERTIES}


def _assert_same(first: dict, second: dict, rtol: float = 0.0) -> None:
    for name in PROPERTIES:
        np.testing.assert_allclose(first[name], second[name], rtol=rtol, atol=0.0, err_msg=name)


def _warm(calc: SpinMultiNetCalculator) -> SpinMultiNetCalculator:
    """``calc`` after a few calls: TorchScript optimises its graph over the first calls,
    which moves the last bits of the results, so exact comparisons start after them."""
    (atoms,) = _structures(1)
    for _ in range(3):
        calc.reset()
        _properties(calc, atoms)
    return calc


def test_two_threads_share_one_calculator(exported_path):
    """Each request returns its own structure's results, never a mix of two structures."""
    calc = _warm(SpinMultiNetCalculator(exported_path))
    structures = _structures(2)
    serial = [_properties(calc, atoms) for atoms in structures]
    found = in_threads(lambda atoms: _properties(calc, atoms), structures, repeats=8)
    for k in range(2):
        assert len(found[k]) == 8
        for result in found[k]:
            _assert_same(result, serial[k])


def test_a_request_waits_for_the_other_threads_calculation():
    """Thread B asks while thread A's calculation is under way (held there by a forward
    hook): B must not finish in between, else A's results land under B's structure and B
    reads A's forces with its own energy."""
    model = as_loaded(random_model(seed=4))
    calc = SpinMultiNetCalculator(model)
    structures = _structures(2)
    serial = [_properties(calc, atoms) for atoms in structures]
    calc.reset()
    inside, release, b_asked, a_done = (threading.Event() for _ in range(4))
    found: dict[str, dict] = {}

    def hold_thread_a(module, inputs):
        if threading.current_thread().name == "A" and not release.is_set():
            inside.set()
            release.wait(timeout=60)

    def thread_b() -> None:
        atoms = structures[1].copy()
        energy = calc.get_property("energy", atoms)
        b_asked.set()
        a_done.wait(timeout=60)
        found["B"] = {**_properties(calc, atoms), "energy": np.asarray(energy)}

    model.module.register_forward_pre_hook(hold_thread_a)
    a = threading.Thread(target=lambda: found.update(A=_properties(calc, structures[0])), name="A")
    b = threading.Thread(target=thread_b)
    a.start()
    assert inside.wait(timeout=60)
    b.start()
    b_ran = b_asked.wait(timeout=2.0)
    release.set()
    a.join()
    a_done.set()
    b.join()
    assert not b_ran, "B's request ran during A's calculation"
    _assert_same(found["A"], serial[0])
    _assert_same(found["B"], serial[1])


def test_spawned_processes_share_one_calculator(exported_path):
    """The calculator pickles (its TorchScript model as file bytes) into two spawned processes,
    each given two of four structures, which give exactly the results of its copies (each first
    called, as there) in this one."""
    calc = SpinMultiNetCalculator(exported_path)
    structures = _structures(4)
    serial = [_properties(pickle.loads(pickle.dumps(calc)), atoms) for atoms in structures]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        parallel = pool.starmap(_properties, [(calc, atoms) for atoms in structures])
    for result, expected in zip(parallel, serial, strict=True):
        _assert_same(result, expected)


@pytest.mark.parametrize("copier", [pickle.loads, copy.deepcopy], ids=["pickle", "deepcopy"])
def test_copies_give_the_same_results(calc, copier):
    """Pickled (round trip) and deep-copied calculators, around an eager model or a file
    (a copy of a TorchScript model starts its graph optimisation anew: see ``_warm``)."""
    (atoms,) = _structures(1)
    source = pickle.dumps(calc) if copier is pickle.loads else calc
    _assert_same(_properties(copier(source), atoms), _properties(calc, atoms), rtol=1e-12)


def test_dtype_leaves_the_callers_model_alone():
    model = as_loaded(random_model(seed=2))
    calc = SpinMultiNetCalculator(model, dtype="float32")
    assert next(model.module.parameters()).dtype == torch.float64
    assert next(calc.model.module.parameters()).dtype == torch.float32


def test_non_finite_results_are_refused(nio_afm2):
    """A model whose weights hold a NaN: an error naming it, not a NaN energy."""
    model = random_model(seed=3)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    nio_afm2.calc = SpinMultiNetCalculator(as_loaded(model))
    with pytest.raises(CalculationFailed, match="weights contain NaN or infinity"):
        nio_afm2.get_potential_energy()
    with pytest.raises(CalculationFailed, match="non-finite energy, energies, forces"):
        nio_afm2.get_forces()


@pytest.fixture(scope="module")
def file_calc(exported_path):
    """One calculator for all generated examples (loading a file per example is slow)."""
    return SpinMultiNetCalculator(exported_path)


_floats = st.one_of(
    st.floats(-8.0, 8.0),
    st.sampled_from([0.0, 0.05, 1e-3, 1e4, 1e7, float("nan"), float("inf"), -float("inf")]),
)


@st.composite
def _bad_structures(draw) -> Atoms:
    """A few atoms with generated positions, cell (often tiny, flat or zero), pbc and moments:
    some sensible, most broken."""
    n = draw(st.integers(1, 4))
    scale = draw(st.sampled_from([1.0, 0.1, 1e-3]))
    positions = np.array(draw(st.lists(_floats, min_size=3 * n, max_size=3 * n))).reshape(n, 3)
    cell = np.array(draw(st.lists(_floats, min_size=9, max_size=9))).reshape(3, 3)
    if draw(st.booleans()):
        cell = np.diag(draw(st.lists(st.floats(0.0, 8.0), min_size=3, max_size=3)))
    pbc = draw(st.lists(st.booleans(), min_size=3, max_size=3))
    shape = draw(st.sampled_from([(n,), (n, 3), (n, 2)]))
    moments = np.array(draw(st.lists(_floats, min_size=int(np.prod(shape)), max_size=30)))
    atoms = Atoms((["Ni", "O"] * n)[:n], positions=positions * scale, cell=cell * scale, pbc=pbc)
    atoms.set_initial_magnetic_moments(None)
    atoms.set_array("initial_magmoms", moments[: int(np.prod(shape))].reshape(shape))
    return atoms


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(atoms=_bad_structures())
def test_generated_bad_input_gets_a_clear_error_or_finite_results(file_calc, atoms):
    """Never a NaN, a traceback from inside torch or vesin, a crash, or unbounded memory."""
    atoms.calc = file_calc
    try:
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
    except ValueError as error:
        message = str(error)
        assert message and "\n" not in message, message
        return
    assert np.isfinite(energy) and np.all(np.isfinite(forces))
