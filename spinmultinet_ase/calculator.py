"""``SpinMultiNetCalculator``: an ASE calculator around an exported SpinMultiNet model.

It reads the structure and ``atoms.get_initial_magnetic_moments()`` (so ASE's ``check_state``
recomputes when the moments change), builds the neighbour graph, calls the model once and
stores the results in ASE units:

* ``energy``/``free_energy`` (eV), ``energies`` (eV per atom), ``forces`` = -∂E/∂R (eV/Å);
* ``stress`` (eV/Å³, Voigt order xx, yy, zz, yz, xz, xy) = (1/V) ∂E/∂ε, ASE's sign: negative
  when the cell wants to expand; only for cells periodic in all three directions;
* ``magmoms`` (μB, predicted, time-odd) and their sum ``magmom``;
* ``spin_latents`` (time-odd per-atom features) and ``magnetic_forces`` = -∂E/∂m (eV/μB),
  reachable through ``get_property`` like the others.

A molecule or slab (not periodic in all three directions) gets every property but the stress,
as with ASE's own calculators; asking for its stress raises ``PropertyNotImplementedError``.

Given several model files (a committee, see :mod:`spinmultinet_ase.committee`), the results
are the members' mean and ``energy_std``, ``energies_std``, ``forces_std``, ``stress_std`` and
``magmoms_std`` their population standard deviation (``ddof=0``), and ``member_energies``
each member's energy (eV); a committee has no ``spin_latents``. One model file is the fast
default: one network call per request.

A guessed moment whose size lies outside what the model saw in training (recorded in the
model file), such as 0 on a magnetic ion because the moments were never set, gives a warning
(once per element and calculator): the result is then an extrapolation. Sizes from the
model's ``full_moment`` on all count as that size (the model sees them alike), so a large
guess is never one. Two atoms closer than any pair of their elements in the training data
(also recorded in the model file) give a warning too (once per element pair and calculator).
Warnings name the line of the user's code that asked for the result (the first caller outside
this package and ASE).

One calculator may be shared by threads: each property request (``get_property``, hence
``atoms.get_forces()`` and the like, and ``calculate``) holds the calculator's lock, so it
returns the results of the structure it was given; requests run one at a time. A calculator
pickles (a TorchScript model or an AOTInductor package travels as the bytes of its file), so
it can be sent to other processes. A non-finite result is never stored: it raises
``CalculationFailed`` naming the likely cause.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import (
    CalculationFailed,
    Calculator,
    PropertyNotImplementedError,
    all_changes,
)
from ase.stress import full_3x3_to_voigt_6_stress

from spinmultinet_ase import __version__, keys
from spinmultinet_ase.committee import (
    AVERAGED,
    MEMBER_ENERGIES,
    SPREADS,
    check_members,
    committee_results,
)
from spinmultinet_ase.data.graph import (
    atoms_to_graph,
    closest_contacts,
    initial_moments,
    moment_sizes,
)
from spinmultinet_ase.export import DTYPES, LoadedModel, default_model_path, load_model
from spinmultinet_ase.stacklevel import user_stacklevel

GUESS_RANGE_SLACK = 0.05  # μB beyond the training range of guessed moment sizes before a warning
CONTACT_SLACK = 0.05  # Å below the shortest training distance of an element pair before a warning

ModelSource = str | Path | LoadedModel


class SpinMultiNetCalculator(Calculator):
    """ASE calculator for SpinMultiNet models.

    Args:
        model: path of an exported model (TorchScript ``.pt``, or an AOTInductor package
            ``.pt2``, which runs only in its own dtype and device), a :class:`LoadedModel`,
            None for the shipped default model, or a sequence of paths or loaded models for a
            committee (same species, cutoff and spin mode).
        device: torch device, e.g. ``'cpu'``; models are moved there (a loaded model on
            another device or in another dtype is copied, never changed in place).
        dtype: ``'float32'`` or ``'float64'``; default: the dtype the model was saved in.
        **kwargs: passed on to :class:`ase.calculators.calculator.Calculator`.

    Raises:
        ValueError: an unknown dtype, an unusable device, or committee members that disagree.
    """

    implemented_properties = [*AVERAGED, keys.SPIN_LATENTS]

    def __init__(
        self,
        model: ModelSource | Sequence[ModelSource] | None = None,
        device: str | torch.device = "cpu",
        dtype: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if dtype is not None and dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.device = _usable_device(device)
        sources = [model] if model is None or isinstance(model, ModelSource) else list(model)
        self.models = tuple(_prepared(source, self.device, dtype) for source in sources)
        check_members(self.models)
        self.model_files = tuple(_file_record(source) for source in sources)
        self.dtype = DTYPES[self.model.metadata["dtype"]]
        if len(self.models) > 1:  # an instance list: the class's stays untouched
            self.implemented_properties = [*AVERAGED, *SPREADS.values(), MEMBER_ENERGIES]
        self._warned: set[str] = set()
        self._lock = threading.RLock()

    @property
    def model(self) -> LoadedModel:
        """The model (a committee's first): its species, cutoff, spin mode and training
        records set the input checks and warnings."""
        return self.models[0]

    def todict(self) -> dict:
        """What made the results, for trajectories and databases: each model file's path and
        sha256 (None for a model passed already loaded), species, cutoff (Å), spin mode,
        dtype, device and this package's version."""
        return {
            "models": [dict(record) for record in self.model_files],
            "species": list(self.model.species),
            "cutoff": self.model.cutoff,
            "spin_mode": self.model.metadata["spin_mode"],
            "dtype": self.model.metadata["dtype"],
            "device": str(self.device),
            "package_version": __version__,
        }

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_lock"]  # a lock does not pickle; each copy gets its own
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def get_property(self, name: str, atoms: Atoms | None = None, allow_calculation: bool = True):
        """ASE's property request (check the state, calculate, read), under the lock."""
        if atoms is not None:  # ASE's state check compares the moments: valid ones only
            initial_moments(atoms, self.model.spin_mode)
        with self._lock:
            return super().get_property(name, atoms, allow_calculation)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        """Evaluate ``atoms`` (all properties; the stress only for a 3-D periodic cell).

        Raises:
            PropertyNotImplementedError: ``properties`` names the stress of a structure that
                is not periodic in all three directions.
        """
        with self._lock:
            pbc = (self.atoms if atoms is None else atoms).pbc
            if properties is not None and "stress" in properties and not pbc.all():
                raise PropertyNotImplementedError(  # refused before the state changes
                    "stress needs a cell periodic in all three directions (atoms.pbc is "
                    f"{pbc.tolist()}); ask for energy and forces only"
                )
            self.results = {}  # a failed calculation leaves none of the previous structure's
            super().calculate(atoms, properties, system_changes)
            self.results = self._evaluate(self.atoms)

    def _evaluate(self, atoms: Atoms) -> dict:
        """The results for ``atoms`` in ASE units, all finite: the model's, or a committee's."""
        graph = atoms_to_graph(
            atoms,
            self.model.species,
            self.model.cutoff,
            spin_mode=self.model.spin_mode,
            dtype=self.dtype,
            device=self.device,
        )
        self._check_guesses(atoms)  # after atoms_to_graph has validated the moments
        self._check_contacts(graph)
        members = [self._results_of(model, graph, atoms.pbc.all()) for model in self.models]
        return members[0] if len(members) == 1 else committee_results(members)

    def _results_of(self, model: LoadedModel, graph: dict, periodic: bool) -> dict:
        """One model's results for ``graph`` in ASE units, all finite."""
        out = model.module(graph)
        result = {key: value.detach().cpu().numpy() for key, value in out.items()}
        energy = float(result[keys.ENERGY][0])
        magmoms = result[keys.MAGMOMS]
        results = {
            "energy": energy,
            "free_energy": energy,
            "energies": result[keys.ENERGIES],
            "forces": result[keys.FORCES],
            "magmoms": magmoms,
            "magmom": magmoms.sum(axis=0),
            keys.SPIN_LATENTS: result[keys.SPIN_LATENTS],
            keys.MAGNETIC_FORCES: result[keys.MAGNETIC_FORCES],
        }
        if periodic:
            results["stress"] = full_3x3_to_voigt_6_stress(result[keys.STRESS][0])
        self._check_finite(results, graph, model)
        return results

    def _check_guesses(self, atoms: Atoms) -> None:
        """Warn about guessed moment sizes outside the training range of their element."""
        ranges = self.model.metadata.get("training", {}).get("guess_ranges_muB", {})
        full = self.model.metadata["model_config"].get("full_moment", np.inf)
        sizes = moment_sizes(atoms.get_initial_magnetic_moments())
        symbols = np.array(atoms.get_chemical_symbols())
        for symbol, (low, high) in ranges.items():
            mine = sizes[symbols == symbol]
            if symbol in self._warned or not mine.size:
                continue
            seen, trained = np.minimum(mine, full), np.minimum([low, high], full)
            if (
                seen.min() < trained[0] - GUESS_RANGE_SLACK
                or seen.max() > trained[1] + GUESS_RANGE_SLACK
            ):
                self._warned.add(symbol)
                warnings.warn(
                    f"guessed moments on {symbol} span {mine.min():.2f}–{mine.max():.2f} μB, "
                    f"outside the {low:.2f}–{high:.2f} μB this model was trained with, so "
                    "the results are extrapolated; set the moments you would give a DFT run "
                    "(atoms.set_initial_magnetic_moments)",
                    UserWarning,
                    stacklevel=user_stacklevel(),
                )

    def _too_close(self, graph: dict) -> dict[str, tuple[float, float]]:
        """Element pairs closer than any such pair in the training frames: (length, trained)."""
        trained = self.model.metadata.get("training", {}).get("closest_contacts_A", {})
        if not trained:
            return {}
        return {
            pair: (length, trained[pair])
            for pair, length in closest_contacts(graph, self.model.species).items()
            if pair in trained and length < trained[pair] - CONTACT_SLACK
        }

    def _check_contacts(self, graph: dict) -> None:
        """Warn about atoms closer than any pair of their elements in the training frames."""
        for pair, (length, trained) in self._too_close(graph).items():
            if pair in self._warned:
                continue
            self._warned.add(pair)
            warnings.warn(
                f"two {pair} atoms are {length:.2f} Å apart, closer than any {pair} pair "
                f"this model was trained on ({trained:.2f} Å), so the results are "
                "extrapolated; check the structure",
                UserWarning,
                stacklevel=user_stacklevel(),
            )

    def _check_finite(self, results: dict, graph: dict, model: LoadedModel) -> None:
        """Raise ``CalculationFailed`` naming the likely cause if any result is not finite."""
        bad = [
            key
            for key, value in results.items()
            if key not in ("free_energy", "magmom") and not np.all(np.isfinite(value))
        ]
        if not bad:
            return
        if not all(torch.isfinite(p).all() for p in model.module.parameters()):
            cause = "the model's weights contain NaN or infinity; use an undamaged model file"
        else:
            close = [
                f"{pair} {length:.2f} Å (trained from {trained:.2f} Å)"
                for pair, (length, trained) in self._too_close(graph).items()
            ]
            cause = (
                f"atoms far closer than in the training data ({', '.join(close)}); check "
                "the structure"
                if close
                else "an overflow in the model"
                + ("; try dtype='float64'" if self.dtype == torch.float32 else "")
            )
        raise CalculationFailed(f"the model gave non-finite {', '.join(bad)}: {cause}")

    @property
    def metadata(self) -> dict:
        """What the model file (a committee's first) says about the model (cutoff, species,
        units, versions...)."""
        return self.model.metadata


def _usable_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device, checked to hold a tensor here (else ``ValueError``)."""
    try:
        checked = torch.device(device)
        torch.zeros(1, device=checked)
    except (RuntimeError, AssertionError, TypeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"device {device!r} is not usable here ({reason}); use 'cpu'") from None
    return checked


def _prepared(source: ModelSource | None, device: torch.device, dtype: str | None) -> LoadedModel:
    """The model of ``source`` (None: the shipped default) on ``device`` in ``dtype``."""
    if not isinstance(source, LoadedModel):
        path = default_model_path() if source is None else source
        return load_model(path, device=device, dtype=DTYPES[dtype] if dtype else None)
    target = DTYPES[dtype or source.metadata["dtype"]]
    parameter = next(source.module.parameters(), None)
    if parameter is None or (parameter.device == device and parameter.dtype == target):
        return source
    # a copy: .to() would convert the caller's module in place
    module = copy.deepcopy(source.module).to(device=device, dtype=target)
    return LoadedModel(module, {**source.metadata, "dtype": str(target).removeprefix("torch.")})


def _file_record(source: ModelSource | None) -> dict[str, str | None]:
    """Path and sha256 of the model file ``source`` names (None for a loaded model)."""
    if isinstance(source, LoadedModel):
        return {"path": None, "sha256": None}
    path = Path(default_model_path() if source is None else source).resolve()
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "sha256": digest.hexdigest()}
