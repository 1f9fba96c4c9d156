"""Every field name the package passes around, with its shape and unit.

The model takes and returns plain ``Dict[str, Tensor]`` keyed by these names (N atoms, E edges,
B structures in a batch).
"""

from typing import Final

# ---- inputs -------------------------------------------------------------------------------
POSITIONS: Final[str] = "positions"  # (N, 3) Å, Cartesian
SPECIES: Final[str] = "species"  # (N,) int64, index into the model's species list
CELL: Final[str] = "cell"  # (B, 3, 3) Å, lattice vectors as rows (zeros if not periodic)
PBC: Final[str] = "pbc"  # (B, 3) bool
BATCH: Final[str] = "batch"  # (N,) int64, structure index of each atom
EDGE_INDEX: Final[str] = "edge_index"  # (2, E) int64, [centre i, neighbour j]
EDGE_CELL_SHIFT: Final[str] = "edge_cell_shift"  # (E, 3) integer lattice shifts, as float
INITIAL_MAGMOMS: Final[str] = "initial_magmoms"  # (N,) collinear or (N, 3) non-collinear, μB
# (N,) bool, optional: only these atoms' energies enter ENERGY and hence forces, stress and
# magnetic forces (all True if absent). LAMMPS sets it True on its own atoms, False on ghosts.
ENERGY_MASK: Final[str] = "energy_mask"

# ---- outputs ------------------------------------------------------------------------------
ENERGY: Final[str] = "energy"  # (B,) eV
ENERGIES: Final[str] = "energies"  # (N,) eV, per-atom energies
FORCES: Final[str] = "forces"  # (N, 3) eV/Å, -dE/dR
STRESS: Final[str] = "stress"  # (B, 3, 3) eV/Å³, (1/V) dE/dε, ASE sign (zero if V = 0)
MAGMOMS: Final[str] = "magmoms"  # (N,) or (N, 3) μB, predicted moments, time-odd
MAGNETIC_FORCES: Final[str] = "magnetic_forces"  # like INITIAL_MAGMOMS, eV/μB, -dE/dm
SPIN_LATENTS: Final[str] = "spin_latents"  # (N, C) or (N, C, 3), time-odd latent features
# Every output of the model, in the order a model file's metadata lists them (and an
# AOTInductor package returns them).
OUTPUTS: Final[tuple[str, ...]] = (
    ENERGY,
    ENERGIES,
    FORCES,
    STRESS,
    MAGMOMS,
    MAGNETIC_FORCES,
    SPIN_LATENTS,
)

# ---- training targets (read from extxyz) --------------------------------------------------
TARGET_MAGMOMS: Final[str] = "target_magmoms"  # like INITIAL_MAGMOMS, μB, converged DFT moments
TARGET_ENERGY: Final[str] = "target_energy"  # (B,) eV, DFT total energy
TARGET_FORCES: Final[str] = "target_forces"  # (N, 3) eV/Å
TARGET_STRESS: Final[str] = "target_stress"  # (B, 3, 3) eV/Å³, ASE sign
HAS_STRESS: Final[str] = "has_stress"  # (B,) bool, whether the structure has a stress label
NUM_ATOMS: Final[str] = "num_atoms"  # (B,) int64
# (B,) int64, shared by the frames of one geometry in different spin orderings (info partner_of)
PARTNER_GROUP: Final[str] = "partner_group"
