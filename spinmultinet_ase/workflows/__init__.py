"""Standard ASE and phonopy workflows with spin: relaxation, MD, phonons."""
