"""Shipped SpinMultiNet models (installed as ``spinmultinet_ase.models``).

Each model lives in its own folder with ``model.pt`` (TorchScript), ``card.md``,
``config.yaml`` and ``metrics.json``; ``DEFAULT_MODEL`` names the one loaded by default.
"""

DEFAULT_MODEL = "spinmultinet-mno-nio"
