"""Scan collinear orderings of any crystal: single points, relaxations, exchange fit, T_N.

For each ordering the scan reports the energy at the ideal (given) geometry and after relaxing
positions and cell, per magnetic ion and per formula unit, relative to the lowest ordering;
the predicted moments, the relaxed lattice and volume per formula unit, whether the ordering
is the observed ground state (a material given by name whose ground state the scan holds:
:mod:`~spinmultinet_ase.magnetism.ground_states`) and, for rocksalt
formulas (cells in the cubic frame), the pseudo-cubic angle between the deformed cubic axes
(> 90° means contraction along the body diagonal, the rhombohedral distortion of AFM-II MnO
and NiO). The ideal-geometry energies per magnetic ion are then fitted by a Heisenberg model
on the crystal's own shells of magnetic neighbours (:mod:`spinmultinet_ase.magnetism.exchange`).

With a committee calculator every energy comes with its spread, the population standard
deviation over the members (``ddof=0``), all at the committee's geometries: ``*_energy_std``
that of the members' energies (eV per formula unit), and ``*_relative_*_std`` that of each
member's own relative energy, its energy minus its energy of the ordering lowest in the
committee's mean (per magnetic ion, and per formula unit; that ordering's is therefore 0).
The latter is the uncertainty of the reported relative energy (the members' mean of
theirs); the two energies' spreads do not give it, since the members' errors on two orderings
are correlated.

A committee's exchange fit is made once more per member, on that member's own energies at the
ideal geometries (the geometries of the fit, the same for every member): each shell's
``JS2_meV_std`` is the population std of the members' J |S|². The fit is linear in the
energies, so the reported J (the fit of the mean energies) is the members' mean J.
``mean_field_temperature_K_std`` and, with the Monte Carlo (run once per member, with the same
sweeps, each member with a seed of its own), ``monte_carlo_neel_temperature_K_std`` are likewise
the spreads of the members' own estimates, around the mean-energy model's, which is not their
mean (T is not linear in J). The members' Monte Carlo runs being independent, that spread
includes the Monte Carlo's statistical noise, as the mean-energy model's T_N does.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from tqdm import tqdm

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.data.graph import species_indices
from spinmultinet_ase.magnetism.exchange import ExchangeShells, exchange_shells, fit_exchange
from spinmultinet_ase.magnetism.ground_states import OBSERVED_GROUND_STATES
from spinmultinet_ase.magnetism.heisenberg import HeisenbergLattice
from spinmultinet_ase.magnetism.montecarlo import (
    MONTE_CARLO_SWEEPS,
    NeelEstimate,
    neel_temperature,
)
from spinmultinet_ase.magnetism.orderings import (
    enumerate_collinear_orderings,
    equivalent_patterns,
    pattern_of,
)
from spinmultinet_ase.magnetism.rocksalt import ORDERINGS, ROCKSALT_LATTICE_CONSTANTS
from spinmultinet_ase.magnetism.sites import magnetic_sites
from spinmultinet_ase.magnetism.yardsticks import formula_units
from spinmultinet_ase.outputs import atomic_path, write_text_atomic
from spinmultinet_ase.spin import SpinMode
from spinmultinet_ase.workflows.inputs import in_spin_mode, ordered_structure, read_structure
from spinmultinet_ase.workflows.relax import DEFAULT_FMAX, pseudo_cubic_angles, relax
from spinmultinet_ase.workflows.spread import Spread, spread_of, store_spread

STORED_RESULTS = ("energy", "free_energy", "forces", "stress", "magmoms")
SPREAD_FIELDS = (
    "ideal_energy_std",
    "relaxed_energy_std",
    "ideal_relative_meV_per_ion_std",
    "relaxed_relative_meV_per_ion_std",
    "ideal_relative_meV_std",
    "relaxed_relative_meV_std",
)


@dataclass
class ScanInput:
    """The orderings of one crystal to compare, and the cell that defines the crystal."""

    reference: Atoms  # a cell of the ideal crystal, its moments marking the magnetic sites
    structures: dict[str, Atoms]  # ideal cells, one per ordering
    cubic: bool  # cells in the cubic frame of a rocksalt parent (pseudo-cubic angles apply)
    observed: str | None = None  # the ordering that is the material's observed ground state


def scan_input(
    target: str | Atoms,
    orderings: list[str] | None = None,
    supercell: np.ndarray | None = None,
    magnitudes: dict[str, float] | None = None,
) -> ScanInput:
    """The orderings to scan, from a rocksalt formula, a structure file or an ``Atoms``.

    Args:
        target: a rocksalt or corundum formula (``'NiO'``, ``'Cr2O3'``), the path of a
            structure file, or a structure.
        orderings: names or patterns: ``FM``, the rocksalt names (formula only), or one
            letter ``u``/``d`` per magnetic site of the supercell. Default: a formula's four
            named orderings, else every symmetry-distinct collinear ordering of the supercell.
        supercell: 3x3 integer matrix of the given cell (a formula's: its 2-atom primitive
            cell). Default: a formula's orderings each in its smallest cell, else the cell.
        magnitudes: moment magnitude (μB) per element, over the moments set in the structure
            or, where none are set, the default guesses of :mod:`~spinmultinet_ase.magnetism.sites`.
    """
    rocksalt = isinstance(target, str) and target in ROCKSALT_LATTICE_CONSTANTS
    if rocksalt and supercell is None:
        orderings = orderings or list(ORDERINGS)
        unknown = [n for n in orderings if n not in ORDERINGS]
        if unknown:
            raise ValueError(
                f"without --supercell a rocksalt formula takes the named orderings "
                f"{', '.join(ORDERINGS)}; got {', '.join(unknown)}"
            )
    source = read_structure(target) if isinstance(target, str) and not rocksalt else target
    reference = ordered_structure(source, magnitudes=magnitudes)
    if orderings is None:
        cell = ordered_structure(source, matrix=supercell, magnitudes=magnitudes)
        structures = {a.info["ordering"]: a for a in enumerate_collinear_orderings(cell)}
    else:
        structures = {n: ordered_structure(source, n, supercell, magnitudes) for n in orderings}
    observed = observed_ordering(target, structures, supercell)
    return ScanInput(reference, structures, cubic=rocksalt, observed=observed)


def observed_ordering(
    target: str | Atoms, structures: dict[str, Atoms], supercell: np.ndarray | None
) -> str | None:
    """The name in ``structures`` of the observed ground state of ``target``, a material by
    name (:data:`OBSERVED_GROUND_STATES`): that name itself, else, for orderings of one
    cell (``supercell``), the ordering the ground state is by symmetry in that cell. None for
    a structure, or where the scan does not hold the ground state."""
    ground = OBSERVED_GROUND_STATES.get(target) if isinstance(target, str) else None
    if ground is None or ground in structures:
        return ground
    try:  # the ground state in the supercell of the material's given cell
        if target in ROCKSALT_LATTICE_CONSTANTS:
            in_cell = ordered_structure(target, ground, supercell)
        else:
            in_cell = ordered_structure(ordered_structure(target, ground), matrix=supercell)
    except ValueError:  # it does not fit that supercell
        return None
    patterns = equivalent_patterns(in_cell)
    return next(
        (
            name
            for name, atoms in structures.items()
            if np.allclose(atoms.cell.array, in_cell.cell.array)
            and np.allclose(atoms.positions, in_cell.positions)
            and pattern_of(atoms) in patterns
        ),
        None,
    )


@dataclass
class OrderingResult:
    """What the scan found for one ordering (energies in eV per formula unit)."""

    ordering: str
    formula_units: int
    magnetic_ions: int
    ideal_energy: float
    relaxed_energy: float
    ideal_relative_meV_per_ion: float
    relaxed_relative_meV_per_ion: float
    ideal_relative_meV: float  # per formula unit
    relaxed_relative_meV: float  # per formula unit
    magnetic_moments: list[float]
    cell_lengths: list[float]
    cell_angles: list[float]
    volume_per_formula_unit: float
    pseudo_cubic_angle: float | None
    converged: bool
    observed_ground_state: bool = False  # the material's observed ground state (ScanInput)
    # a committee's spreads (module docstring), None for one model: eV per formula unit
    ideal_energy_std: float | None = None
    relaxed_energy_std: float | None = None
    # meV per magnetic ion and per formula unit
    ideal_relative_meV_per_ion_std: float | None = None
    relaxed_relative_meV_per_ion_std: float | None = None
    ideal_relative_meV_std: float | None = None
    relaxed_relative_meV_std: float | None = None
    # a committee's members' own energies at the ideal geometry (eV per formula unit, (M,)),
    # for their exchange fits; not written out
    ideal_member_energies: list[float] | None = None

    def row(self) -> dict:
        """The fields as a dict for CSV and JSON, without the spreads a single model lacks."""
        row = asdict(self)
        del row["ideal_member_energies"]
        return {k: v for k, v in row.items() if not (k in SPREAD_FIELDS and v is None)}

    @property
    def ideal_energy_per_ion(self) -> float:
        """Energy at the ideal geometry per magnetic ion (eV)."""
        return self.ideal_energy * self.formula_units / self.magnetic_ions


def scanned_mode(calc: Calculator) -> SpinMode:
    """The spin mode the scan evaluates in: the model's for a SpinMultiNet calculator, else
    collinear.

    Raises:
        ValueError: a model with spin-orbit, for which a collinear ordering's energy depends on
            its direction, which a scan of orderings does not choose.
    """
    if not isinstance(calc, SpinMultiNetCalculator):
        return SpinMode("collinear")
    mode = calc.model.spin_mode
    if mode.rotates_with_lattice:
        raise ValueError(
            f"this model is {mode.name}: with spin-orbit a collinear ordering's energy depends "
            "on its direction, which scan does not choose; evaluate each ordering as a "
            "structure file with (N, 3) moments along the axis you mean (spinmultinet relax)"
        )
    return mode


def scan_orderings(
    structures: dict[str, Atoms],
    calc: Calculator,
    fmax: float = DEFAULT_FMAX,
    steps: int = 500,
    optimizer: str = "BFGS",
    cubic_parent: bool = False,
    progress: bool = True,
) -> tuple[list[OrderingResult], dict[str, Atoms]]:
    """Evaluate and relax every ordering (``steps=0``: keep the ideal geometries, reported as
    not converged). For a ``noncollinear`` model each ordering is turned along z (without
    spin-orbit the same state) and its moments reported along z.

    Returns:
        The results sorted by relaxed energy per magnetic ion, and the relaxed structures by
        ordering name (with a committee's ``energy_std`` and ``forces_std``).
    """
    mode = scanned_mode(calc)
    if isinstance(calc, SpinMultiNetCalculator):  # a missing element fails before any work
        for atoms in structures.values():
            species_indices(atoms.get_chemical_symbols(), calc.model.species)
    results, relaxed_structures = [], {}
    spreads: dict[str, tuple[Spread, Spread]] = {}  # ideal, relaxed
    for name, atoms in tqdm(structures.items(), desc="orderings", disable=not progress):
        n_fu = formula_units(atoms)
        sites = magnetic_sites(atoms)
        single = in_spin_mode(atoms.copy(), mode)
        single.calc = calc
        ideal_energy = single.get_potential_energy() / n_fu
        ideal_spread = spread_of(single)
        if steps:
            relaxed, converged = relax(single, calc, fmax=fmax, steps=steps, optimizer=optimizer)
        else:
            relaxed, converged = single.copy(), False
            relaxed.calc = calc
        relaxed.get_stress()
        relaxed_spread = spread_of(relaxed)
        # the calculator is shared between orderings: keep this structure's own results
        kept = {k: v for k, v in calc.results.items() if k in STORED_RESULTS}
        relaxed.calc = SinglePointCalculator(relaxed, **kept)
        store_spread(relaxed, relaxed_spread)
        relaxed_structures[name] = relaxed
        if ideal_spread is not None and relaxed_spread is not None:
            spreads[name] = (ideal_spread, relaxed_spread)
        moments = np.asarray(relaxed.get_magnetic_moments())[sites]
        if mode.vector:  # along the axis the ordering was turned to
            moments = moments @ mode.ordering(np.ones(1))[0]
        angles = pseudo_cubic_angles(atoms.cell.array, relaxed.cell.array) if cubic_parent else None
        results.append(
            OrderingResult(
                ordering=name,
                formula_units=n_fu,
                magnetic_ions=len(sites),
                ideal_energy=ideal_energy,
                relaxed_energy=relaxed.get_potential_energy() / n_fu,
                ideal_relative_meV_per_ion=0.0,
                relaxed_relative_meV_per_ion=0.0,
                ideal_relative_meV=0.0,
                relaxed_relative_meV=0.0,
                magnetic_moments=[float(m) for m in moments],
                cell_lengths=relaxed.cell.cellpar()[:3].tolist(),
                cell_angles=relaxed.cell.cellpar()[3:].tolist(),
                volume_per_formula_unit=relaxed.get_volume() / n_fu,
                pseudo_cubic_angle=float(np.mean(angles)) if angles else None,
                converged=converged,
            )
        )
    ideal = {r.ordering: r.ideal_energy * r.formula_units / r.magnetic_ions for r in results}
    relaxed = {r.ordering: r.relaxed_energy * r.formula_units / r.magnetic_ions for r in results}
    lowest = (min(ideal, key=ideal.get), min(relaxed, key=relaxed.get))  # per magnetic ion
    for r in results:
        ions_per_fu = r.magnetic_ions / r.formula_units
        r.ideal_relative_meV_per_ion = 1000 * (ideal[r.ordering] - ideal[lowest[0]])
        r.relaxed_relative_meV_per_ion = 1000 * (relaxed[r.ordering] - relaxed[lowest[1]])
        r.ideal_relative_meV = r.ideal_relative_meV_per_ion * ions_per_fu
        r.relaxed_relative_meV = r.relaxed_relative_meV_per_ion * ions_per_fu
    if spreads:
        _add_spreads(results, spreads, lowest)
    return sorted(results, key=lambda r: r.relaxed_relative_meV_per_ion), relaxed_structures


def _add_spreads(
    results: list[OrderingResult],
    spreads: dict[str, tuple[Spread, Spread]],
    lowest: tuple[str, str],
) -> None:
    """Fill in the committee's spreads of ``results`` (module docstring) from each ordering's
    ideal and relaxed :class:`Spread`; ``lowest``: the orderings lowest in the committee's
    mean energy per magnetic ion, ideal and relaxed, which the relative energies are from."""
    per_ion = {
        r.ordering: [spread.member_energies / r.magnetic_ions for spread in spreads[r.ordering]]
        for r in results
    }
    lowest_ideal, lowest_relaxed = per_ion[lowest[0]][0], per_ion[lowest[1]][1]
    for r in results:
        ideal, relaxed = spreads[r.ordering]
        ions_per_fu = r.magnetic_ions / r.formula_units
        r.ideal_energy_std = ideal.energy_std / r.formula_units
        r.ideal_member_energies = (ideal.member_energies / r.formula_units).tolist()
        r.relaxed_energy_std = relaxed.energy_std / r.formula_units
        ideal_members, relaxed_members = per_ion[r.ordering]
        r.ideal_relative_meV_per_ion_std = 1000 * float(np.std(ideal_members - lowest_ideal))
        r.relaxed_relative_meV_per_ion_std = 1000 * float(np.std(relaxed_members - lowest_relaxed))
        r.ideal_relative_meV_std = r.ideal_relative_meV_per_ion_std * ions_per_fu
        r.relaxed_relative_meV_std = r.relaxed_relative_meV_per_ion_std * ions_per_fu


@dataclass
class ExchangeReport:
    """The Heisenberg fit of a scan: shells, J |S|² (meV) and how well the model fits; with a
    committee, the spreads of the members' own fits (module docstring)."""

    # distance (Å), symbols, coordination, JS2_meV (None: undetermined), a committee's
    # JS2_meV_std
    shells: list[dict]
    E0_eV_per_ion: float
    rms_residual_meV_per_ion: float
    condition: float
    degrees_of_freedom: int
    orderings: int
    mean_field_temperature_K: float | None
    warnings: list[str] = field(default_factory=list)
    monte_carlo_neel_temperature_K: float | None = None
    monte_carlo_method: str | None = None
    monte_carlo_sweeps: int | None = None  # measured sweeps per temperature and lattice size
    mean_field_temperature_K_std: float | None = None
    monte_carlo_neel_temperature_K_std: float | None = None
    # a committee's members' own J |S|² per shell (meV; None: undetermined); not written out
    member_JS2_meV: list[list[float | None]] | None = None

    def summary(self) -> dict:
        """The fields as a dict for JSON, without the spreads a single model lacks."""
        summary = asdict(self)
        del summary["member_JS2_meV"]
        if self.member_JS2_meV is None:
            for key in EXCHANGE_SPREAD_FIELDS:
                del summary[key]
        return summary


EXCHANGE_SPREAD_FIELDS = ("mean_field_temperature_K_std", "monte_carlo_neel_temperature_K_std")


def _mean_field_temperature(shells: ExchangeShells, JS2: list[float | None]) -> float:
    """The mean-field ordering temperature (K) of ``J_k |S|²`` (eV; None counts as 0)."""
    couplings = [0.0 if j is None else j for j in JS2]
    return HeisenbergLattice.from_fit(shells, couplings).mean_field_temperature()


def exchange_from_scan(
    scan: ScanInput, results: list[OrderingResult], shells: ExchangeShells
) -> ExchangeReport:
    """Fit ``J_k |S|²`` on ``shells`` to the ideal energies per magnetic ion; with a
    committee (results with ``ideal_member_energies``) also to each member's own."""
    by_name = {r.ordering: r for r in results}
    names = list(scan.structures)
    structures = [scan.structures[n] for n in names]
    fit = fit_exchange(shells, structures, [by_name[n].ideal_energy_per_ion for n in names])
    mean_field = _mean_field_temperature(shells, fit.JS2)
    rows = [
        {
            "distance": s.distance,
            "symbols": list(s.symbols),
            "coordination": s.coordination,
            "JS2_meV": None if j is None else 1000 * j,
        }
        for s, j in zip(shells.shells, fit.JS2, strict=True)
    ]
    members, mean_field_std = None, None
    if by_name[names[0]].ideal_member_energies is not None:
        per_ion = np.array(  # (M, orderings)
            [
                np.array(by_name[n].ideal_member_energies)
                * by_name[n].formula_units
                / by_name[n].magnetic_ions
                for n in names
            ]
        ).T
        fits = [fit_exchange(shells, structures, energies).JS2 for energies in per_ion]
        members = [[None if j is None else 1000 * j for j in JS2] for JS2 in fits]
        for k, row in enumerate(rows):
            determined = row["JS2_meV"] is not None
            row["JS2_meV_std"] = float(np.std([m[k] for m in members])) if determined else None
        mean_field_std = float(np.std([_mean_field_temperature(shells, JS2) for JS2 in fits]))
    return ExchangeReport(
        shells=rows,
        E0_eV_per_ion=fit.E0,
        rms_residual_meV_per_ion=1000 * fit.rms_residual,
        condition=fit.condition,
        degrees_of_freedom=fit.degrees_of_freedom,
        orderings=len(names),
        mean_field_temperature_K=mean_field,
        warnings=fit.warnings,
        mean_field_temperature_K_std=mean_field_std,
        member_JS2_meV=members,
    )


def monte_carlo_neel_temperature(
    report: ExchangeReport,
    shells: ExchangeShells,
    sweeps: int = MONTE_CARLO_SWEEPS,
    seed: int = 0,
) -> ExchangeReport:
    """Add the classical Monte Carlo T_N of the fitted model (Binder crossing of two sizes,
    ``sweeps`` measured sweeps per temperature and size after ``sweeps // 2`` discarded);
    with a committee also the spread of the members' own T_N, member k (from 1) run with the
    same sweeps and the seed ``seed + k``: independent runs, whose spread includes the Monte
    Carlo's statistical noise (a member whose model the Monte Carlo cannot follow leaves the
    spread out, with a warning)."""
    estimate = _monte_carlo(shells, [s["JS2_meV"] for s in report.shells], sweeps, seed)
    report.monte_carlo_neel_temperature_K = estimate.temperature
    report.monte_carlo_method = estimate.method
    report.monte_carlo_sweeps = sweeps
    if report.member_JS2_meV is None:
        return report
    temperatures = []
    for number, JS2 in enumerate(report.member_JS2_meV, start=1):
        try:
            temperatures.append(_monte_carlo(shells, JS2, sweeps, seed + number).temperature)
        except ValueError as error:
            report.warnings.append(
                f"no Monte Carlo T_N spread: committee member {number}'s model: {error}"
            )
            return report
    report.monte_carlo_neel_temperature_K_std = float(np.std(temperatures))
    return report


def _monte_carlo(
    shells: ExchangeShells, JS2_meV: list[float | None], sweeps: int, seed: int
) -> NeelEstimate:
    """The Monte Carlo T_N of ``J_k |S|²`` (meV; None counts as 0) on ``shells``."""
    couplings = [0.0 if j is None else j / 1000 for j in JS2_meV]
    lattice = HeisenbergLattice.from_fit(shells, couplings)
    smallest = max(4, 2 * int(np.abs(lattice.offset).max()) + 2)
    return neel_temperature(lattice, sizes=(smallest, smallest + 4), sweeps=sweeps, seed=seed)


@dataclass
class ScanOutcome:
    """Everything a scan found."""

    results: list[OrderingResult]
    relaxed: dict[str, Atoms]
    exchange: ExchangeReport | None
    no_fit_reason: str | None  # why there is no exchange fit, if there is none


def run_scan(
    target: str | Atoms,
    calc: Calculator,
    orderings: list[str] | None = None,
    supercell: np.ndarray | None = None,
    magnitudes: dict[str, float] | None = None,
    num_shells: int = 2,
    monte_carlo: bool = False,
    monte_carlo_sweeps: int = MONTE_CARLO_SWEEPS,
    fmax: float = DEFAULT_FMAX,
    steps: int = 500,
    optimizer: str = "BFGS",
    progress: bool = True,
) -> ScanOutcome:
    """Scan the orderings of ``target`` (see :func:`scan_input`) and fit the exchange.

    With ``monte_carlo`` the fitted model's T_N is estimated by classical Monte Carlo with
    ``monte_carlo_sweeps`` measured sweeps per temperature and size
    (:func:`monte_carlo_neel_temperature`).
    """
    scan = scan_input(target, orderings, supercell, magnitudes)
    shells = exchange_shells(scan.reference, num_shells)  # bad shells fail before relaxing
    results, relaxed = scan_orderings(
        scan.structures,
        calc,
        fmax=fmax,
        steps=steps,
        optimizer=optimizer,
        cubic_parent=scan.cubic,
        progress=progress,
    )
    for r in results:
        r.observed_ground_state = r.ordering == scan.observed
    try:
        exchange = exchange_from_scan(scan, results, shells)
    except ValueError as error:
        if monte_carlo:
            raise ValueError(f"no exchange fit for the Monte Carlo: {error}") from None
        return ScanOutcome(results, relaxed, None, str(error))
    if monte_carlo:
        monte_carlo_neel_temperature(exchange, shells, sweeps=monte_carlo_sweeps)
    return ScanOutcome(results, relaxed, exchange, None)


def format_scan_table(results: list[OrderingResult]) -> str:
    """The scan as a fixed-width text table, the observed ground state marked ``*``; with a
    committee each relative energy is followed by ± its spread, explained under the table."""
    width = max(12, 4 + max(len(r.ordering) for r in results))
    committee = results[0].ideal_relative_meV_per_ion_std is not None
    column = 16 if committee else 10
    header = (
        f"{'ordering':<{width}}{'ΔE ideal':>{column}}{'ΔE relax':>{column}}"
        f"{'ΔE relax':>{column}}{'|m| (μB)':>10}{'V/f.u. (Å³)':>13}{'angle (°)':>11}  converged"
    )
    units = f"{'meV/ion':>{column}}{'meV/ion':>{column}}{'meV/f.u.':>{column}}"
    lines = [header, " " * width + units]
    for r in results:
        moment = np.mean(np.abs(r.magnetic_moments))
        angle = (
            f"{r.pseudo_cubic_angle:11.3f}" if r.pseudo_cubic_angle is not None else f"{'-':>11}"
        )
        energies = (
            (r.ideal_relative_meV_per_ion, r.ideal_relative_meV_per_ion_std),
            (r.relaxed_relative_meV_per_ion, r.relaxed_relative_meV_per_ion_std),
            (r.relaxed_relative_meV, r.relaxed_relative_meV_std),
        )
        cells = "".join(
            f"{f'{value:.1f} ± {std:.1f}':>{column}}" if committee else f"{value:10.1f}"
            for value, std in energies
        )
        name = f"{r.ordering} *" if r.observed_ground_state else r.ordering
        lines.append(
            f"{name:<{width}}{cells}"
            f"{moment:10.2f}{r.volume_per_formula_unit:13.3f}{angle}  {r.converged}"
        )
    if any(r.observed_ground_state for r in results):
        lines.append("* : the observed ground state (experiment)")
    if committee:
        lines.append(
            "± : spread (population std) over the committee's members of each member's own "
            "energy relative to the ordering lowest in the mean, at the committee's geometries"
        )
    return "\n".join(lines)


def format_exchange(report: ExchangeReport) -> str:
    """The fit as text: one line per shell, then the residual, condition and warnings; with a
    committee each J and temperature is followed by ± its spread, explained at the end."""
    committee = report.member_JS2_meV is not None

    def spread(std: float | None, digits: int) -> str:
        return f" ± {std:.{digits}f}" if std is not None else ""

    lines = [
        "Heisenberg fit E = E0 + Σ_<ij> J_ij S_i·S_j (J > 0 antiferromagnetic) to the "
        f"ideal-geometry energies per magnetic ion of {report.orderings} orderings:"
    ]
    for k, shell in enumerate(report.shells, start=1):
        value = (
            "undetermined"
            if shell["JS2_meV"] is None
            else f"{shell['JS2_meV']:8.2f}{spread(shell.get('JS2_meV_std'), 2)} meV"
        )
        lines.append(
            f"  J{k} S² = {value}  ({'–'.join(shell['symbols'])} at {shell['distance']:.3f} Å, "
            f"{shell['coordination']:g} per ion)"
        )
    lines.append(
        f"  rms departure from the model {report.rms_residual_meV_per_ion:.2f} meV/ion "
        f"({report.degrees_of_freedom} degree{'' if report.degrees_of_freedom == 1 else 's'} "
        "of freedom), condition number "
        f"{report.condition:.1f}"
    )
    lines += [f"  warning: {w}" for w in report.warnings]
    if report.mean_field_temperature_K is not None:
        lines.append(
            f"mean-field ordering temperature of this model {report.mean_field_temperature_K:.0f}"
            f"{spread(report.mean_field_temperature_K_std, 0)} K (classical mean field "
            "overestimates it)"
        )
    if report.monte_carlo_neel_temperature_K is not None:
        lines.append(
            f"classical Monte Carlo T_N = {report.monte_carlo_neel_temperature_K:.0f}"
            f"{spread(report.monte_carlo_neel_temperature_K_std, 0)} K "
            f"({report.monte_carlo_method}, {report.monte_carlo_sweeps} sweeps)"
        )
    if committee:
        lines.append(
            "± : spread (population std) of the committee's members' own fits (and their "
            "temperatures) to their own energies at the same ideal geometries"
        )
    return "\n".join(lines)


# The files write_scan writes into its output folder.
SCAN_OUTPUTS = ("scan.csv", "scan.json", "scan.png", "relaxed.extxyz")


def write_scan(
    results: list[OrderingResult],
    relaxed: dict[str, Atoms],
    exchange: ExchangeReport | None,
    output_dir: str | Path,
) -> None:
    """``scan.csv``, ``scan.json``, ``relaxed.extxyz`` and ``scan.png`` (relative energies)."""
    import matplotlib
    from ase.io import write

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output = Path(output_dir)
    rows = [r.row() for r in results]

    def write_csv(path: Path) -> None:
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    with atomic_path(output / "scan.csv") as path:
        write_csv(path)
    summary = {
        "energy_unit": "eV per formula unit (meV per magnetic ion where the key says per_ion)",
        "orderings": rows,
        "exchange": exchange.summary() if exchange else None,
    }
    if results[0].ideal_energy_std is not None:
        summary["spread"] = (
            "*_std: population standard deviation (ddof=0) over the committee's members, at "
            "the committee's geometries: *_energy_std of the members' energies, "
            "*_relative_*_std of each member's own energy relative to the ordering lowest in "
            "the committee's mean; exchange: JS2_meV_std and *_temperature_K_std of the "
            "members' own fits to their own energies at the ideal geometries (and their "
            "temperatures; the Monte Carlo with the same sweeps, a seed per member)"
        )
    write_text_atomic(output / "scan.json", json.dumps(summary, indent=2))
    for name, atoms in relaxed.items():
        atoms.info["ordering"] = name
    with atomic_path(output / "relaxed.extxyz") as path:
        write(path, list(relaxed.values()), format="extxyz")
    names = [r.ordering for r in results]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(min(1.2 * len(names) + 2, 16), 3.5))
    committee = results[0].ideal_relative_meV_per_ion_std is not None
    for shift, stage, label in ((-0.2, "ideal", "ideal geometry"), (0.2, "relaxed", "relaxed")):
        ax.bar(
            x + shift,
            [getattr(r, f"{stage}_relative_meV_per_ion") for r in results],
            0.4,
            yerr=[getattr(r, f"{stage}_relative_meV_per_ion_std") for r in results]
            if committee
            else None,
            label=label,
        )
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("E − E(lowest) (meV/magnetic ion)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(output / "scan.png") as path:
        fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
