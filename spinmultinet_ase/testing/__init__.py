"""Reusable checks for any SpinMultiNet calculator: symmetries and finite differences."""
