"""``SpinMultiNetCalculator``: an ASE calculator around an exported SpinMultiNet model.

It reads the structure and ``atoms.get_initial_magnetic_moments()`` (so ASE's ``check_state``
recomputes when the moments change), builds the neighbour graph, calls the model once and
stores the results in ASE units:

* ``energy``/``free_energy`` (eV), ``energies`` (eV per atom), ``forces`` = -∂E/∂R (eV/Å);
* ``stress`` (eV/Å³, Voigt order xx, yy, zz, yz, xz, xy) = (1/V) ∂E/∂ε, ASE's sign: negative
  when the cell wants to expand; only for cells periodic in all three directions;
* ``magmoms`` (μB, predicted, time-odd) and their sum ``magmom``;
* extra results ``spin_latents`` (time-odd per-atom features) and ``magnetic_forces`` = -∂E/∂m.

A guessed moment whose size lies outside what the model saw in training (recorded in the
model file), such as 0 on a magnetic ion because the moments were never set, gives a warning
(once per element and calculator): the result is then an extrapolation. Sizes from the
model's ``full_moment`` on all count as that size (the model sees them alike), so a large
guess is never one. Two atoms closer than any pair of their elements in the training data
(also recorded in the model file) give a warning too (once per element pair and calculator).

One calculator may be shared by threads: each property request (``get_property``, hence
``atoms.get_forces()`` and the like, and ``calculate``) holds the calculator's lock, so it
returns the results of the structure it was given; requests run one at a time. A calculator
pickles (a TorchScript model travels as the bytes of its file), so it can be sent to other
processes. A non-finite result is never stored: it raises ``CalculationFailed`` naming the
likely cause.
"""

from __future__ import annotations

import copy
import threading
import warnings
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

from spinmultinet_ase import keys
from spinmultinet_ase.data.graph import (
    atoms_to_graph,
    closest_contacts,
    initial_moments,
    moment_sizes,
)
from spinmultinet_ase.export import DTYPES, LoadedModel, default_model_path, load_model

GUESS_RANGE_SLACK = 0.05  # μB beyond the training range of guessed moment sizes before a warning
CONTACT_SLACK = 0.05  # Å below the shortest training distance of an element pair before a warning


class SpinMultiNetCalculator(Calculator):
    """ASE calculator for SpinMultiNet models.

    Args:
        model: path of an exported model (``.pt``), a :class:`LoadedModel`, or None for the
            shipped default model.
        device: torch device, e.g. ``'cpu'``.
        dtype: ``'float32'`` or ``'float64'``; default: the dtype the model was saved in.
        **kwargs: passed on to :class:`ase.calculators.calculator.Calculator`.
    """

    implemented_properties = [
        "energy",
        "free_energy",
        "energies",
        "forces",
        "stress",
        "magmoms",
        "magmom",
    ]

    def __init__(
        self,
        model: str | Path | LoadedModel | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if dtype is not None and dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        if model is None:
            model = default_model_path()
        if not isinstance(model, LoadedModel):
            model = load_model(model, device=device, dtype=DTYPES[dtype] if dtype else None)
        elif dtype is not None and dtype != model.metadata["dtype"]:
            # a copy: .to() would convert the caller's module in place
            module = copy.deepcopy(model.module).to(DTYPES[dtype])
            model = LoadedModel(module, {**model.metadata, "dtype": dtype})
        self.model = model
        self.device = device
        self.dtype = DTYPES[model.metadata["dtype"]]
        self._warned: set[str] = set()
        self._lock = threading.RLock()

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
        with self._lock:
            properties = self.implemented_properties if properties is None else properties
            super().calculate(atoms, properties, system_changes)
            self.results = self._evaluate(self.atoms, "stress" in properties)

    def _evaluate(self, atoms: Atoms, wants_stress: bool) -> dict:
        """The model's results for ``atoms`` in ASE units, all finite."""
        if wants_stress and not atoms.pbc.all():
            raise PropertyNotImplementedError(
                "stress needs a cell periodic in all three directions (atoms.pbc is "
                f"{atoms.pbc.tolist()}); ask for energy and forces only"
            )
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
        out = self.model.module(graph)
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
        if atoms.pbc.all():
            results["stress"] = full_3x3_to_voigt_6_stress(result[keys.STRESS][0])
        self._check_finite(results, graph)
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
                    stacklevel=2,
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
                stacklevel=2,
            )

    def _check_finite(self, results: dict, graph: dict) -> None:
        """Raise ``CalculationFailed`` naming the likely cause if any result is not finite."""
        bad = [
            key
            for key, value in results.items()
            if key not in ("free_energy", "magmom") and not np.all(np.isfinite(value))
        ]
        if not bad:
            return
        if not all(torch.isfinite(p).all() for p in self.model.module.parameters()):
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
        """What the model file says about the model (cutoff, species, units, versions...)."""
        return self.model.metadata
