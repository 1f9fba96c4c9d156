"""Cross-cell k-point check: FM MnO (half-metallic) per formula unit in the two 4-atom cells.

Run: OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 GPAW_MPI_BACKEND=cgpaw \
     mpiexec -n 2 python scripts/kpoint_cross_cell_check.py
Measured here (eV per f.u.): afm1-4 k2.0 -16.98012, k3.0 -16.98563, k4.0 -16.98596;
afm2-4 k2.0 -16.98539, k3.0 -16.98587: the cells agree within 5.3 meV/f.u. at 2.0 and
0.24 meV/f.u. at 3.0, hence kpoint_density_by_formula = {"MnO": 3.0} in the protocol.
"""

import dataclasses
import json

from ase.build import niggli_reduce
from gpaw.mpi import world

from spinmultinet_ase.dft.label import label_structure
from spinmultinet_ase.dft.protocol import DEFAULT_PROTOCOL
from spinmultinet_ase.dft.structures import CELLS
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered

out = {}
for density in (2.0, 3.0, 4.0):
    p = dataclasses.replace(DEFAULT_PROTOCOL, kpoint_density=density, kpoint_density_by_formula={})
    for cell in ("afm1-4", "afm2-4"):
        a = rocksalt_ordered("MnO", "FM", CELLS[cell])
        niggli_reduce(a)
        lab = label_structure(a, p, f"kcheck_{cell}_{density}.txt")
        e = lab.get_potential_energy() / (len(a) // 2)
        out[f"{cell} k{density}"] = e
        if world.rank == 0:
            print(cell, density, e, lab.info["dft_status"], lab.info["dft_wall_s"], flush=True)
if world.rank == 0:
    print(json.dumps(out))
