"""DFT reference labels: GPAW PBE+U labelling of any structure with initial moments, and the
generator of the rocksalt oxide structures of the shipped data set."""
