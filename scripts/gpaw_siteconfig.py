# GPAW build configuration (read by pip through GPAW_CONFIG): link FFTW for faster plane-wave
# FFTs and BLAS (OpenBLAS through Debian's libblas.so) so GPAW's C code calls it natively;
# without "blas" here GPAW's build silently falls back to scipy's BLAS through Python, about
# 12 % slower per SCF iteration (measured on a 4-atom NiO cell, identical energies).
# MPI is detected by GPAW's own build from the OpenMPI compiler wrapper.
fftw = True
libraries += ["fftw3", "blas"]  # noqa: F821 (GPAW's build defines `libraries` before reading this file)
