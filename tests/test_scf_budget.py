"""The labelling budget (``max_scf_steps``): a real GPAW run of a tiny CoO cell, from the
labeller's orbital-bias start, with cheap settings; and scripts/scf_steps.py, which counts
the steps from the GPAW log the budget is chosen by."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from ase.io import read, write

from spinmultinet_ase.dft.label import (
    SCF_BUDGET,
    STATUS,
    STATUS_OK,
    label_structure,
    protocol_mismatch,
)
from spinmultinet_ase.dft.protocol import DFTProtocol
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered

pytest.importorskip("gpaw")

SCRIPT = Path(__file__).parents[1] / "scripts" / "scf_steps.py"
SPEC = importlib.util.spec_from_file_location("scf_steps", SCRIPT)
scf_steps = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(scf_steps)

# Cheap enough for a test, yet above the 21 steps the smallest budget allows: the 2-atom FM
# cell takes 5 biased + 28 free steps to these criteria.
CHEAP = DFTProtocol(
    ecut_ev=250.0,
    kpoint_density=0.5,
    energy_convergence_ev=1e-5,
    density_convergence=1e-4,
    pulay_stress=None,
)


def test_a_budget_rejects_the_frame_one_step_short_and_keeps_its_label_within_it(tmp_path):
    """Run to the protocol's limit, the frame converges in K steps (biased + free, counted
    from its log); with a budget of K it gets the same label, with K − 1 it is rejected as
    the budget's. Frames with and without a budget make one file of one protocol."""
    atoms = rocksalt_ordered("CoO", "FM")
    atoms.rattle(0.03, seed=0)
    atoms.info["structure_id"] = "tiny-CoO-FM"
    protocol_run = label_structure(atoms, CHEAP, tmp_path / "protocol.txt")
    assert protocol_run.info[STATUS] == STATUS_OK and SCF_BUDGET not in protocol_run.info
    logged = scf_steps.read_log(tmp_path / "protocol.txt")
    assert logged.converged and logged.bias_steps == protocol_run.info["dft_bias_steps"] > 0
    steps = logged.bias_steps + logged.free_steps
    assert steps > 22  # a budget of steps − 1 is allowed

    within = label_structure(atoms, CHEAP, tmp_path / "within.txt", max_scf_steps=steps)
    assert within.info[STATUS] == STATUS_OK and within.info[SCF_BUDGET] == steps
    assert within.get_potential_energy() == pytest.approx(
        protocol_run.get_potential_energy(), abs=1e-9
    )
    assert within.get_forces() == pytest.approx(protocol_run.get_forces(), abs=1e-9)

    short = label_structure(atoms, CHEAP, tmp_path / "short.txt", max_scf_steps=steps - 1)
    assert short.info[STATUS] == (
        f"not converged in {steps - 1} SCF steps (labelling budget; the protocol allows 300)"
    )
    assert short.info[SCF_BUDGET] == steps - 1 and short.calc is None
    stopped = scf_steps.read_log(tmp_path / "short.txt")
    assert not stopped.converged and stopped.bias_steps + stopped.free_steps == steps - 1

    write(tmp_path / "mixed.extxyz", [protocol_run, within, short])
    assert protocol_mismatch(read(tmp_path / "mixed.extxyz", ":"), CHEAP) == ""
