"""Multi-task training: energy, forces, stress and magnetic moments."""
