"""Run the protocol convergence study, the cross-cell k-point checks (FM MnO; the yardstick
orderings of each material), the check of the Pulay energy correction at a second volume
and the orientation check (resumable); writes data/convergence.json.

Run: OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 GPAW_MPI_BACKEND=cgpaw \
     nice /usr/bin/mpiexec -n 2 python scripts/convergence_study.py  # GPAW's Debian OpenMPI
"""

import json
from pathlib import Path

from gpaw.mpi import world

from spinmultinet_ase.reference.convergence import (
    run_convergence_study,
    summarise,
    summarise_cross_cell,
    summarise_ordering_kpoints,
    summarise_orientation,
    summarise_pulay_energy,
)

data = Path(__file__).parents[1] / "data"
out = data / "convergence.json"
before = json.loads(out.read_text()) if out.exists() else {}
results = run_convergence_study(out, data / "gpaw_logs")
if world.rank == 0 and results != before:  # a complete study stays quiet when rerun
    tables = {}
    summaries = (
        summarise,
        summarise_cross_cell,
        summarise_ordering_kpoints,
        summarise_pulay_energy,
        summarise_orientation,
    )
    for summary in summaries:
        tables.update(summary(results))
    print(json.dumps(tables, indent=1))
