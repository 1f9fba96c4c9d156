"""Phonons with phonopy for a given spin ordering.

The initial moments go into phonopy's cell as ``magnetic_moments`` where they break symmetry,
so the symmetry phonopy uses to reduce displacements is that of the magnetic structure
(AFM-II rocksalt is rhombohedral, not cubic). Forces come from the calculator with the
moments carried over to every displaced supercell. With a committee calculator each result
also gives the largest per-atom force spread over its displaced supercells
(:mod:`~spinmultinet_ase.workflows.spread`).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import spglib
from ase import Atoms
from ase.calculators.calculator import Calculator
from tqdm import tqdm

from spinmultinet_ase.data.graph import require_periodic
from spinmultinet_ase.magnetism.spacegroup import symmetry_operations
from spinmultinet_ase.outputs import atomic_path, write_text_atomic
from spinmultinet_ase.workflows.inputs import check_count, check_number
from spinmultinet_ase.workflows.relax import DEFAULT_FMAX, check_relax_options, relax
from spinmultinet_ase.workflows.spread import spread_of

if TYPE_CHECKING:  # phonopy is imported where it is used: it is slow to import
    from phonopy import Phonopy

# Atomic displacement (Å). Force constants rebuilt by symmetry from one finite displacement per
# atom carry an O(d²) anharmonic error that splits degenerate modes by itself; below phonopy's
# usual 0.01 Å, but large enough that the forces stand above float32's noise (the measured
# effect on a magnetic splitting: docs/tutorials/phonons.md).
DISPLACEMENT = 0.005


@dataclass
class PhononResult:
    """Band structure, DOS and Γ-point analysis of one ordering (frequencies in THz)."""

    ordering: str
    path_distances: list[float]
    path_frequencies: list[list[float]]
    path_labels: list[str]
    path_label_positions: list[float]
    dos_frequencies: list[float]
    dos: list[float]
    gamma_frequencies: list[float]
    parent_gamma_optical: list[float] = field(default_factory=list)
    # a committee's largest per-atom force spread over the displaced supercells (eV/Å)
    max_force_std: float | None = None

    @property
    def parent_gamma_splitting(self) -> float:
        """Spread (THz) of the optical modes of the non-magnetic parent's Γ point."""
        return max(self.parent_gamma_optical) - min(self.parent_gamma_optical)


def _lowers_symmetry(atoms: Atoms) -> bool:
    """Whether the moments can lower the symmetry: they differ between atoms of one element."""
    moments = atoms.get_initial_magnetic_moments()
    numbers = atoms.numbers
    return any(np.ptp(moments[numbers == z], axis=0).max() > 1e-8 for z in set(numbers))


def _phonopy(atoms: Atoms, supercell: np.ndarray) -> Phonopy:
    """A Phonopy object for ``atoms`` as its own primitive cell, reduced by the symmetry of the
    magnetic structure.

    Moments alike on every atom of an element (FM, non-magnetic) are left out: they keep the
    crystal's symmetry, and spglib's magnetic search fails on some such cells (FM in the
    4-atom AFM-II cell). If that search fails on another cell, every atom is displaced without
    symmetry (more force calls), with a warning.
    """
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    magnetic = _lowers_symmetry(atoms)
    cell = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell.array,
        scaled_positions=atoms.get_scaled_positions(),
        magnetic_moments=atoms.get_initial_magnetic_moments() if magnetic else None,
    )
    # the given cell is the magnetic cell: no primitive-cell search (it would ignore or trip
    # over the moments)
    try:
        return Phonopy(cell, supercell_matrix=supercell, primitive_matrix=np.eye(3))
    except spglib.error.SpglibError as error:
        warnings.warn(
            f"spglib's magnetic symmetry search failed on {atoms.get_chemical_formula()} "
            f"({error}); displacing every atom without symmetry",
            UserWarning,
            stacklevel=3,
        )
        return Phonopy(
            cell, supercell_matrix=supercell, primitive_matrix=np.eye(3), is_symmetry=False
        )


def _supercell_moments(phonon, atoms: Atoms) -> np.ndarray:
    """The initial moments of the phonopy supercell's atoms, copied from their unit-cell atoms."""
    supercell = phonon.supercell
    unit_atom = [supercell.u2u_map[s] for s in supercell.s2u_map]
    return atoms.get_initial_magnetic_moments()[unit_atom]


def _to_ase(cell, moments: np.ndarray) -> Atoms:
    return Atoms(
        cell.symbols,
        cell=cell.cell,
        scaled_positions=cell.scaled_positions,
        magmoms=moments,
        pbc=True,
    )


def parent_translations(atoms: Atoms, symprec: float = 1e-4) -> np.ndarray:
    """Atom permutations by the pure translations of the structure without its spins."""
    cell = (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    symmetry = symmetry_operations(cell, atoms.get_chemical_formula(), symprec)
    identity = np.all(symmetry["rotations"] == np.eye(3, dtype=int), axis=(1, 2))
    frac = atoms.get_scaled_positions()
    permutations = []
    for translation in symmetry["translations"][identity]:
        delta = (frac + translation)[:, None, :] - frac[None, :, :]
        delta -= np.rint(delta)
        permutations.append(np.argmax(np.all(np.abs(delta) < 10 * symprec, axis=-1), axis=1))
    return np.unique(np.array(permutations), axis=0)


def parent_gamma_character(eigenvectors: np.ndarray, permutations: np.ndarray) -> np.ndarray:
    """For each mode (column), the weight of its in-phase part under the parent translations:
    1 for modes at the parent's Γ point, 0 for modes folded in from its zone boundary."""
    n_atoms = permutations.shape[1]
    modes = eigenvectors.T.reshape(-1, n_atoms, 3)
    averaged = np.mean([modes[:, perm, :] for perm in permutations], axis=0)
    return np.sum(np.abs(averaged) ** 2, axis=(1, 2)).real


def check_phonon_options(
    supercell: np.ndarray | None = None,
    displacement: float = DISPLACEMENT,
    mesh: tuple[int, int, int] = (16, 16, 16),
    npoints: int = 200,
) -> None:
    """Check the options of :func:`compute_phonons` (which calls this first) before any work.

    Raises:
        ValueError: one line naming the first option out of its range.
    """
    if supercell is not None:
        matrix = np.asarray(supercell)
        if (
            matrix.shape != (3, 3)
            or not np.issubdtype(matrix.dtype, np.integer)
            or round(np.linalg.det(matrix)) < 1
        ):
            raise ValueError(
                f"the phonon supercell must be a 3x3 integer matrix of positive determinant, "
                f"got {matrix.tolist()}"
            )
    check_number(displacement, "the phonon displacement (Å)", 0.0, above=True)
    if displacement > 0.1:
        raise ValueError(
            f"the phonon displacement {displacement} Å is not small (harmonic force constants "
            f"need <= 0.1 Å; default {DISPLACEMENT})"
        )
    if len(mesh) != 3:
        raise ValueError(f"the DOS mesh takes 3 whole numbers, got {mesh!r}")
    for size in mesh:
        check_count(size, "each DOS mesh size")
    check_count(npoints, "the number of band-path points", 2)


def displaced_cells(
    atoms: Atoms, supercell: np.ndarray | None = None, displacement: float = DISPLACEMENT
) -> tuple[Phonopy, list[Atoms]]:
    """The phonopy object for ``atoms`` and its displaced supercells, as ``Atoms`` carrying the
    initial moments, whose forces :func:`phonons_from_forces` needs (from any calculator).

    Args:
        atoms: the structure with its initial moments, at the geometry to expand around.
        supercell: phonopy supercell matrix (default 2x2x2).
        displacement: atomic displacement (Å).
    """
    require_periodic(atoms, "computing phonons")
    supercell = 2 * np.eye(3, dtype=int) if supercell is None else np.asarray(supercell)
    phonon = _phonopy(atoms, supercell)
    phonon.generate_displacements(distance=displacement)
    moments = _supercell_moments(phonon, atoms)
    return phonon, [_to_ase(cell, moments) for cell in phonon.supercells_with_displacements]


def phonons_from_forces(
    phonon: Phonopy,
    atoms: Atoms,
    forces: list[np.ndarray],
    ordering: str = "",
    mesh: tuple[int, int, int] = (16, 16, 16),
    npoints: int = 200,
) -> PhononResult:
    """Force constants from the forces on the cells of :func:`displaced_cells`, then bands,
    DOS and the Γ-point analysis of ``atoms`` (the structure they were made from)."""
    phonon.forces = np.array(forces)
    phonon.produce_force_constants()
    phonon.symmetrize_force_constants()

    path = atoms.cell.bandpath(npoints=npoints)
    frequencies = phonon.run_qpoints(path.kpts).frequencies
    distances, label_positions, labels = path.get_linear_kpoint_axis()
    phonon.run_mesh(list(mesh), is_gamma_center=True)
    phonon.run_total_dos()
    dos = phonon.total_dos

    gamma = phonon.run_qpoints([[0.0, 0.0, 0.0]], with_eigenvectors=True)
    gamma_frequencies = gamma.frequencies[0]
    character = parent_gamma_character(gamma.eigenvectors[0], parent_translations(atoms))
    order = np.argsort(gamma_frequencies)
    acoustic = set(order[:3].tolist())
    parent_optical = sorted(
        float(gamma_frequencies[i])
        for i in range(len(gamma_frequencies))
        if character[i] > 0.5 and i not in acoustic
    )
    return PhononResult(
        ordering=ordering,
        path_distances=distances.tolist(),
        path_frequencies=frequencies.tolist(),
        path_labels=[label.replace("G", "Γ") for label in labels],
        path_label_positions=label_positions.tolist(),
        dos_frequencies=dos.frequency_points.tolist(),
        dos=dos.dos.tolist(),
        gamma_frequencies=sorted(gamma_frequencies.tolist()),
        parent_gamma_optical=parent_optical,
    )


def compute_phonons(
    atoms: Atoms,
    calc: Calculator,
    ordering: str = "",
    supercell: np.ndarray | None = None,
    displacement: float = DISPLACEMENT,
    mesh: tuple[int, int, int] = (16, 16, 16),
    npoints: int = 200,
    progress: bool = True,
) -> PhononResult:
    """Finite-displacement phonons of ``atoms`` (with its initial moments) at fixed geometry,
    with forces from ``calc`` (ideally the calculator ``atoms`` was relaxed with); the
    arguments are those of :func:`displaced_cells` and :func:`phonons_from_forces`.

    Raises:
        ValueError: an option out of its range (:func:`check_phonon_options`), or a structure
            that is not periodic.
    """
    check_phonon_options(supercell, displacement, mesh, npoints)
    phonon, cells = displaced_cells(atoms, supercell, displacement)
    forces, spreads = [], []
    for cell in tqdm(cells, desc=f"phonons {ordering}", disable=not progress):
        cell.calc = calc
        forces.append(cell.get_forces())
        spreads.append(spread_of(cell))
    result = phonons_from_forces(phonon, atoms, forces, ordering, mesh, npoints)
    if spreads[0] is not None:
        result.max_force_std = max(spread.max_force_std for spread in spreads)
    return result


def run_phonons(
    structures: dict[str, Atoms],
    calc: Calculator,
    supercell: np.ndarray | None = None,
    displacement: float = DISPLACEMENT,
    relax_first: bool = True,
    fmax: float = DEFAULT_FMAX,
    progress: bool = True,
) -> list[PhononResult]:
    """Phonons of each named structure, each relaxed first (positions and cell) at its order.

    Every structure and option is checked before the first long computation.

    Args:
        structures: ``{name: atoms}`` with initial moments, e.g. one per ordering.
        calc: the calculator for relaxations and forces.
        supercell: phonopy supercell matrix of each structure's cell (default 2x2x2).
        displacement: atomic displacement (Å).
        relax_first: relax each structure (``fmax`` in eV/Å) before its phonons; a relaxation
            that does not converge gives a warning.
        progress: progress bars over the displaced cells.
    """
    check_phonon_options(supercell, displacement)
    check_relax_options(fmax=fmax)
    for atoms in structures.values():
        require_periodic(atoms, "computing phonons")
    results = []
    for name, atoms in structures.items():
        if relax_first:
            atoms, converged = relax(atoms, calc, fmax=fmax, relax_cell=True)
            if not converged:
                warnings.warn(
                    f"{name} relaxation did not reach fmax={fmax}", UserWarning, stacklevel=2
                )
        results.append(
            compute_phonons(atoms, calc, name, supercell, displacement, progress=progress)
        )
    return results


def write_phonons(results: list[PhononResult], output_dir: str | Path) -> None:
    """``phonons.json`` (every result; ``max_force_std`` only from a committee) and
    ``phonons.png`` (:func:`plot_phonons`), atomically."""
    output = Path(output_dir)
    with atomic_path(output / "phonons.png") as temporary:
        plot_phonons(results, temporary)
    records = [asdict(r) for r in results]
    for record in records:
        if record["max_force_std"] is None:
            del record["max_force_std"]
    write_text_atomic(output / "phonons.json", json.dumps(records, indent=1))


def plot_phonons(results: list[PhononResult], path: str | Path) -> None:
    """Band structure and DOS of each ordering side by side, one row per ordering."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(results),
        2,
        figsize=(10, 3.5 * len(results)),
        squeeze=False,
        gridspec_kw={"width_ratios": [3, 1]},
    )
    for (band_ax, dos_ax), result in zip(axes, results, strict=True):
        band_ax.plot(result.path_distances, result.path_frequencies, "k-", lw=0.8)
        band_ax.set_xticks(result.path_label_positions, result.path_labels)
        for x in result.path_label_positions:
            band_ax.axvline(x, color="0.7", lw=0.5)
        band_ax.set_xlim(result.path_distances[0], result.path_distances[-1])
        band_ax.set_ylabel("frequency (THz)")
        band_ax.set_title(f"{result.ordering}")
        dos_ax.plot(result.dos, result.dos_frequencies, "k-", lw=0.8)
        dos_ax.set_xlabel("DOS")
        dos_ax.set_ylim(band_ax.get_ylim())
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
