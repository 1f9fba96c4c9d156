"""The dataset card (``data/README.md``), written from the data files themselves."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
from ase.io import read
from ase.units import GPa

from spinmultinet_ase.dft.label import STATUS, estimated_hours, rejected_path, unlabelled
from spinmultinet_ase.dft.protocol import DEFAULT_PROTOCOL
from spinmultinet_ase.dft.structures import HELD_OUT_CELLS, HELD_OUT_ORDERINGS
from spinmultinet_ase.outputs import write_text_atomic
from spinmultinet_ase.reference.convergence import (
    summarise,
    summarise_corundum,
    summarise_cross_cell,
    summarise_ordering_kpoints,
    summarise_orientation,
    summarise_pulay_energy,
)
from spinmultinet_ase.train.config import DataConfig
from spinmultinet_ase.train.dataset import split_of

INTRO = """# Reference data: rocksalt MnO and NiO, GPAW spin-polarised PBE+U

Written by `spinmultinet data-card data/ --overwrite` from the files in this folder; rerun
it after labelling more. Everything here was computed on this project's 2-core machine.

* `structures.extxyz`: every structure to label ({total}), with `initial_magmoms` set as a
  user would guess them (nominal ±5 μB on Mn, ±2 μB on Ni, each off by up to ±40 %; 0 on O)
  and `info` saying how it was made (material, cell, ordering, strains, rattle). Ordering
  partners (`info['partner_of']`) repeat a pool frame's geometry with another ordering (FM ↔
  AFM-II, FM ↔ AFM-I in the 4-atom cells), so each pair's energy difference is purely magnetic.
  In labelling order: the yardsticks, the pool interleaved at random (so what is labelled at
  any time is balanced), and last the AFM-III and 16-atom frames the split keeps out of
  training.
* `reference.extxyz`: the labelled frames that passed the checks: `energy`, `free_energy`
  (eV), `forces` (eV/Å), `stress` (eV/Å³, ASE sign), `initial_magmoms` (the guess, the
  model's input) and `magmoms` (converged DFT moments, training targets only), plus the
  protocol and GPAW version in each frame's `info`.
* `reference.rejected.extxyz`: runs kept out of training (not converged, converged to
  another magnetic state than the one asked for: a flipped sign or a collapsed moment, or
  GPAW failed on the structure), each with the reason in `info['dft_status']`.
* `gpaw_logs/`: one GPAW text log per structure. `labelling.log`: the labelling progress.
* Labelling resumes: `spinmultinet label` appends each frame atomically (a kill loses at most
  the frame being computed), skips the structure ids already in either file, and refuses to
  continue a file labelled with another protocol. Every input is checked before the first
  GPAW run (`docs/conventions.md`, Output files).
* `protocol_check_900eV.extxyz`: the first frames, labelled at 900 eV and k-point density 2.0
  before the protocol moved to 700 eV + Pulay correction and 2.5; kept as a cross-check
  (below: its spread is the FM MnO k-point error of one cell at 2.0, see the cross-cell table).
* `protocol_check_mno_k2.extxyz`: the MnO yardsticks at k-point density 2.0, before the
  protocol moved to 2.5 (half-metallic FM MnO needs it: the cross-cell check below).
* `protocol_check_nio_unaligned.extxyz`: the NiO frames labelled before the protocol turned
  each structure so its metal–oxygen bonds lie along the axes (the orientation check below);
  relabelled since. MnO frames from before the change are kept: MnO's energy hardly depends
  on orientation (same table).
* `structures_MATERIALS.extxyz` → `reference_MATERIALS.extxyz`: the other materials, labelled
  with the same protocol (`bash scripts/label_reference_data.sh MATERIAL ...`): corundum
  Cr2O3 and Fe2O3 (`docs/corundum_data.md`), rocksalt CoO (and FeO, after its convergence
  entries). FeO and CoO have several DFT+U states (Fe²⁺ d⁶ and Co²⁺ d⁷ are orbitally
  degenerate); every frame starts with an orbital bias that fills the trigonal target
  orbitals (Fe a1g, Co e_g' about the AFM-II 3-fold axis), released after the first SCF
  steps (FeO then with capped MSR1 mixing), and frames that end elsewhere (gap < 0.25 eV,
  fractional occupations, or 0.3 eV/f.u. above an ordering partner; CoO also with its target
  pair not filled, while FeO's electron may end in any whole orbital) are rejected:
  `data/studies/feo_coo_states.md`, `spinmultinet_ase/dft/states.py`.
* `convergence.json`: the protocol convergence study; `yardsticks.json`: DFT ordering
  energies, J1/J2 and E(δ) under [111] strain, of every material labelled so far.
* `checks/`: small DFT checks of the workflows, labelled with the same protocol, each with
  `comparison.md` (DFT against the shipped model; `bash scripts/dft_checks.sh CHECK`):
  `gamma_phonons/`, the undistorted 4-atom AFM-II and FM yardstick cells with one atom
  displaced by 0.01 Å (their exact Γ-point phonons); `equation_of_state/`, the AFM-II
  yardstick cells from −8 % to +6 % in volume.

## Regenerate

```bash
spinmultinet structures data/structures.extxyz            # deterministic (seed 0)
nohup bash scripts/dft_queue.sh > /dev/null 2>&1 &         # convergence study, then labelling
spinmultinet yardsticks data/reference.extxyz data/reference_CoO.extxyz \\
    data/reference_Cr2O3_Fe2O3.extxyz data/yardsticks.json --overwrite \\
    --materials MnO FeO CoO NiO Cr2O3 Fe2O3   # names those with no yardstick frames yet
spinmultinet data-card data/ --overwrite
```
The labelling resumes where it stopped (frames are matched by `structure_id`) and runs under
`mpiexec -n 2`. GPAW needs the Debian packages `libxc-dev libopenblas-dev libfftw3-dev
libopenmpi-dev openmpi-bin` (installed by `scripts/install.sh`; GPAW builds from PyPI in
about a minute, linked to FFTW through `scripts/gpaw_siteconfig.py`).
"""


def _protocol_table() -> str:
    rows = ["| setting | value |", "|---|---|"]
    for key, value in asdict(DEFAULT_PROTOCOL).items():
        rows.append(f"| {key} | {value} |")
    rows.append("| mode | plane waves, spin-polarised, Γ-centred even k-mesh |")
    rows.append("| cells | Niggli-reduced before the run |")
    return "\n".join(rows)


def _convergence_table(path: Path) -> str:
    if not path.exists():
        return "The convergence study has not run yet (`scripts/convergence_study.py`)."
    results = json.loads(path.read_text())
    rows = [
        "One rattled, strained 4-atom cell per material in FM and AFM-II (corundum: a 10-atom "
        "cell in FM and its ground state, the second ordering of the ΔE column); each setting "
        "against the tighter one along its axis (`spinmultinet_ase/reference/convergence.py`, run "
        "by `scripts/convergence_study.py`). Total energies matter too, not only ordering "
        "energies: the training data mixes cells whose meshes err differently. k-density 1.5 "
        "was rejected for its 4-5 meV/atom total-energy error, Marzari-Vanderbilt smearing "
        "(0.2 eV, a cheaper route to k-point convergence) for moving forces by 50-70 meV/Å. "
        "ASE rounds a density up to an even number of points per direction, so neighbouring "
        "densities can give one mesh (MnO 2.0 and 2.5 here: identical rows). Along the "
        "cutoff axis the total-energy offset (6-7 meV/atom at 700 eV) is the basis-set "
        "error per atom, the same for every structure of a material up to the volume term "
        "the Pulay correction accounts for; per-element reference energies absorb it.\n",
        "| settings | ΔE(FM−AFM-II) error (meV/atom) | total energy error (meV/atom) | "
        "max force error (meV/Å) | max stress error (GPa) | wall time, both orderings (s) |",
        "|---|---|---|---|---|---|",
    ]
    for key, row in summarise(results).items():
        rows.append(
            f"| {key} | {row['ordering_energy_meV_per_atom']:.3f} "
            f"| {row['total_energy_meV_per_atom']:.2f} | {row['forces_meV_per_A']:.1f} "
            f"| {row['stress_GPa']:.3f} | {row['wall_s']:.0f} |"
        )
    rows += [
        "\nFM MnO is half-metallic, so its energy converges slowly with the k-mesh, and how "
        "fast depends on the cell. The same FM crystal in the two 4-atom cells, energy per "
        "formula unit (meV):\n",
        "| material, k-point density, smearing | between the cells | afm1-4 − k 4.0 "
        "| afm2-4 − k 4.0 | wall time, both cells (s) |",
        "|---|---|---|---|---|",
    ]
    for key, row in summarise_cross_cell(results).items():
        cells = [row.get(f"{c}_vs_k4.0_meV_per_fu") for c in ("afm1-4", "afm2-4")]
        shown = ["–" if v is None else f"{v:.2f}" for v in cells]
        rows.append(
            f"| {key} | {row['cell_difference_meV_per_fu']:.2f} | {shown[0]} | {shown[1]} "
            f"| {row['wall_s']:.0f} |"
        )
    orderings = ordering_kpoints_table(results)
    if orderings:
        rows += [
            "\nThe yardsticks of the undistorted crystal (as `yardsticks.json` takes them: "
            "AFM-I against FM in the afm1-4 cell, AFM-II against FM in the afm2-4 cell) at the "
            "protocol's mesh and a dense one. The FM cell difference is how far the protocol's "
            "own numbers depend on the cell; a model, which sees one crystal, cannot follow "
            "it:\n",
            *orderings,
        ]
    pulay = summarise_pulay_energy(results)
    if pulay:
        rows += [
            "\nEnergies need no Pulay correction: the 700-eV energy difference between two "
            "volumes of the FM test cell against the 1100-eV one (meV/atom), as computed (what "
            "the data uses) and with the term p n_fu ln(V_b/V_a) that would make energies "
            "consistent with the corrected stresses if GPAW's stress were the derivative of "
            "the fixed-cutoff energy (it is taken at a fixed number of plane waves):\n",
            "| cells | as computed | with the ln V term |",
            "|---|---|---|",
        ]
        for key, row in pulay.items():
            rows.append(
                f"| {key} | {row['fixed_cutoff_error_meV_per_atom']:.2f} "
                f"| {row['with_ln_volume_term_error_meV_per_atom']:.2f} |"
            )
    orientation = summarise_orientation(results)
    if orientation:
        rows += [
            "\nGPAW's energy depends on the crystal's orientation (the PAW exchange-correlation "
            "correction is integrated on an angular grid fixed in space; an anisotropic d shell "
            "such as Ni²⁺ feels it). The undistorted FM crystal at the protocol settings, energy "
            "per formula unit against the unturned 2-atom cell (meV), run as given and with the "
            "metal–oxygen bonds turned onto the axes (what the protocol does since this check, "
            "`align_bonds`):\n",
            "| cell | as given | bonds along the axes |",
            "|---|---|---|",
        ]
        for key, row in orientation.items():
            shown = ["–" if k not in row else f"{row[k]:.2f}" for k in ("as given", "aligned")]
            rows.append(f"| {key} | {shown[0]} | {shown[1]} |")
    corundum = summarise_corundum(results)
    if corundum:
        rows += [
            "\nCorundum Cr2O3 and Fe2O3 (10-atom cell): ordering energies of the ideal cell "
            "against FM (meV per formula unit; the ordering reads along the 3-fold axis) at "
            "the protocol's k-point density and a denser one; the ground state turned 30° about "
            "the 3-fold axis against its canonical orientation (meV/f.u.), as given and turned "
            "back by the labeller; the Pulay calibration p (eV per formula unit):\n",
            "```json",
            json.dumps(corundum, indent=1),
            "```",
        ]
    return "\n".join(rows)


def ordering_kpoints_table(results: dict) -> list[str]:
    """Markdown rows of :func:`summarise_ordering_kpoints` (none without its runs)."""
    orderings = summarise_ordering_kpoints(results)
    if not orderings:
        return []
    rows = [
        "| material, k-point density | AFM-I − FM (meV/f.u.) | AFM-II − FM (meV/f.u.) "
        "| FM afm1-4 − afm2-4 (meV/f.u.) | J1 S² (meV) | J2 S² (meV) | wall time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, row in orderings.items():
        rows.append(
            f"| {key} | {row['AFM-I']:.2f} | {row['AFM-II']:.2f} "
            f"| {row['fm_cell_difference_meV_per_fu']:.2f} | {row['J1S2_meV']:.3f} "
            f"| {row['J2S2_meV']:.3f} | {row['wall_s']:.0f} |"
        )
    return rows


def _protocol_check(frames: list, check_path: Path, other: str) -> str:
    """The same structures labelled with the protocol and with ``other`` settings, compared."""
    if not check_path.exists():
        return ""
    by_id = {a.info["structure_id"]: a for a in frames}
    pairs = [
        (by_id[a.info["structure_id"]], a)
        for a in read(check_path, index=":")
        if a.info["structure_id"] in by_id
    ]
    if not pairs:
        return ""
    offsets = np.array(
        [(a.get_potential_energy() - b.get_potential_energy()) / len(a) for a, b in pairs]
    )
    stress = max(np.abs(a.get_stress() - b.get_stress()).max() for a, b in pairs) / GPa
    forces = max(np.abs(a.get_forces() - b.get_forces()).max() for a, b in pairs)
    return (
        f"\n## Protocol cross-check: {other}\n\n{len(pairs)} structures labelled with both the "
        f"protocol and {other} (`{check_path.name}`): the energy "
        f"per atom differs by a constant {1000 * offsets.mean():.2f} meV/atom (spread "
        f"{1000 * np.ptp(offsets):.3f} meV/atom, which is what energy differences see); "
        f"stress differs by at most {stress:.3f} GPa, forces by at most {1000 * forces:.1f} meV/Å."
    )


def _statistics(frames: list) -> str:
    def row(name: str, values: np.ndarray, digits: int) -> str:
        low, mean, high = (f"{v:.{digits}f}" for v in (values.min(), values.mean(), values.max()))
        return f"| {name} | {low} | {mean} | {high} |"

    energies = np.array([a.get_potential_energy() / len(a) for a in frames])
    forces = np.concatenate([np.linalg.norm(a.get_forces(), axis=1) for a in frames])
    stresses = np.concatenate([a.get_stress()[:3] / GPa for a in frames])
    rows = [
        "| quantity | min | mean | max |",
        "|---|---|---|---|",
        row("energy per atom (eV)", energies, 3),
        row("force magnitude (eV/Å)", forces, 3),
        row("normal stress (GPa)", stresses, 2),
    ]
    by_element: dict[str, list[float]] = {}
    for atoms in frames:
        moments = atoms.get_magnetic_moments()
        for symbol, moment in zip(atoms.get_chemical_symbols(), moments, strict=True):
            by_element.setdefault(symbol, []).append(abs(moment))
    for symbol, values in sorted(by_element.items()):
        rows.append(row(f"converged moment magnitude, {symbol} (μB)", np.array(values), 2))
    return "\n".join(rows)


def _pairs(frames: list) -> int:
    """How many ordering partners are labelled together with their source frame."""
    ids = {a.info["structure_id"] for a in frames}
    return sum(a.info.get("partner_of") in ids for a in frames)


def _counts(frames: list, key) -> str:
    counter = Counter(key(a) for a in frames)
    rows = ["| | frames |", "|---|---|"]
    rows += [f"| {name} | {count} |" for name, count in sorted(counter.items())]
    return "\n".join(rows)


def write_card(data_dir: str | Path) -> str:
    """Build the card from ``data_dir`` and write it to ``data_dir/README.md``."""
    data_dir = Path(data_dir)
    structures = read(data_dir / "structures.extxyz", index=":")
    labelled_path = data_dir / "reference.extxyz"
    frames = read(labelled_path, index=":") if labelled_path.exists() else []
    rejected_file = rejected_path(labelled_path)
    rejected = read(rejected_file, index=":") if rejected_file.exists() else []
    wall = sum(a.info.get("dft_wall_s", 0.0) for a in frames + rejected)
    parts = [INTRO.format(total=len(structures)), "## Protocol\n", _protocol_table()]
    parts += [
        "\n## Convergence of the protocol\n",
        _convergence_table(data_dir / "convergence.json"),
    ]
    parts += [
        "\n## Progress\n",
        f"{len(frames)} of {len(structures)} structures labelled and accepted, "
        f"{len(rejected)} rejected; {wall / 3600:.1f} h wall time on 2 MPI ranks "
        f"({2 * wall / 3600:.1f} CPU-hours).",
    ]
    todo = unlabelled(structures, frames + rejected)
    remaining = estimated_hours(frames + rejected, todo)
    if todo and remaining is not None:
        parts.append(
            f"The {len(todo)} still to do need about {remaining:.1f} h more on this machine "
            "(each at the mean wall time of the labelled frames of its material and size)."
        )
    for atoms in rejected:
        parts.append(f"* rejected {atoms.info['structure_id']}: {atoms.info[STATUS]}")
    if frames:
        config = DataConfig(
            path=str(labelled_path),
            test_orderings=HELD_OUT_ORDERINGS,
            test_cells=HELD_OUT_CELLS,
            test_yardsticks=True,
        )
        parts += [
            "\n## Counts\n",
            "By material:\n",
            _counts(frames, lambda a: a.info["material"]),
            "\nBy ordering:\n",
            _counts(frames, lambda a: f"{a.info['material']} {a.info['ordering']}"),
            "\nBy cell (name: atoms):\n",
            _counts(frames, lambda a: a.info["cell_name"]),
            f"\nOrdering partners labelled together with their source: {_pairs(frames)}.",
            "\n## Statistics\n",
            _statistics(frames),
            "\n## Split\n",
            "Deterministic, by a hash of `structure_id` (stable as data is added): every "
            "AFM-III frame, every 16-atom `prim222-16` cell and every undistorted yardstick "
            "cell is test data (orderings and cells unseen in training); of the rest, 10 % is "
            "test and 10 % validation, an ordering partner always in its source's split "
            "(`spinmultinet_ase/train/dataset.py`).\n",
            _counts(frames, lambda a: split_of(a, config)),
        ]
    parts.append(
        _protocol_check(
            frames, data_dir / "protocol_check_900eV.extxyz", "900 eV and k-point density 2.0"
        )
    )
    parts.append(
        _protocol_check(frames, data_dir / "protocol_check_mno_k2.extxyz", "k-point density 2.0")
    )
    parts.append(
        _protocol_check(
            frames, data_dir / "protocol_check_nio_unaligned.extxyz", "NiO without bond alignment"
        )
    )
    yardsticks = data_dir / "yardsticks.json"
    if yardsticks.exists():
        parts += ["\n## Yardsticks\n", "```json", yardsticks.read_text().strip(), "```"]
    text = "\n".join(parts) + "\n"
    write_text_atomic(data_dir / "README.md", text)
    return text
