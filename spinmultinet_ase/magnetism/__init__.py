"""Spin orderings, ordering scans and exchange-constant fits."""
