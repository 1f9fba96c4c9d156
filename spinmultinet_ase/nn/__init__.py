"""Equivariant building blocks that track time-reversal parity."""
