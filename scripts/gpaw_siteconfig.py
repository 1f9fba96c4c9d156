# GPAW build configuration (read by pip through GPAW_CONFIG): link FFTW for faster plane-wave
# FFTs. MPI is detected by GPAW's own build from the OpenMPI compiler wrapper.
fftw = True
libraries += ["fftw3"]  # noqa: F821 (GPAW's build defines `libraries` before reading this file)
