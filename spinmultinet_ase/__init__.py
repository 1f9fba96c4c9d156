"""SpinMultiNet-ASE: a spin-aware, E(3)- and time-reversal-equivariant neural network potential."""

__version__ = "0.1.0"

__all__ = ["SpinMultiNetCalculator", "__version__"]


def __getattr__(name: str):
    # The calculator pulls in torch and e3nn; import it only when asked for, so that
    # light tools (the DFT labeller, the structure generator) start fast.
    if name == "SpinMultiNetCalculator":
        from spinmultinet_ase.calculator import SpinMultiNetCalculator

        return SpinMultiNetCalculator
    raise AttributeError(f"module 'spinmultinet_ase' has no attribute {name!r}")
