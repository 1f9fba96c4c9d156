"""Run the protocol convergence study, the cross-cell k-point checks (FM MnO; the yardstick
orderings of each material), the check of the Pulay energy correction at a second volume,
the orientation checks and the corundum entries (resumable); writes data/convergence.json.
With materials as arguments only their entries run (e.g. ``Cr2O3 Fe2O3``: the corundum
Pulay calibrations first, then their orientation check and ordering energies at two k-point
densities), without redoing or waiting for the others.

Run (some materials only: scripts/convergence.sh MATERIAL ...):
     OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 GPAW_MPI_BACKEND=cgpaw \
     nice /usr/bin/mpiexec -n 2 python scripts/convergence_study.py [MATERIAL ...]
     # GPAW's Debian OpenMPI
"""

import json
import sys
from pathlib import Path

from gpaw.mpi import world

from spinmultinet_ase.reference.convergence import (
    CORUNDUM_MATERIALS,
    MATERIALS,
    run_convergence_study,
    summarise,
    summarise_corundum,
    summarise_cross_cell,
    summarise_ordering_kpoints,
    summarise_orientation,
    summarise_pulay_energy,
)

materials = tuple(sys.argv[1:]) or None
unknown = set(materials or ()) - set(MATERIALS + CORUNDUM_MATERIALS)
if unknown:
    sys.exit(f"convergence_study.py: no study entries for {', '.join(sorted(unknown))}")
data = Path(__file__).parents[1] / "data"
out = data / "convergence.json"
before = json.loads(out.read_text()) if out.exists() else {}
results = run_convergence_study(out, data / "gpaw_logs", materials)
if world.rank == 0 and results != before:  # a complete study stays quiet when rerun
    tables = {}
    summaries = (
        summarise,
        summarise_cross_cell,
        summarise_ordering_kpoints,
        summarise_pulay_energy,
        summarise_orientation,
        summarise_corundum,
    )
    for summary in summaries:
        tables.update(summary(results))
    print(json.dumps(tables, indent=1))
