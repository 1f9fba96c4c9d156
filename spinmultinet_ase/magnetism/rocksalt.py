"""Rocksalt transition-metal oxides (MnO, NiO, FeO, CoO) with named collinear orderings.

Metals sit on the fcc sites ``r = (a/2) u`` with integer ``u`` and ``u_x + u_y + u_z`` even;
oxygen sits at ``r + (a/2, 0, 0)``. An ordering is a sign (+1/-1) per metal site, a function of
``u``:

* ``FM``: all parallel.
* ``AFM-I``: ferromagnetic (001) planes alternating along z, ``(-1)^{u_z}``.
* ``AFM-II``: ferromagnetic (111) planes alternating along [111], ``(-1)^{(u_x+u_y+u_z)/2}``;
  the ground state of MnO and NiO.
* ``AFM-III``: wave vector (2π/a)(1, 1/2, 0), ``(-1)^{floor(u_x + u_y/2)}``.

The cell that holds an ordering is a supercell ``P @ A`` of the 2-atom primitive cell ``A``;
:func:`minimal_magnetic_cell` finds the smallest integer ``P`` in which the ordering is periodic.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np
from ase import Atoms
from ase.build import make_supercell
from ase.geometry import minkowski_reduce

from spinmultinet_ase.magnetism.sites import DEFAULT_MOMENT_MAGNITUDES

# Cubic lattice constants (Å) about which structures are built and strained. MnO and NiO are
# the zero-pressure points of our GPAW PBE+U protocol in the AFM-II state (data/README.md).
# FeO and CoO: zero-pressure points estimated from the protocol's stress of the AFM-II cell in
# the insulating state near them (data/studies/feo_coo_states.md), to be refined by a scan.
ROCKSALT_LATTICE_CONSTANTS: dict[str, float] = {
    "MnO": 4.51,
    "FeO": 4.41,
    "CoO": 4.31,
    "NiO": 4.26,
}

OrderingSign = Callable[[np.ndarray], np.ndarray]

ORDERINGS: dict[str, OrderingSign] = {
    "FM": lambda u: np.ones(len(u), dtype=int),
    "AFM-I": lambda u: (-1) ** (u[:, 2] % 2),
    "AFM-II": lambda u: (-1) ** ((u.sum(axis=1) // 2) % 2),
    "AFM-III": lambda u: (-1) ** (np.floor_divide(2 * u[:, 0] + u[:, 1], 2) % 2),
}

_PRIMITIVE_VECTORS = 0.5 * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


def rocksalt_formula_metal(formula: str) -> str:
    """The metal of a rocksalt oxide formula such as ``'NiO'``, with a clear error otherwise."""
    if formula not in ROCKSALT_LATTICE_CONSTANTS:
        known = ", ".join(sorted(ROCKSALT_LATTICE_CONSTANTS))
        raise ValueError(f"unknown rocksalt oxide {formula!r}; known formulas: {known}")
    return formula[:-1]


def rocksalt_primitive(formula: str, a: float | None = None) -> Atoms:
    """The 2-atom primitive rocksalt cell of ``formula`` with cubic lattice constant ``a`` (Å)."""
    metal = rocksalt_formula_metal(formula)
    a = ROCKSALT_LATTICE_CONSTANTS[formula] if a is None else a
    return Atoms(
        [metal, "O"],
        positions=[[0.0, 0.0, 0.0], [a / 2, 0.0, 0.0]],
        cell=a * _PRIMITIVE_VECTORS,
        pbc=True,
    )


def hermite_normal_forms(det: int) -> Iterator[np.ndarray]:
    """All lower-triangular Hermite normal form integer matrices with determinant ``det``."""
    for a, c, f in itertools.product(range(1, det + 1), repeat=3):
        if a * c * f != det:
            continue
        # Below-diagonal entries are reduced modulo the diagonal entry of their column.
        for b, d, e in itertools.product(range(a), range(a), range(c)):
            yield np.array([[a, 0, 0], [b, c, 0], [d, e, f]])


def _cubic_rotations() -> list[np.ndarray]:
    """The 48 operations of the cubic point group m-3m: signed permutation matrices."""
    rotations = []
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            rotation = np.zeros((3, 3), dtype=int)
            rotation[range(3), order] = signs
            rotations.append(rotation)
    return rotations


def same_superlattice(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether the supercells ``first @ A`` and ``second @ A`` of the primitive cell span the
    same lattice up to a cubic point-group operation (the same supercell shape)."""
    inverse = np.linalg.inv(second)
    for rotation in _cubic_rotations():
        # the rows A Rᵀ of the turned primitive cell are M A with M integer
        m = _PRIMITIVE_VECTORS @ rotation.T @ np.linalg.inv(_PRIMITIVE_VECTORS)
        change = first @ m @ inverse  # integer and unimodular iff the lattices coincide
        if np.allclose(change, np.rint(change), atol=1e-9):
            return True
    return False


def distinct_supercells(det: int) -> list[np.ndarray]:
    """One Hermite normal form per supercell shape with ``det`` formula units: the
    superlattices of the fcc lattice of that index up to the cubic point group."""
    shapes: list[np.ndarray] = []
    for matrix in hermite_normal_forms(det):
        if not any(same_superlattice(matrix, shape) for shape in shapes):
            shapes.append(matrix)
    return shapes


def metal_site_indices(atoms: Atoms, a: float) -> np.ndarray:
    """Integer fcc coordinates ``u = 2 r / a`` of the metal sites of a rocksalt cell."""
    metals = np.array([s != "O" for s in atoms.get_chemical_symbols()])
    return np.rint(2.0 * atoms.positions[metals] / a).astype(int)


def _fcc_sites_in_block(size: int = 8) -> np.ndarray:
    """Integer coordinates ``u`` of all fcc sites with ``0 <= u < size``."""
    grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid[grid.sum(axis=1) % 2 == 0]


def ordering_fits_cell(ordering: str, matrix: np.ndarray) -> bool:
    """Whether ``ordering`` is periodic in the supercell ``matrix @ A`` of the primitive cell.

    Every named ordering repeats within a block of 4 x 4 x 4 conventional cells, so checking
    the lattice translations on all sites of that block decides periodicity everywhere.
    """
    sign = ORDERINGS[ordering]
    lattice_u = np.rint(2.0 * np.asarray(matrix) @ _PRIMITIVE_VECTORS).astype(int)
    sites = _fcc_sites_in_block()
    reference = sign(sites)
    return all(np.array_equal(sign(sites + shift), reference) for shift in lattice_u)


def _metal_signs(atoms: Atoms, a: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer coordinates ``u`` of the metal sites, their moment signs, and the cell's lattice
    vectors in the same integer units (rows)."""
    metals = np.array([s != "O" for s in atoms.get_chemical_symbols()])
    signs = np.sign(atoms.get_initial_magnetic_moments()[metals]).astype(int)
    lattice = np.rint(2.0 * atoms.cell.array / a).astype(int)
    return metal_site_indices(atoms, a), signs, lattice


def _site_lookup(sites: np.ndarray, lattice: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A map from integer coordinates to the index of the site they are an image of."""
    inverse = np.linalg.inv(lattice)

    def key(points: np.ndarray) -> list[tuple[int, ...]]:
        frac = points @ inverse
        return [tuple(np.rint(1e6 * (f - np.floor(f + 1e-9))).astype(int)) for f in frac]

    index = {k: i for i, k in enumerate(key(sites))}
    return lambda points: np.array([index[k] for k in key(points)])


def has_smaller_period(atoms: Atoms, a: float) -> bool:
    """Whether the ordering of a rocksalt supercell repeats under a lattice translation of the
    fcc lattice that is not one of the supercell's: then a smaller cell holds it. ``atoms``:
    ideal, in the cubic frame, lattice constant ``a`` (Å), as :func:`rocksalt_ordered` builds."""
    sites, signs, lattice = _metal_signs(atoms, a)
    lookup = _site_lookup(sites, lattice)
    shifts = sites[1:] - sites[0]  # one translation per site other than the first
    return any(np.array_equal(signs[lookup(sites + shift)], signs) for shift in shifts)


def named_ordering(atoms: Atoms, a: float) -> str | None:
    """The name in :data:`ORDERINGS` of the ordering of a rocksalt supercell, if it is one of
    them up to a cubic rotation, a translation and the global flip; else None. ``atoms``:
    ideal, in the cubic frame, lattice constant ``a`` (Å), as :func:`rocksalt_ordered` builds."""
    sites, signs, lattice = _metal_signs(atoms, a)
    shifts = _fcc_sites_in_block(4)  # every named ordering repeats within 4 in u
    for name, sign in ORDERINGS.items():
        for rotation in _cubic_rotations():
            turned = sites @ rotation.T
            steps = lattice @ rotation.T
            for shift in shifts:
                values = sign(turned + shift)
                fits = all(np.array_equal(sign(turned + shift + s), values) for s in steps)
                if fits and (np.array_equal(values, signs) or np.array_equal(values, -signs)):
                    return name
    return None


def minimal_magnetic_cell(ordering: str, max_det: int = 8) -> np.ndarray:
    """The most compact smallest supercell matrix of the primitive cell that holds ``ordering``."""
    if ordering not in ORDERINGS:
        raise ValueError(f"unknown ordering {ordering!r}; known: {', '.join(ORDERINGS)}")
    for det in range(1, max_det + 1):
        fits = [m for m in hermite_normal_forms(det) if ordering_fits_cell(ordering, m)]
        if fits:
            return min(fits, key=lambda m: np.linalg.norm(m @ _PRIMITIVE_VECTORS, axis=1).sum())
    raise ValueError(f"{ordering} does not fit any supercell with up to {max_det} formula units")


def rocksalt_ordered(
    formula: str,
    ordering: str | np.ndarray,
    matrix: np.ndarray | None = None,
    a: float | None = None,
    magnitudes: dict[str, float] | None = None,
) -> Atoms:
    """A rocksalt supercell with ``initial_magmoms`` set to a collinear ordering.

    Args:
        formula: ``'MnO'``, ``'FeO'``, ``'CoO'`` or ``'NiO'``.
        ordering: a name from :data:`ORDERINGS`, or explicit signs (+1/-1), one per metal.
        matrix: supercell matrix of the primitive cell; default: the ordering's minimal cell.
        a: cubic lattice constant (Å); default :data:`ROCKSALT_LATTICE_CONSTANTS`.
        magnitudes: moment magnitude (μB) per element; default :data:`DEFAULT_MOMENT_MAGNITUDES`.

    Returns:
        ``Atoms`` (metal, O, metal, O, ...) with ``initial_magmoms`` (μB) set, O at zero, in
        a Minkowski-reduced cell of the supercell, in the cubic Cartesian frame.
    """
    rocksalt_formula_metal(formula)
    a = ROCKSALT_LATTICE_CONSTANTS[formula] if a is None else a
    if matrix is None:
        if not isinstance(ordering, str):
            raise ValueError("give a supercell matrix with explicit signs")
        matrix = minimal_magnetic_cell(ordering)
    matrix = np.asarray(matrix)
    atoms = make_supercell(rocksalt_primitive(formula, a), matrix)
    n_metals = len(atoms) // 2
    if isinstance(ordering, str):
        if not ordering_fits_cell(ordering, matrix):
            raise ValueError(f"{ordering} is not periodic in the supercell {matrix.tolist()}")
        signs = ORDERINGS[ordering](metal_site_indices(atoms, a))
    else:
        signs = np.asarray(ordering, dtype=int)
        if signs.shape != (n_metals,) or not np.all(np.abs(signs) == 1):
            raise ValueError(f"explicit ordering needs {n_metals} signs of +1/-1, got {signs}")
    magnitudes = {**DEFAULT_MOMENT_MAGNITUDES, **(magnitudes or {})}
    moments = np.zeros(len(atoms))
    metal_mask = np.array([s != "O" for s in atoms.get_chemical_symbols()])
    moments[metal_mask] = signs * np.array(
        [magnitudes[s] for s in np.array(atoms.get_chemical_symbols())[metal_mask]]
    )
    atoms.set_initial_magnetic_moments(moments)
    # A compact cell of the same lattice in the same Cartesian (cubic) frame: strains given
    # in the cubic frame stay meaningful, and spglib handles it (it fails on skewed cells).
    reduced, _ = minkowski_reduce(atoms.cell.array)
    atoms.set_cell(reduced, scale_atoms=False)
    atoms.wrap()
    return atoms
