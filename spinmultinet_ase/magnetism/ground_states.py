"""The experimentally observed magnetic ground states of the built-in materials, by name.

Neutron diffraction: the rocksalt monoxides order AFM-II (ferromagnetic (111) planes
alternating along [111]); Cr2O3 orders + − + − and α-Fe2O3 + − − + along the 3-fold axis of
the corundum cell. Each is named as the workflows name orderings of the material: a rocksalt
name, or the up/down pattern of the four metals of the 10-atom corundum cell
(:mod:`spinmultinet_ase.magnetism.corundum`).
"""

from __future__ import annotations

from spinmultinet_ase.magnetism.corundum import CORUNDUM_PARAMETERS
from spinmultinet_ase.magnetism.rocksalt import ROCKSALT_LATTICE_CONSTANTS

OBSERVED_GROUND_STATES: dict[str, str] = {
    **{formula: "AFM-II" for formula in ROCKSALT_LATTICE_CONSTANTS},
    **{formula: p.ground_state for formula, p in CORUNDUM_PARAMETERS.items()},
}
