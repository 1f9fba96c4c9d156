"""Structures to label: rocksalt oxides in several cells, orderings, strains and rattles, and
the reference structures of all materials (corundum ones from ``dft/corundum_structures.py``).

Each frame carries ``initial_magmoms`` set as a user would guess them (the nominal magnitude
off by up to ±40 %, the sign from the ordering) and ``info`` describing how it was made.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from spinmultinet_ase.dft.corundum_structures import (
    corundum_held_out,
    corundum_partners,
    corundum_pool,
    corundum_yardsticks,
)
from spinmultinet_ase.dft.distortions import (
    Distortion,
    distort,
    ordering_partner,
    pool_frame,
    random_shear,
    random_signs,
    tag,
)
from spinmultinet_ase.magnetism.corundum import CORUNDUM_PARAMETERS
from spinmultinet_ase.magnetism.rocksalt import (
    ROCKSALT_LATTICE_CONSTANTS,
    minimal_magnetic_cell,
    ordering_fits_cell,
    rocksalt_ordered,
)

# Named cells: supercell matrices of the 2-atom primitive cell.
CELLS: dict[str, np.ndarray] = {
    "prim-2": np.eye(3, dtype=int),
    "afm2-4": minimal_magnetic_cell("AFM-II"),
    "afm1-4": minimal_magnetic_cell("AFM-I"),
    "cubic-8": np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]]),
    "afm3-8": minimal_magnetic_cell("AFM-III"),
    "prim222-16": 2 * np.eye(3, dtype=int),
}

RANDOM = "random"

# (cell, ordering, frames per material) of the training pool; "random" draws a sign per metal.
# Mostly 2- and 4-atom cells: a 4-atom frame costs ~2-4 CPU-minutes of DFT here, an 8-atom one
# twice that and a 16-atom one ~5 times; the few larger cells carry the AFM-III and random
# orderings the test split holds out.
POOL_RECIPE: tuple[tuple[str, str, int], ...] = (
    ("afm2-4", "FM", 48),
    ("afm2-4", "AFM-II", 80),
    ("afm1-4", "FM", 20),
    ("afm1-4", "AFM-I", 45),
    ("prim-2", "FM", 45),
    ("cubic-8", "FM", 6),
    ("cubic-8", "AFM-I", 8),
    ("cubic-8", RANDOM, 16),
    ("afm3-8", "AFM-III", 12),
    ("afm3-8", RANDOM, 6),
    ("prim222-16", "AFM-II", 3),
    ("prim222-16", RANDOM, 3),
)

# Ordering partners: (cell, ordering of the source frames, ordering of their partners, sources
# per material). A partner is a pool frame relabelled with another ordering at the very same
# geometry, so the pair's energy difference is purely magnetic: the quantity ordering energies
# and exchange constants are made of, free of the elastic energy of the frame's distortion.
PARTNER_RECIPE: tuple[tuple[str, str, str, int], ...] = (
    ("afm2-4", "FM", "AFM-II", 12),
    ("afm2-4", "AFM-II", "FM", 12),
    ("afm1-4", "FM", "AFM-I", 8),
    ("afm1-4", "AFM-I", "FM", 8),
)

# What the default split (``DataConfig``) holds out of training whole: an ordering and a cell the
# model is tested on unseen. Labelled after everything else, as they teach the model nothing and
# a 16-atom frame costs as much DFT time as about 18 4-atom ones.
HELD_OUT_ORDERINGS: tuple[str, ...] = ("AFM-III",)
# ``conv112-16``, the 1x1x2 conventional cell, is the held-out shape of the ordering pool
# (``dft/ordering_structures.py``).
HELD_OUT_CELLS: tuple[str, ...] = ("prim222-16", "conv112-16")

RHOMBOHEDRAL_STRAINS = (-0.03, -0.02, -0.01, 0.0, 0.01, 0.02, 0.03)
# An extended E(δ) series stays below this [111] strain (about 4° off the cubic angle).
MAX_RHOMBOHEDRAL_STRAIN = 0.1


def yardstick_structures(material: str) -> list[Atoms]:
    """Undistorted cells for the DFT yardsticks of ``material``.

    FM, AFM-I and AFM-II at the reference lattice constant (FM in both 4-atom cells, which
    measures how well energies agree across cells), and FM and AFM-II under the rhombohedral
    strains :data:`RHOMBOHEDRAL_STRAINS` in the AFM-II cell. Moments are the nominal guesses.
    """
    cases = [("afm1-4", "AFM-I", 0.0), ("afm1-4", "FM", 0.0)]
    return _yardstick_cells(material, cases) + rhombohedral_series(material, RHOMBOHEDRAL_STRAINS)


def rhombohedral_series(material: str, strains: Sequence[float]) -> list[Atoms]:
    """FM and AFM-II yardstick cells (the 4-atom AFM-II cell) of ``material`` under each
    rhombohedral strain of ``strains``: :func:`yardstick_structures`' E(δ) series, or its
    extension where DFT's minimum lies beyond :data:`RHOMBOHEDRAL_STRAINS`."""
    return _yardstick_cells(material, [("afm2-4", o, d) for d in strains for o in ("FM", "AFM-II")])


def extension_strains(strains: Sequence[float]) -> list[float]:
    """``strains`` sorted, checked as an extension of :data:`RHOMBOHEDRAL_STRAINS`.

    Raises:
        ValueError: a strain not finite, of magnitude ``MAX_RHOMBOHEDRAL_STRAIN`` or more,
            repeated, or already in the reference series (its frame's id would repeat).
    """
    for delta in strains:
        if not np.isfinite(delta) or abs(delta) >= MAX_RHOMBOHEDRAL_STRAIN:
            raise ValueError(
                f"--rhombohedral-strains: {delta} is not a [111] strain below "
                f"{MAX_RHOMBOHEDRAL_STRAIN} in magnitude"
            )
    ids = [f"{delta:+.3f}" for delta in strains]
    taken = {f"{delta:+.3f}" for delta in RHOMBOHEDRAL_STRAINS} | {"-0.000"}
    if len(set(ids)) < len(ids):
        raise ValueError("--rhombohedral-strains: a strain is given twice (to 3 decimals)")
    if taken & set(ids):
        raise ValueError(
            f"--rhombohedral-strains: give new strains (to 3 decimals), none of the reference "
            f"series {', '.join(sorted(taken - {'-0.000'}))}"
        )
    return sorted(strains)


def rocksalt_names(materials: Sequence[str], what: str) -> list[str]:
    """``materials`` if every one is a rocksalt formula of ``ROCKSALT_LATTICE_CONSTANTS``;
    ``what`` (the option or recipe building them) names the refusal.

    Raises:
        ValueError: one is not.
    """
    unknown = [m for m in materials if m not in ROCKSALT_LATTICE_CONSTANTS]
    if unknown:
        known = ", ".join(sorted(ROCKSALT_LATTICE_CONSTANTS))
        raise ValueError(f"{what} builds rocksalt cells ({known}), not {', '.join(unknown)}")
    return list(materials)


def _yardstick_cells(material: str, cases: Sequence[tuple[str, str, float]]) -> list[Atoms]:
    """One ideal yardstick frame per (cell, ordering, rhombohedral strain) of ``cases``."""
    frames = []
    rng = np.random.default_rng(0)  # unused: ideal cells are not rattled
    for cell, ordering, delta in cases:
        distortion = Distortion(rhombohedral_strain=delta)
        atoms = distort(rocksalt_ordered(material, ordering, CELLS[cell]), distortion, rng)
        sid = f"{material}-yardstick-{cell}-{ordering}-rh{delta:+.3f}"
        frames.append(tag(atoms, sid, material, cell, ordering, distortion))
        frames[-1].info["yardstick"] = True
    return frames


def random_distortion(rng: np.random.Generator) -> Distortion:
    """A random volume strain (±5 %), often a shear or [111] strain, usually a rattle."""
    shear = random_shear(rng) if rng.random() < 0.5 else Distortion().shear
    return Distortion(
        volume_strain=float(rng.uniform(-0.05, 0.05)),
        rhombohedral_strain=float(rng.uniform(-0.03, 0.03)) if rng.random() < 0.4 else 0.0,
        shear=shear,
        rattle_angstrom=float(rng.uniform(0.02, 0.15)) if rng.random() < 0.85 else 0.0,
    )


def training_pool(material: str, seed: int = 0) -> list[Atoms]:
    """The training pool of ``material`` following :data:`POOL_RECIPE`, in recipe order."""
    rng = np.random.default_rng([seed, sum(map(ord, material))])
    frames = []
    for cell, ordering, count in POOL_RECIPE:
        matrix = CELLS[cell]
        for index in range(count):
            if ordering == RANDOM:
                n_metals = int(round(abs(np.linalg.det(matrix))))
                ideal = rocksalt_ordered(material, random_signs(rng, n_metals), matrix)
            else:
                assert ordering_fits_cell(ordering, matrix), (cell, ordering)
                ideal = rocksalt_ordered(material, ordering, matrix)
            sid = f"{material}-{cell}-{ordering}-{index:03d}"
            frames.append(
                pool_frame(ideal, random_distortion(rng), rng, sid, material, cell, ordering)
            )
    return frames


def ordering_partners(material: str, pool: list[Atoms], seed: int = 0) -> dict[str, list[Atoms]]:
    """Partners of the first frames of each :data:`PARTNER_RECIPE` group, by source id.

    ``pool`` is :func:`training_pool` of ``material`` (recipe order). A partner keeps its
    source's cell and positions and gets the ideal moments of its own ordering (in the same
    atom order, as both come from the same supercell) with a fresh imperfect guess
    (:func:`~spinmultinet_ase.dft.distortions.ordering_partner`).
    """
    rng = np.random.default_rng([seed, sum(map(ord, material)), 1])
    partners: dict[str, list[Atoms]] = {}
    for cell, source_ordering, ordering, count in PARTNER_RECIPE:
        sources = [
            a for a in pool if a.info["cell_name"] == cell and a.info["ordering"] == source_ordering
        ]
        for source in sources[:count]:
            moments = rocksalt_ordered(
                material, ordering, CELLS[cell]
            ).get_initial_magnetic_moments()
            partner = ordering_partner(source, moments, ordering, rng)
            partners.setdefault(source.info["structure_id"], []).append(partner)
    return partners


def reference_structures(materials: tuple[str, ...] = ("MnO", "NiO"), seed: int = 0) -> list[Atoms]:
    """Yardsticks first, then the training pools of all materials interleaved in random order,
    each source's ordering partners right after it, and last the frames held out of training
    whole (:data:`HELD_OUT_ORDERINGS` and :data:`HELD_OUT_CELLS` in the same order, then the
    corundum held-out shapes,
    :func:`~spinmultinet_ase.dft.corundum_structures.corundum_held_out`).

    Rocksalt materials follow this module's recipes, corundum ones
    ``spinmultinet_ase/dft/corundum_structures.py``. Labelling in this order means that
    wherever the labelling stops, what is done is balanced across materials, cells and
    orderings, and DFT time went to trainable frames first.
    """
    yardsticks, pools, partners, held_out_shapes = [], {}, {}, []
    for material in materials:
        if material in ROCKSALT_LATTICE_CONSTANTS:
            recipes = (yardstick_structures, training_pool, ordering_partners)
        elif material in CORUNDUM_PARAMETERS:
            recipes = (corundum_yardsticks, corundum_pool, corundum_partners)
            held_out_shapes += corundum_held_out(material, seed)
        else:
            known = ", ".join(sorted([*ROCKSALT_LATTICE_CONSTANTS, *CORUNDUM_PARAMETERS]))
            raise ValueError(f"no reference structures for {material!r}; known: {known}")
        yardsticks += recipes[0](material)
        pools[material] = recipes[1](material, seed)
        partners.update(recipes[2](material, pools[material], seed))
    pool = [a for m in materials for a in pools[m]]
    interleaved = []
    for index in np.random.default_rng(seed).permutation(len(pool)):
        interleaved.append(pool[index])
        interleaved += partners.get(pool[index].info["structure_id"], [])
    held_out = [a for a in interleaved if _held_out(a)]
    return yardsticks + [a for a in interleaved if not _held_out(a)] + held_out + held_out_shapes


def _held_out(atoms: Atoms) -> bool:
    """Whether the default split keeps this pool frame out of training whole."""
    return atoms.info["ordering"] in HELD_OUT_ORDERINGS or atoms.info["cell_name"] in HELD_OUT_CELLS
