"""Structures to label for corundum sesquioxides (Cr2O3, α-Fe2O3): orderings, strains, rattles.

Every ordering comes from the symmetry-aware enumerator
(:func:`~spinmultinet_ase.magnetism.orderings.enumerate_collinear_orderings`), named by its
up/down string of the metal sites in index order; in the 10-atom cell that string reads along
the 3-fold axis (``'udud'`` is + − + −, Cr2O3's ground state; ``'uddu'`` is + − − +,
α-Fe2O3's). The 10-atom cell holds five classes: the four of the literature (++++, +−+−, +−−+,
++−−) and the ferrimagnetic +++−. Supercells add orderings the 10-atom cell cannot hold; one
supercell shape, :data:`CORUNDUM_HELD_OUT_CELLS`, is kept out of training whole to measure the
error on unseen orderings in an unseen cell.

Each frame carries ``initial_magmoms`` as a user would guess them (the trivalent ion's
high-spin moment off by up to ±40 %, the sign from the ordering) and ``info`` describing how it
was made, as the rocksalt frames do (``spinmultinet_ase/dft/structures.py``).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import make_supercell

from spinmultinet_ase.dft.distortions import (
    Distortion,
    ordering_partner,
    pool_frame,
    random_shear,
    random_signs,
    tag,
)
from spinmultinet_ase.magnetism.corundum import CORUNDUM_CELLS, CORUNDUM_PARAMETERS, corundum_cell
from spinmultinet_ase.magnetism.orderings import (
    enumerate_collinear_orderings,
    repeats_with,
    with_pattern,
)
from spinmultinet_ase.magnetism.sites import magnetic_sites

ALL = "all"  # every enumerated ordering of the cell
NEW = "new"  # enumerated orderings the 10-atom cell cannot hold, drawn at random
RANDOM = "random"  # a random sign per metal

# (cell, which orderings, frames per ordering for ALL, else frames in all) per material. Cost
# grows about as atoms^1.5 at a fixed k-point density (``dft/label.py``): a rattled 10-atom
# frame is one unit, a 20-atom frame about 2.8, a 30-atom one about 5.2.
POOL_RECIPE: tuple[tuple[str, str, int], ...] = (
    ("rh-10", ALL, 5),
    ("rh211-20", NEW, 6),
    ("rh2x-20", NEW, 4),
    ("hex-30", RANDOM, 2),
)

# Ordering partners: of the first frame of each ordering of the 10-atom cell, the same
# geometry in every other ordering of that cell (pure magnetic energy differences).
PARTNER_SOURCES_PER_ORDERING = 1

# The supercell shape the reference split keeps out of training whole (labelled last): its
# ideal cell with nominal moments (as a scan sets them) in FM, the ground state of the 10-atom
# cell and this many orderings the 10-atom cell cannot hold, drawn at random, all partners of
# the FM frame (one geometry: their energy differences are the unseen-ordering yardstick).
CORUNDUM_HELD_OUT_CELLS: tuple[str, ...] = ("rh110-20",)
HELD_OUT_NEW_ORDERINGS = 6

THREE_FOLD_AXIS = (0.0, 0.0, 1.0)


def corundum_yardsticks(material: str, xray: bool = False) -> list[Atoms]:
    """The ideal 10-atom cell in each enumerated ordering, nominal moments: the ordering
    energies of the undistorted crystal (at the X-ray volume with ``xray``, see
    :func:`~spinmultinet_ase.magnetism.corundum.corundum_cell`)."""
    frames = []
    for ordered in enumerate_collinear_orderings(corundum_cell(material, xray=xray)):
        ordering = ordered.info["ordering"]
        sid = f"{material}-yardstick-rh-10-{ordering}"
        frames.append(tag(ordered, sid, material, "rh-10", ordering, Distortion()))
        frames[-1].info["yardstick"] = True
    return frames


def corundum_distortion(rng: np.random.Generator) -> Distortion:
    """A random volume strain (±5 %), often a shear or a strain along the 3-fold axis (±2 %),
    usually a rattle."""
    shear = random_shear(rng) if rng.random() < 0.5 else Distortion().shear
    return Distortion(
        volume_strain=float(rng.uniform(-0.05, 0.05)),
        rhombohedral_strain=float(rng.uniform(-0.02, 0.02)) if rng.random() < 0.5 else 0.0,
        shear=shear,
        rattle_angstrom=float(rng.uniform(0.02, 0.12)) if rng.random() < 0.85 else 0.0,
        axis=THREE_FOLD_AXIS,
    )


def _orderings(
    material: str, cell: str, which: str, count: int, rng: np.random.Generator
) -> list[Atoms]:
    """The ideal orderings of one recipe line, each as often as it is to be distorted."""
    ideal = corundum_cell(material, cell)
    if which == RANDOM:
        n_metals = int(np.count_nonzero(ideal.get_initial_magnetic_moments()))
        patterns = [
            "".join("u" if s > 0 else "d" for s in random_signs(rng, n_metals))
            for _ in range(count)
        ]
        return [with_pattern(ideal, pattern) for pattern in patterns]
    orderings = enumerate_collinear_orderings(ideal)
    if which == ALL:
        return [o for o in orderings for _ in range(count)]
    parent = corundum_cell(material).cell.array
    new = [o for o in orderings if not repeats_with(o, parent)]
    return [new[i] for i in sorted(rng.choice(len(new), size=count, replace=False))]


def corundum_pool(material: str, seed: int = 0) -> list[Atoms]:
    """The training pool of ``material`` following :data:`POOL_RECIPE`, in recipe order."""
    rng = np.random.default_rng([seed, sum(map(ord, material))])
    frames, index = [], {}
    for cell, which, count in POOL_RECIPE:
        for ideal in _orderings(material, cell, which, count, rng):
            ordering = ideal.info["ordering"]
            name = f"{cell}-{ordering}"
            index[name] = index.get(name, -1) + 1
            sid = f"{material}-{name}-{index[name]:03d}"
            frames.append(
                pool_frame(ideal, corundum_distortion(rng), rng, sid, material, cell, ordering)
            )
    return frames


def corundum_held_out(material: str, seed: int = 0) -> list[Atoms]:
    """The frames of the held-out shapes (:data:`CORUNDUM_HELD_OUT_CELLS`), each shape's FM
    frame first and the others its partners (``info['partner_of']``)."""
    rng = np.random.default_rng([seed, sum(map(ord, material)), 3])
    ground_state = with_pattern(corundum_cell(material), CORUNDUM_PARAMETERS[material].ground_state)
    frames = []
    for cell in CORUNDUM_HELD_OUT_CELLS:
        ideal = corundum_cell(material, cell)
        tiled = make_supercell(ground_state, CORUNDUM_CELLS[cell])
        signs = tiled.get_initial_magnetic_moments()[magnetic_sites(tiled)]
        repeated = "".join("u" if sign > 0 else "d" for sign in signs)
        orderings = [
            with_pattern(ideal, "FM"),
            with_pattern(ideal, repeated),
            *_orderings(material, cell, NEW, HELD_OUT_NEW_ORDERINGS, rng),
        ]
        source = f"{material}-{cell}-{orderings[0].info['ordering']}"
        for ordered in orderings:
            ordering = ordered.info["ordering"]
            frame = tag(
                ordered, f"{material}-{cell}-{ordering}", material, cell, ordering, Distortion()
            )
            if frame.info["structure_id"] != source:
                frame.info["partner_of"] = source
            frames.append(frame)
    return frames


def corundum_partners(material: str, pool: list[Atoms], seed: int = 0) -> dict[str, list[Atoms]]:
    """Partners of the first :data:`PARTNER_SOURCES_PER_ORDERING` 10-atom frames of each
    ordering, in every other ordering of the 10-atom cell, by source id.

    ``pool`` is :func:`corundum_pool` of ``material``; a partner keeps its source's cell and
    positions (:func:`~spinmultinet_ase.dft.distortions.ordering_partner`).
    """
    rng = np.random.default_rng([seed, sum(map(ord, material)), 1])
    orderings = {
        o.info["ordering"]: o.get_initial_magnetic_moments()
        for o in enumerate_collinear_orderings(corundum_cell(material))
    }
    partners: dict[str, list[Atoms]] = {}
    for source_ordering in orderings:
        sources = [
            a
            for a in pool
            if a.info["cell_name"] == "rh-10" and a.info["ordering"] == source_ordering
        ]
        for source in sources[:PARTNER_SOURCES_PER_ORDERING]:
            partners[source.info["structure_id"]] = [
                ordering_partner(source, moments, ordering, rng)
                for ordering, moments in orderings.items()
                if ordering != source_ordering
            ]
    return partners
