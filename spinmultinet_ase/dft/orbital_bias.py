"""Orbital bias: one start that puts the minority d electrons of Fe²⁺ and Co²⁺ in chosen orbitals.

High-spin Fe²⁺ (d⁶) and Co²⁺ (d⁷) have one and two minority-spin electrons in the threefold
t2g shell, and DFT+U has several self-consistent states that differ in which t2g orbitals
hold them (``data/studies/feo_coo_states.md``). The AFM-II order of the rocksalt lattice
stacks ferromagnetic (111) planes, so its 3-fold axis n splits t2g into a1g (the orbital
(n·r)² − r²/3, lobes along n) and the pair e_g' orthogonal to it. The start aims at the
trigonal state about n: FeO's minority electron in a1g, CoO's two in e_g'.

During the first SCF steps of a run a potential V = −λ P is added to the minority-spin d block
of every metal's PAW Hamiltonian (P the projector on the target orbitals, in GPAW's real
spherical harmonics), which lowers the target orbitals by λ; it enters like GPAW's Hubbard U
term (``gpaw/hubbard.py``). Once the target orbitals hold their electrons the +U term itself
keeps them below the others, the bias is released and the SCF converges without it, so the
converged state is a solution of the unbiased DFT+U functional. CoO's e_g' pair stays filled;
FeO's single minority electron stays in one whole orbital, which turns part of the way from
a1g where a rattle or strain removes the 3-fold axis that keeps a1g stationary
(``states.STATE_RULES`` says what each material's converged state must be).

The frame is the one GPAW runs on: rocksalt bonds along the Cartesian axes
(``dft/orientation.py``), where the AFM-II stacking axis of
:func:`~spinmultinet_ase.magnetism.rocksalt.rocksalt_ordered` is [111]. A frame turned before
its bonds were put on the axes may have its stacking axis on another body diagonal; the
labeller takes each frame's own 3-fold axis (:func:`three_fold_axis`: the AFM-II stacking
axis, shared by the FM partner in the same cell; [111] where no single one exists), so every
frame starts in the same orbital order relative to its magnetic structure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.formula import Formula
from ase.units import Ha
from gpaw.extensions import Extension
from gpaw.hubbard import aoom

from spinmultinet_ase.dft.scf_budget import MAX_BIAS_STEPS, check_scf_budget
from spinmultinet_ase.dft.states import FILLED, STATE_RULES

# The AFM-II stacking axis of the bond-aligned rocksalt frame (unit vector).
AFM_II_AXIS = np.ones(3) / np.sqrt(3.0)

# Indices of xy, yz, zx (the t2g orbitals) in GPAW's real spherical harmonics for l = 2,
# ordered xy, yz, 3z²−r², zx, x²−y² (``gpaw/sphere/spherical_harmonics.py``).
T2G = (0, 1, 3)

# Bias strength λ (eV): above the trigonal crystal-field and band preferences of the t2g shell
# (tenths of an eV), below U (Fe 5.3, Co 3.32 eV), whose splitting holds the order once formed.
STRENGTH_EV = 2.0
# Release once the biased SCF's density error (electrons per valence electron) is below this,
# with the targets filled; None: as soon as they are filled.
RELEASE_DENSITY: float | None = None
# GPAW keywords of a biased run besides the protocol's, by reduced formula. Once the bias is
# released the minority electrons can turn within t2g at little cost, a soft direction along
# which GPAW's default MSR1 steps (up to max_A 0.75) keep the SCF from settling in rattled
# frames; MSR1 with its step capped and 4 eigensolver steps per SCF step settles it
# (data/studies/feo_coo_states.md, "The rule for FeO" and "The rule for CoO").
CAPPED_MSR1: dict[str, dict[str, object]] = {
    "mixer": {"name": "msr1", "max_A": 0.15, "trust_scale": 0.5, "nmaxold": 5},
    "eigensolver": {"name": "ppcg", "niter": 4, "min_niter": 2},
}
SCF_KEYWORDS: dict[str, dict[str, dict[str, object]]] = {"FeO": CAPPED_MSR1, "CoO": CAPPED_MSR1}


def scf_record(keywords: Mapping[str, Mapping[str, object]]) -> str:
    """``keywords`` (:data:`SCF_KEYWORDS` of a material) as one extxyz-safe line, e.g.
    ``eigensolver:name=ppcg,niter=4;mixer:max_A=0.15,name=msr1`` ('' for none)."""
    return ";".join(
        f"{name}:" + ",".join(f"{key}={value}" for key, value in sorted(options.items()))
        for name, options in sorted(keywords.items())
    )


def a1g_vector(axis: np.ndarray) -> np.ndarray:
    """Coefficients (GPAW's l = 2 real harmonics) of the a1g orbital (n·r)² − r²/3 about ``axis``.

    For a body diagonal n only the xy, yz, zx components of (n·r)² survive the traceless part:
    (n_x n_y, n_y n_z, 0, n_z n_x, 0), normalised.
    """
    n = np.asarray(axis, dtype=float)
    if np.count_nonzero(np.abs(n) > 1e-12) != 3 or not np.allclose(np.abs(n), np.abs(n[0])):
        raise ValueError(f"axis {n.tolist()} is not a cubic body diagonal")
    vector = np.array([n[0] * n[1], n[1] * n[2], 0.0, n[2] * n[0], 0.0])
    return vector / np.linalg.norm(vector)


def trigonal_projector(electrons: int, axis: np.ndarray = AFM_II_AXIS) -> np.ndarray:
    """Projector (5, 5) on the t2g orbitals that ``electrons`` minority electrons fill in the
    trigonal state about ``axis``: a1g for one, the e_g' pair (t2g minus a1g) for two."""
    a1g = np.outer(a1g_vector(axis), a1g_vector(axis))
    if electrons == 1:
        return a1g
    if electrons == 2:
        t2g = np.zeros((5, 5))
        t2g[T2G, T2G] = 1.0
        return t2g - a1g
    raise ValueError(f"no trigonal target for {electrons} minority t2g electrons")


# The four body diagonals of the cubic frame (unit vectors, one of each ± pair).
BODY_DIAGONALS = np.array([[1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]]) / np.sqrt(3.0)
# Largest deviation (units of the cubic lattice constant) of a bond-aligned cell vector from
# its ideal fcc vector: strains of several per cent pass, a cell turned off the axes does not.
MAX_STRAIN = 0.15


def three_fold_axis(atoms: Atoms) -> np.ndarray:
    """The bias axis of a rocksalt frame with bonds along the axes: the one body diagonal about
    which a 120° turn maps its ideal magnetic structure (lattice, metal sites and the signs of
    their initial moments) onto itself, else :data:`AFM_II_AXIS` (several such diagonals, as in
    FM cubic cells, or none, as in AFM-I).

    The ideal structure undoes the frame's strain and rattle: the cell rounded to fcc vectors
    (units a/2, a from the volume per metal), sites rounded in that cell. So an AFM-II frame gets
    its stacking axis and a frame in the AFM-II cell (its FM partner) the same axis, however the
    frame was turned before its bonds were put on the axes.

    Raises:
        ValueError: the cell is not a rocksalt supercell in the bond-aligned frame.
    """
    metal = np.array(atoms.get_chemical_symbols()) != "O"
    a = (4.0 * atoms.get_volume() / np.count_nonzero(metal)) ** (1.0 / 3.0)
    lattice = np.rint(2.0 * atoms.cell.array / a)
    if abs(np.linalg.det(lattice)) < 0.5 or not np.allclose(
        lattice * a / 2.0, atoms.cell.array, atol=MAX_STRAIN * a
    ):
        raise ValueError(
            f"{atoms.get_chemical_formula()}: the cell is not a rocksalt supercell with bonds "
            "along the axes"
        )
    to_ideal = np.linalg.solve(atoms.cell.array, lattice)  # Å -> units a/2 of the ideal cell
    offsets = atoms.positions[metal] - atoms.positions[metal][0]
    sites = np.rint(offsets @ to_ideal)
    signs = np.sign(atoms.get_initial_magnetic_moments()[metal])

    def in_lattice(vectors: np.ndarray) -> np.ndarray:
        fractional = np.linalg.solve(lattice.T, np.atleast_2d(vectors).T).T
        return np.all(np.abs(fractional - np.rint(fractional)) < 1e-6, axis=-1)

    axes = []
    for n in BODY_DIAGONALS:
        cross = np.array([[0, -n[2], n[1]], [n[2], 0, -n[0]], [-n[1], n[0], 0]])
        turn = np.rint(-0.5 * np.eye(3) + np.sqrt(0.75) * cross + 1.5 * np.outer(n, n))
        if not in_lattice(lattice @ turn.T).all():
            continue
        images = sites @ turn.T
        if all(
            in_lattice(image - sites[signs == sign]).any()
            for image, sign in zip(images, signs, strict=True)
        ):
            axes.append(n)
    return axes[0] if len(axes) == 1 else AFM_II_AXIS


@dataclass(frozen=True)
class BiasTarget:
    """The spin channel (0 up, 1 down) and d-orbital projector (5, 5) biased on one atom."""

    spin: int
    projector: np.ndarray


def bias_targets(atoms: Atoms, axis: np.ndarray = AFM_II_AXIS) -> dict[int, BiasTarget]:
    """Per metal atom of an FeO or CoO frame, the minority spin and its target projector.

    The minority spin of each metal is opposite to its initial moment (positive: spin down).

    Args:
        atoms: the frame GPAW runs on (bonds along the axes), with ``initial_magmoms``.
        axis: the trigonal axis (default :data:`AFM_II_AXIS`).
    """
    formula = str(Formula(atoms.get_chemical_formula()).reduce()[0])
    if formula not in STATE_RULES:
        known = ", ".join(sorted(STATE_RULES))
        raise ValueError(f"no orbital bias for {formula}; known: {known}")
    metal = formula.removesuffix("O")
    projector = trigonal_projector(STATE_RULES[formula].electrons, axis)
    moments = atoms.get_initial_magnetic_moments()
    targets = {}
    for a in np.flatnonzero(np.array(atoms.get_chemical_symbols()) == metal):
        if moments[a] == 0.0:
            raise ValueError(f"{metal} atom {a} has no initial moment to define its minority spin")
        targets[int(a)] = BiasTarget(spin=1 if moments[a] > 0 else 0, projector=projector)
    return targets


def target_occupations(
    density_matrices: Mapping[int, np.ndarray], setups, targets: Mapping[int, BiasTarget]
) -> dict[int, float]:
    """Per target atom, Tr(P N): the electrons in its target orbitals (N: GPAW's d occupation
    matrix of the biased spin, the one the +U term acts on).

    Args:
        density_matrices: atom -> PAW density matrices D_sii (all atoms, e.g. gathered).
        setups: GPAW setups, indexed by atom.
        targets: :func:`bias_targets`.
    """
    result = {}
    for a, target in targets.items():
        setup = setups[a]
        n_mm, _ = aoom(
            np.asarray(density_matrices[a][target.spin]).real,
            2,
            setup.l_j,
            setup.n_j,
            setup.N0_q,
            True,
        )
        result[a] = float(np.sum(target.projector * n_mm))
    return result


def current_target_occupations(dft, targets: Mapping[int, BiasTarget]) -> dict[int, float]:
    """:func:`target_occupations` of the current density of a GPAW (new code) calculation
    ``dft`` (``calc.dft``), its density matrices gathered on every MPI rank."""
    density_matrices = dft.density.D_asii.gather(broadcast=True, copy=True)
    return target_occupations(density_matrices, dft.setups, targets)


class OrbitalBias(Extension):
    """GPAW (new code) extension adding V = −λ P to the biased spin's d block of target atoms.

    The energy term is E = −λ Σ_a Tr(P_a N_a), linear in the PAW density matrix, with N the
    d occupation matrix of :func:`gpaw.hubbard.aoom`; its derivative w.r.t. D_ii is embedded
    in dH_sii exactly as GPAW embeds the Hubbard U potential. Setting ``active`` to False
    removes it from the next potential evaluation on.
    """

    name = "orbital_bias"

    def __init__(self, targets: Mapping[int, BiasTarget], strength_ev: float = STRENGTH_EV):
        self.targets = dict(targets)
        self.strength_ev = strength_ev
        self.active = True

    def __repr__(self) -> str:
        return f"OrbitalBias(strength_ev={self.strength_ev}, atoms={sorted(self.targets)})"

    def todict(self) -> dict:
        return {
            "strength_ev": self.strength_ev,
            "targets": {
                str(a): {"spin": t.spin, "projector": t.projector.tolist()}
                for a, t in self.targets.items()
            },
        }

    def update_non_local_hamiltonian(self, D_sii, setup, atom_index, dH_sii) -> float:
        """Add the bias to ``dH_sii`` (Hartree) in place; return its energy (Hartree)."""
        target = self.targets.get(atom_index)
        if not self.active or target is None:
            return 0.0
        n_mm, w_ii = aoom(D_sii[target.spin].real, 2, setup.l_j, setup.n_j, setup.N0_q, True)
        v_mm = -self.strength_ev / Ha * target.projector
        starts = np.cumsum([0] + [2 * ell + 1 for ell in setup.l_j])
        d_blocks = [slice(starts[j], starts[j] + 5) for j, ell in enumerate(setup.l_j) if ell == 2]
        for rows in d_blocks:
            for columns in d_blocks:
                dH_sii[target.spin][rows, columns] += w_ii[rows, columns] * v_mm
        return float(np.sum(v_mm * n_mm))


def check_symmetric(targets: Mapping[int, BiasTarget], symmetries) -> None:
    """Raise ValueError unless every symmetry operation GPAW uses maps the bias onto itself.

    GPAW symmetrises the density with its point group but not an extension's potential, so a
    bias that an operation changes is cancelled (or made inconsistent) by the symmetrisation;
    such a run needs ``symmetry={'point_group': False}``.

    Args:
        targets: :func:`bias_targets`.
        symmetries: the run's ``gpaw.new.symmetry.Symmetries`` (``dft.ibzwfs.ibz.symmetries``).
    """
    from gpaw.rotation import rotation

    cell = symmetries.cell_cv
    cartesian = np.linalg.inv(cell) @ symmetries.rotation_scc @ cell
    for r_vv, atommap in zip(cartesian, symmetries.atommap_sa, strict=True):
        r_mm = rotation(2, r_vv)
        for a, target in targets.items():
            image = targets.get(int(atommap[a]))
            if (
                image is None
                or image.spin != target.spin
                or not np.allclose(r_mm @ image.projector @ r_mm.T, target.projector, atol=1e-8)
            ):
                raise ValueError(
                    f"symmetry operation {r_vv.round(3).tolist()} does not keep the orbital bias "
                    f"of atom {a}; run with symmetry={{'point_group': False}}"
                )


@dataclass(frozen=True)
class BiasedStart:
    """What a biased start did: λ (eV), the step limit, the biased SCF steps run, and the
    electrons in each target atom's target orbitals when the bias was released."""

    strength_ev: float
    max_steps: int
    steps: int
    occupations: dict[int, float]


def run_biased_start(
    calc,
    atoms: Atoms,
    bias: OrbitalBias,
    max_steps: int = MAX_BIAS_STEPS,
    release_density: float | None = RELEASE_DENSITY,
    total_steps: int | None = None,
) -> BiasedStart:
    """Run the first SCF steps of ``atoms`` on ``calc`` with ``bias`` active, then release it.

    ``calc`` is a GPAW (new code) ASE calculator built with ``extensions=[bias]``. A new
    calculation is created for ``atoms`` and SCF steps run with the bias until every target
    atom holds at least :data:`~spinmultinet_ase.dft.states.FILLED` electrons per target
    electron in its target orbitals (and, with ``release_density``, the SCF's density error
    per valence electron is below it), or ``max_steps`` steps. The bias is then switched off and
    the potential recomputed without it; the next ``atoms.get_potential_energy()`` continues
    this SCF from the same wave functions and density (GPAW's mixer and iteration count
    restart) to the unbiased solution. The stop decision is rank 0's on every MPI rank.
    With ``total_steps`` (a budget above ``max_steps``:
    :func:`~spinmultinet_ase.dft.scf_budget.check_scf_budget`), that SCF may take only the steps
    the biased ones left of it (and no more than ``calc``'s ``maxiter``) before GPAW raises
    KohnShamConvergenceError.
    """
    check_scf_budget(total_steps, biased=max_steps)
    calc.create_new_calculation(atoms)
    dft = calc.dft
    check_symmetric(bias.targets, dft.ibzwfs.ibz.symmetries)
    needed = {a: FILLED * np.trace(t.projector) for a, t in bias.targets.items()}
    steps = 0
    occupations: dict[int, float] = {}
    for context in dft.iconverge():
        steps = context.niter
        occupations = current_target_occupations(dft, bias.targets)
        filled = all(occupations[a] >= needed[a] for a in needed)
        settled = release_density is None or (
            context.dens.error / context.wfs.nvalence < release_density
        )
        release = np.array([1.0 if (filled and settled) or steps >= max_steps else 0.0])
        dft.comm.broadcast(release, 0)
        if release[0]:
            break
    bias.active = False
    if total_steps is not None:
        dft.scf_loop.maxiter = min(dft.scf_loop.maxiter, total_steps - steps)
    dft.potential, dft.energies, _ = dft.pot_calc.calculate(
        dft.density, dft.ibzwfs, dft.potential.vHt_x
    )
    shown = ", ".join(f"{a}: {n:.3f}" for a, n in occupations.items())
    dft.log(f"orbital bias {bias.strength_ev} eV released after {steps} SCF steps ({shown})\n")
    atoms.calc = calc
    return BiasedStart(bias.strength_ev, max_steps, steps, occupations)
