"""Reference data: rocksalt oxide structures and their GPAW PBE+U labels."""
