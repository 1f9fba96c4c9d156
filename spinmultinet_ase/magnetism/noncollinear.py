"""Non-collinear initial moments: collinear states turned in spin space, canted and spiral states.

Each function returns ``(N, 3)`` moments (μB) for ``atoms.set_initial_magnetic_moments``. A
collinear state is given as signed sizes ``s_i |m_i|`` (``(N,)``, e.g. an ordering's
``initial_magmoms``); :meth:`spinmultinet_ase.spin.SpinMode.ordering` turns one to a single
global direction ``n``, ``m_i = s_i |m_i| n``.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms


def _unit(vector: np.ndarray, name: str) -> np.ndarray:
    vector = np.asarray(vector, dtype=float)
    norm = np.linalg.norm(vector)
    if vector.shape != (3,) or not np.isfinite(norm) or norm == 0:
        raise ValueError(f"{name} must be a nonzero 3-vector, got {vector.tolist()}")
    return vector / norm


def _perpendicular_basis(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors ``e1``, ``e2`` with ``(e1, e2, normal)`` right-handed orthonormal."""
    trial = np.eye(3)[np.argmin(np.abs(normal))]
    e1 = _unit(np.cross(normal, trial), "basis vector")
    return e1, np.cross(normal, e1)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation (3x3), from the QR decomposition of a Gaussian matrix."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def canted(
    signed_sizes: np.ndarray, axis: np.ndarray, cant_direction: np.ndarray, angle_deg: float
) -> np.ndarray:
    """A canted state: every moment of a collinear state along ``axis`` tilted by ``angle_deg``
    towards the common ``cant_direction`` (its part perpendicular to ``axis``),

        m_i = |m_i| (s_i cos θ n + sin θ c),

    so an antiferromagnet gains a net moment ``Σ_i |m_i| sin θ`` along ``c`` (weak
    ferromagnetism). Atoms with ``s_i |m_i| = 0`` stay zero.
    """
    n = _unit(axis, "axis")
    c = np.asarray(cant_direction, dtype=float)
    c = _unit(c - (c @ n) * n, "cant_direction perpendicular to axis")
    signed_sizes = np.asarray(signed_sizes, dtype=float)
    theta = np.radians(angle_deg)
    sizes, signs = np.abs(signed_sizes), np.sign(signed_sizes)
    return sizes[:, None] * (signs[:, None] * np.cos(theta) * n + np.sin(theta) * c)


def spiral(
    atoms: Atoms,
    sizes: np.ndarray,
    turns: tuple[int, int, int],
    normal: np.ndarray = (0.0, 0.0, 1.0),
    phase_deg: float = 0.0,
) -> np.ndarray:
    """A flat spin spiral commensurate with the cell of ``atoms`` (a supercell):

        m_i = |m_i| (cos φ_i e1 + sin φ_i e2),   φ_i = 2π t · f_i + φ0,

    with ``f_i`` the scaled (fractional) positions, ``t`` the whole number of turns along each
    cell vector (so the state is periodic in the cell) and ``(e1, e2)`` spanning the plane
    perpendicular to ``normal``.

    Args:
        atoms: the (super)cell.
        sizes: moment size per atom (μB, ``(N,)``, signs ignored).
        turns: integer turns of the spiral along the three cell vectors.
        normal: the spin rotation axis (perpendicular to the plane of the spins).
        phase_deg: the angle ``φ0`` of an atom at the origin, measured from ``e1``.

    Raises:
        ValueError: non-integer turns, or sizes not one per atom.
    """
    turns_array = np.asarray(turns, dtype=float)
    if turns_array.shape != (3,) or np.any(turns_array != np.round(turns_array)):
        raise ValueError(f"turns must be three whole numbers (periodic in the cell), got {turns}")
    sizes = np.abs(np.asarray(sizes, dtype=float))
    if sizes.shape != (len(atoms),):
        raise ValueError(f"sizes must be one number per atom ({len(atoms)}), got {sizes.shape}")
    e1, e2 = _perpendicular_basis(_unit(normal, "normal"))
    phases = 2 * np.pi * atoms.get_scaled_positions(wrap=False) @ turns_array
    phases = phases + np.radians(phase_deg)
    return sizes[:, None] * (np.cos(phases)[:, None] * e1 + np.sin(phases)[:, None] * e2)
