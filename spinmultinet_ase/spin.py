"""The spin mode of a model: the shape of its moments, how they transform, what an ordering is.

Three modes (``docs/conventions.md``):

* ``collinear``: one signed number per atom, ``(N,)`` μB, along a common axis decoupled from
  the lattice. Spatial scalars (irrep ``0e``), time-odd.
* ``noncollinear``: a vector per atom, ``(N, 3)`` μB, in spin space, decoupled from the lattice
  (no spin-orbit coupling). The energy is unchanged by any global rotation ``U`` of all spins,
  whatever the lattice does, and by rotating the lattice with the spins held fixed. The network
  carries the three Cartesian spin components as three copies of the collinear time-odd stream
  that share every weight; copies meet only in sums ``Σ_a x_a y_a``, so a spin rotation ``U``
  rotates the copies (and the predicted moments and magnetic forces) and leaves every time-even
  feature, and the energy, exactly unchanged. A collinear state ``m_i = s_i n`` gives the
  collinear model's energy with the same weights.
* ``noncollinear_soc``: a vector per atom, ``(N, 3)`` μB, an axial vector (irrep ``1e``) that
  rotates with the lattice, as with spin-orbit coupling: only joint rotations of lattice and
  spins are symmetries, and the energy may depend on the spin direction relative to the bonds.

Time reversal is ``m -> -m`` in every mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPIN_MODES = ("collinear", "noncollinear", "noncollinear_soc")


@dataclass(frozen=True)
class SpinMode:
    """One of :data:`SPIN_MODES`, with what follows from it.

    Raises:
        ValueError: an unknown name.
    """

    name: str

    def __post_init__(self) -> None:
        if self.name not in SPIN_MODES:
            raise ValueError(f"spin_mode must be one of {', '.join(SPIN_MODES)}, got {self.name!r}")

    @classmethod
    def of(cls, mode: SpinMode | str) -> SpinMode:
        """``mode`` itself, or the mode of that name."""
        return mode if isinstance(mode, SpinMode) else cls(mode)

    @property
    def vector(self) -> bool:
        """Moments are ``(N, 3)`` vectors (else ``(N,)`` scalars)."""
        return self.name != "collinear"

    @property
    def spin_copies(self) -> int:
        """Weight-sharing copies of the time-odd stream: one per Cartesian spin component
        for ``noncollinear``, else one (the moment is a single scalar or one axial vector)."""
        return 3 if self.name == "noncollinear" else 1

    @property
    def rotates_with_lattice(self) -> bool:
        """Moments are axial vectors that rotate with the structure (spin-orbit)."""
        return self.name == "noncollinear_soc"

    @property
    def odd_irrep(self) -> str:
        """The e3nn irrep of one copy of the input moment: ``1e`` (axial) or ``0e``."""
        return "1e" if self.rotates_with_lattice else "0e"

    def shape(self, num_atoms: int) -> tuple[int, ...]:
        return (num_atoms, 3) if self.vector else (num_atoms,)

    def check(self, moments: np.ndarray) -> None:
        """Raise a one-line ``ValueError`` with the fix if ``moments`` (N,) or (N, 3) do not
        have this mode's shape."""
        n = len(moments)
        if self.vector and moments.shape == (n,):
            raise ValueError(
                f"this model is {self.name}: set initial moments as (N, 3) vectors, e.g. "
                "atoms.set_initial_magnetic_moments([[0, 0, m] for m in moments])"
            )
        if not self.vector and moments.shape == (n, 3):
            raise ValueError(
                "this model is collinear: set initial moments as one number per atom (N,), "
                "e.g. atoms.set_initial_magnetic_moments([2, -2, 0, 0])"
            )
        if moments.shape != self.shape(n):
            raise ValueError(f"initial_magmoms has shape {moments.shape}; expected {self.shape(n)}")

    @staticmethod
    def time_reversed(moments: np.ndarray) -> np.ndarray:
        """Moments after time reversal, ``m -> -m``."""
        return -np.asarray(moments)

    def rotated_with_lattice(self, moments: np.ndarray, q: np.ndarray) -> np.ndarray:
        """The moments that go with the structure moved by the orthogonal ``q``
        (``R -> R qᵀ``) for the result to be the same physical state seen rotated: axial
        vectors ``det(q) m qᵀ`` with spin-orbit, otherwise the moments unchanged."""
        if self.rotates_with_lattice:
            return np.linalg.det(q) * np.asarray(moments) @ np.asarray(q).T
        return np.asarray(moments)

    def ordering(self, signed_sizes: np.ndarray, axis: np.ndarray | None = None) -> np.ndarray:
        """Initial moments of a collinear ordering with signed sizes ``s_i |m_i|`` (μB): those
        numbers (collinear), or vectors ``s_i |m_i| n`` along ``n``, the global spin direction
        ``axis`` normalised (default z).

        Raises:
            ValueError: ``axis`` is not a nonzero 3-vector.
        """
        signed_sizes = np.asarray(signed_sizes, dtype=float)
        if not self.vector:
            return signed_sizes
        axis = np.array([0.0, 0.0, 1.0]) if axis is None else np.asarray(axis, dtype=float)
        norm = np.linalg.norm(axis)
        if axis.shape != (3,) or not np.isfinite(norm) or norm == 0:
            raise ValueError(f"the spin axis must be a nonzero 3-vector, got {axis.tolist()}")
        return signed_sizes[:, None] * (axis / norm)
