"""Heisenberg exchange constants from energies of collinear orderings, on any lattice.

Convention (PHYSICS.md): ``E = E0 + Σ_<ij> J_ij S_i·S_j`` over pairs counted once, ``J > 0``
antiferromagnetic. For collinear states ``S_i·S_j = |S_i||S_j| s_i s_j`` with signs
``s = ±1``, so the energy per magnetic ion is ``E0 + Σ_k J_k |S|² n_k`` with
``n_k = (1/N) Σ_{<ij> ∈ shell k} s_i s_j``, N the number of magnetic ions. A shell is one
orbit of pairs of magnetic sites under the space group of the crystal (moment signs ignored,
magnitudes kept): pairs at one distance that no symmetry relates are distinct shells. We fit
and report ``J_k |S|²`` (for a shell joining sites of different moments, ``J_k |S_i||S_j|``),
which needs no choice of S. On the rocksalt fcc sublattice: FM ``n = (6, 3)``, AFM-I
``(-2, 3)``, AFM-II ``(0, -3)``, AFM-III ``(-2, 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from spinmultinet_ase.data.graph import require_periodic
from spinmultinet_ase.magnetism.sites import magnetic_sites, site_types
from spinmultinet_ase.magnetism.spacegroup import symmetry_dataset, symmetry_operations

# Pair vectors (Å) closer than this are the same pair; distances closer than this one shell.
PAIR_TOLERANCE = 1e-3
# Fits whose scaled design matrix has a larger condition number are flagged as ill-conditioned.
ILL_CONDITIONED = 1e3
# Shells are looked for out to this distance (Å).
MAX_RADIUS = 30.0


@dataclass(frozen=True)
class Shell:
    """One symmetry class of pairs of magnetic sites."""

    distance: float  # Å
    symbols: tuple[str, str]  # elements at the two ends
    moments: tuple[float, float]  # moment magnitudes (μB) at the two ends
    coordination: float  # partners in this shell per magnetic ion (averaged over sites)

    def signature(self) -> tuple:
        """What identifies the shell in any cell of the crystal."""
        return (
            round(self.distance / PAIR_TOLERANCE),
            tuple(sorted(zip(self.symbols, self.moments, strict=True))),
            round(self.coordination, 6),
        )


@dataclass
class _PairOrbits:
    """Directed pairs ``i -> j`` (vector ``d``) of magnetic sites and their orbits."""

    magnetic: Atoms
    i: np.ndarray
    j: np.ndarray
    d: np.ndarray
    orbit: np.ndarray  # per pair: index into shells, in order of distance
    shells: list[Shell]


@dataclass
class ExchangeShells:
    """The shells of magnetic neighbours of a crystal, and the pair counts of orderings.

    Build it with :func:`exchange_shells` from a cell of the crystal; :meth:`counts` then
    takes any cell of the same ideal crystal (any orientation and origin) whose initial
    moments give an ordering, and finds its shells by distance, end sites and coordination.
    """

    shells: list[Shell]
    cell: np.ndarray  # (3, 3) the reference cell (Å), lattice vectors as rows
    positions: np.ndarray  # (n, 3) Cartesian positions of its magnetic sites
    vectors: list[np.ndarray] = field(repr=False)  # per site: (m, 3) pair vectors (Å)
    labels: list[np.ndarray] = field(repr=False)  # per site: (m,) shell index of each pair
    symprec: float = 1e-4
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def cutoff(self) -> float:
        """The largest shell distance (Å)."""
        return max(s.distance for s in self.shells)

    def _labelled_pairs(self, atoms: Atoms, sites: np.ndarray) -> tuple[np.ndarray, ...]:
        """Pairs of ``atoms`` in the shells: (i, j, shell), i and j indexing ``sites``."""
        key = (
            atoms.cell.array.tobytes(),
            atoms.positions.tobytes(),
            tuple(site_types(atoms)),
            sites.tobytes(),
        )
        if key not in self._cache:
            orbits = _pair_orbits(atoms, sites, self.cutoff + PAIR_TOLERANCE, self.symprec)
            wanted = {s.signature(): k for k, s in enumerate(self.shells)}
            found = [s.signature() for s in orbits.shells]
            missing = [k + 1 for k, s in enumerate(self.shells) if s.signature() not in found]
            if missing or len(set(found)) < len(found):
                raise ValueError(
                    f"{atoms.get_chemical_formula()}: shell(s) "
                    f"{', '.join(map(str, missing)) or '(ambiguous)'} of the reference crystal "
                    "not found; orderings must be ideal cells of the same crystal"
                )
            label = np.array([wanted.get(sig, -1) for sig in found])[orbits.orbit]
            keep = label >= 0
            self._cache[key] = (orbits.i[keep], orbits.j[keep], label[keep])
        return self._cache[key]

    def counts(self, atoms: Atoms, sites: Sequence[int] | None = None) -> np.ndarray:
        """``n_k`` per magnetic ion for each shell, from the signs of ``initial_magmoms``."""
        sites = magnetic_sites(atoms, sites)
        signs = np.sign(atoms.get_initial_magnetic_moments()[sites])
        i, j, label = self._labelled_pairs(atoms, sites)
        counts = np.zeros(len(self.shells))
        np.add.at(counts, label, signs[i] * signs[j])
        return 0.5 * counts / len(sites)


def space_group_generators(atoms: Atoms, symprec: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Operations that generate the crystal's space group, Cartesian: ``r -> r @ R.T + t``.

    Sites are typed by element and moment size (signs ignored). The operations are those of
    the primitive cell, and the translations of the primitive lattice within the cell given,
    so a supercell keeps the point symmetry its own lattice breaks.

    Returns:
        Rotations (n, 3, 3) and translations (n, 3) in Å.
    """
    types = np.array(site_types(atoms))
    cell = (atoms.cell.array, atoms.get_scaled_positions(), types)
    formula = atoms.get_chemical_formula()
    dataset = symmetry_dataset(cell, formula, symprec)
    lattice = np.asarray(dataset.primitive_lattice)
    _, first = np.unique(dataset.mapping_to_primitive, return_index=True)
    primitive = (lattice, atoms.positions[first] @ np.linalg.inv(lattice), types[first])
    symmetry = symmetry_operations(primitive, formula, symprec)
    inverse = np.linalg.inv(lattice)
    rotations = np.array([lattice.T @ w @ inverse.T for w in symmetry["rotations"]])
    translations = symmetry["translations"] @ lattice
    # the primitive translations that are not lattice vectors of the cell given
    pure = dataset.translations[np.all(dataset.rotations == np.eye(3, dtype=int), axis=(1, 2))]
    return (
        np.concatenate([rotations, np.repeat(np.eye(3)[None], len(pure), axis=0)]),
        np.concatenate([translations, pure @ atoms.cell.array]),
    )


def _root(parent: list[int], a: int) -> int:
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


def _pair_orbits(atoms: Atoms, sites: np.ndarray, cutoff: float, symprec: float) -> _PairOrbits:
    """Pairs of magnetic sites within ``cutoff`` (Å), grouped into orbits of the space group.

    Two pairs are in one orbit when a space-group operation of the crystal (moment signs
    ignored) maps one onto the other, or when they are the same pair seen from either end;
    joining the pairs each generator relates closes the orbits under the whole group.
    """
    rotations, translations = space_group_generators(atoms, symprec)
    magnetic = atoms[sites]
    magnetic.set_initial_magnetic_moments(np.abs(magnetic.get_initial_magnetic_moments()))
    inverse = np.linalg.inv(atoms.cell.array)
    frac = magnetic.positions @ inverse
    i, j, d = neighbor_list("ijD", magnetic, cutoff)
    by_site = [np.flatnonzero(i == k) for k in range(len(magnetic))]

    def matching_pairs(sources: np.ndarray, target: int, vectors: np.ndarray) -> np.ndarray:
        """Pairs of site ``target`` with the given vectors (the images of pairs ``sources``)."""
        candidates = by_site[target]
        gap = np.linalg.norm(vectors[:, None, :] - d[candidates][None], axis=-1)
        best = np.argmin(gap, axis=1)
        if np.any(gap[np.arange(len(sources)), best] > 10 * (PAIR_TOLERANCE + symprec)):
            raise ValueError("symmetry operations do not map pairs onto pairs; check symprec")
        return candidates[best]

    images = []
    for k in range(len(magnetic)):
        for target in np.unique(j[by_site[k]]):
            sources = by_site[k][j[by_site[k]] == target]
            images.append((sources, matching_pairs(sources, target, -d[sources])))
    for rotation, translation in zip(rotations, translations, strict=True):
        moved = (magnetic.positions @ rotation.T + translation) @ inverse
        delta = moved[:, None, :] - frac[None, :, :]
        delta -= np.rint(delta)
        image = np.argmax(np.all(np.abs(delta) < 10 * symprec, axis=-1), axis=1)
        for k in range(len(magnetic)):
            sources = by_site[k]
            images.append((sources, matching_pairs(sources, image[k], d[sources] @ rotation.T)))
    parent = list(range(len(i)))
    for sources, targets in images:
        for a, b in zip(sources, targets, strict=True):
            ra, rb = _root(parent, int(a)), _root(parent, int(b))
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([_root(parent, a) for a in range(len(i))], dtype=int)
    distances = np.linalg.norm(d, axis=1)
    order = sorted(np.unique(roots), key=lambda r: (round(distances[r] / PAIR_TOLERANCE), r))
    symbols = magnetic.get_chemical_symbols()
    moments = magnetic.get_initial_magnetic_moments()
    shells = [
        Shell(
            distance=float(distances[root]),
            symbols=(symbols[i[root]], symbols[j[root]]),
            moments=(round(float(moments[i[root]]), 3), round(float(moments[j[root]]), 3)),
            coordination=float(np.sum(roots == root) / len(magnetic)),
        )
        for root in order
    ]
    index = {root: k for k, root in enumerate(order)}
    return _PairOrbits(magnetic, i, j, d, np.array([index[r] for r in roots]), shells)


def exchange_shells(
    reference: Atoms,
    num_shells: int,
    sites: Sequence[int] | None = None,
    symprec: float = 1e-4,
) -> ExchangeShells:
    """The first ``num_shells`` shells (pair orbits by distance) of a crystal's magnetic sites.

    Args:
        reference: a cell of the crystal at its ideal geometry; its nonzero initial moments
            (or ``sites``) mark the magnetic sites.
        num_shells: how many shells, nearest first.
        sites: explicit indices of the magnetic sites.
        symprec: spglib tolerance (Å).
    """
    require_periodic(reference, "finding exchange shells")
    if num_shells < 1:
        raise ValueError(f"num_shells must be >= 1, got {num_shells}")
    sites = magnetic_sites(reference, sites)
    magnetic = reference[sites]
    # out to a radius holding num_shells distinct distances (each one shell or more)
    radius = 3.0
    while True:
        if radius > MAX_RADIUS:
            raise ValueError(
                f"fewer than {num_shells} shells of magnetic neighbours within {MAX_RADIUS} Å"
            )
        distances = np.linalg.norm(neighbor_list("D", magnetic, radius), axis=1)
        distinct = np.unique(np.round(distances / PAIR_TOLERANCE))
        if len(distinct) > num_shells:
            break
        radius *= 1.3
    orbits = _pair_orbits(reference, sites, (distinct[num_shells] - 0.5) * PAIR_TOLERANCE, symprec)
    keep = orbits.orbit < num_shells
    i, d, labels = orbits.i[keep], orbits.d[keep], orbits.orbit[keep]
    return ExchangeShells(
        shells=orbits.shells[:num_shells],
        cell=reference.cell.array.copy(),
        positions=magnetic.positions.copy(),
        vectors=[d[i == k] for k in range(len(magnetic))],
        labels=[labels[i == k] for k in range(len(magnetic))],
        symprec=symprec,
    )


@dataclass
class ExchangeFit:
    """Least-squares Heisenberg fit of energies per magnetic ion; energies and exchange
    constants in the unit of the energies given (eV or meV)."""

    E0: float
    JS2: list[float | None]  # J_k |S|² per shell; None where the orderings cannot tell
    rms_residual: float  # rms departure of the energies from the fitted model (per ion)
    condition: float  # condition number of the column-scaled design matrix
    degrees_of_freedom: int  # orderings minus fitted parameters
    warnings: list[str]
    # Per shell left out (numbered from 1): the multiple of its J in each fitted J, by shell
    # (fitted J_k = J_k + Σ_c absorbed[c][k] J_c).
    absorbed: dict[int, dict[int, float]] = field(default_factory=dict)

    def fitted_as(self, shell: int) -> str:
        """What the fitted J of ``shell`` (numbered from 1) stands for, e.g. ``'J1 + 3·J3'``."""
        return _fitted_as(shell, self.absorbed)


def _fitted_as(shell: int, absorbed: dict[int, dict[int, float]]) -> str:
    terms = [f"J{shell}"]
    for left_out, multiples in sorted(absorbed.items()):
        multiple = multiples.get(shell, 0.0)
        if multiple:
            factor = "" if abs(multiple) == 1 else f"{abs(multiple):g}·"
            terms.append(f"{'−' if multiple < 0 else '+'} {factor}J{left_out}")
    return " ".join(terms)


def fit_exchange(
    shells: ExchangeShells,
    structures: Sequence[Atoms],
    energies_per_ion: Sequence[float],
) -> ExchangeFit:
    """Least-squares ``E0`` and ``J_k |S|²`` from energies per magnetic ion, in the unit of
    the energies given.

    ``structures`` are ideal (undistorted) cells of the crystal of ``shells`` with
    ``initial_magmoms`` giving the ordering. Shells that the orderings cannot separate from
    nearer ones (pair counts a combination of theirs) are left out of the fit; their exchange
    is absorbed in the fitted J of those shells (:attr:`ExchangeFit.absorbed`), with a
    warning that says how.
    """
    if len(structures) != len(energies_per_ion):
        raise ValueError("one energy per structure")
    counts = np.array([shells.counts(a) for a in structures])
    design = np.hstack([np.ones((len(structures), 1)), counts])
    energies = np.asarray(energies_per_ion, dtype=float)
    kept = [0]
    for column in range(1, design.shape[1]):
        if np.linalg.matrix_rank(design[:, kept + [column]], tol=1e-8) == len(kept) + 1:
            kept.append(column)
    warnings = []
    dropped = [c for c in range(1, design.shape[1]) if c not in kept]
    if len(kept) == 1:
        raise ValueError(
            f"{len(structures)} orderings cannot determine any exchange constant: their pair "
            "counts are all the same; add orderings that differ in their neighbour counts"
        )
    sub = design[:, kept]
    absorbed = {}
    for column in dropped:  # design[:, column] = sub @ multiples, exactly (same rank)
        multiples = np.linalg.lstsq(sub, design[:, column], rcond=None)[0]
        absorbed[column] = {
            shell: round(float(m), 6)
            for shell, m in zip(kept[1:], multiples[1:], strict=True)
            if abs(m) > 1e-6
        }
    if dropped:
        combined = {k: _fitted_as(k, absorbed) for k in kept[1:]}
        fitted = [f"J{k} = {c}" for k, c in combined.items() if c != f"J{k}"]
        warnings.append(
            f"the {len(structures)} orderings cannot determine shell(s) "
            f"{', '.join(str(c) for c in dropped)} (pair counts dependent on nearer shells): "
            "left out of the fit, their exchange absorbed in "
            + (f"the fitted {', '.join(fitted)}" if fitted else "E0")
            + "; add orderings or a larger supercell"
        )
    scale = np.linalg.norm(sub, axis=0)
    condition = float(np.linalg.cond(sub / scale))
    solution, *_ = np.linalg.lstsq(sub, energies, rcond=None)
    residual = energies - sub @ solution
    dof = len(structures) - len(kept)
    if dof == 0:
        warnings.append("as many parameters as orderings: an exact fit, no residual to judge it")
    if condition > ILL_CONDITIONED:
        warnings.append(f"ill-conditioned fit (condition number {condition:.0f})")
    js2: list[float | None] = [None] * (design.shape[1] - 1)
    for column, value in zip(kept[1:], solution[1:], strict=True):
        js2[column - 1] = float(value)
    return ExchangeFit(
        E0=float(solution[0]),
        JS2=js2,
        rms_residual=float(np.sqrt(np.mean(residual**2))),
        condition=condition,
        degrees_of_freedom=dof,
        warnings=warnings,
        absorbed=absorbed,
    )
