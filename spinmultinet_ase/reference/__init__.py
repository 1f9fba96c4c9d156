"""Reports on this project's MnO/NiO reference data and shipped model: the data card, the DFT
convergence study and the model card. Built on the general library, never imported by it."""
