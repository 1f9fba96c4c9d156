"""The dataset card (``data/README.md``), written from the data files themselves."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read
from ase.units import GPa

from spinmultinet_ase.dft.label import (
    STATUS,
    STRUCTURE_ID,
    estimated_hours,
    read_output,
    rejected_path,
)
from spinmultinet_ase.dft.protocol import DEFAULT_PROTOCOL
from spinmultinet_ase.materials import reduced_formula
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

# The training config whose ``data.path`` files the card reports on, relative to the
# repository root: the oxide-family model's, which lists every reference file.
CARD_CONFIG = "configs/default_oxides.yaml"

INTRO = """# Reference data: MnO, FeO, CoO, NiO, Cr2O3, Fe2O3 (GPAW spin-polarised PBE+U)

Rocksalt MnO, FeO, CoO, NiO and corundum Cr2O3, α-Fe2O3, with collinear spins.

Written by `spinmultinet data-card data/ --overwrite` from the files in this folder; rerun
it after labelling more. The labelled files it reports on are the `data.path` list of
`configs/default_oxides.yaml` (the oxide-family model's training data; `--config` names
another), each with its rejected frames and the structures it was labelled from beside it;
the tables below count them per material, a material with no labelled frame included.
Everything here was computed on this project's 2-core machine.

* `structures*.extxyz`: the structures to label, with `initial_magmoms` set as a user would
  guess them (nominal moments, e.g. ±5 μB on Mn, ±2 μB on Ni, each off by up to ±40 %; 0 on
  O) and `info` saying how each was made (material, cell, ordering, strains, rattle).
  Ordering partners (`info['partner_of']`) repeat a frame's geometry with another ordering,
  so each pair's energy difference is purely magnetic. `structures.extxyz` (MnO, NiO) is in
  labelling order: the yardsticks, the pool interleaved at random (so what is labelled at any
  time is balanced), and last the AFM-III and 16-atom frames the split keeps out of training.
* `reference*.extxyz`: the labelled frames that passed the checks, one file per
  `structures*.extxyz` (`reference.extxyz` from `structures.extxyz`, `reference_X.extxyz`
  from `structures_X.extxyz`): `energy`, `free_energy` (eV), `forces` (eV/Å), `stress`
  (eV/Å³, ASE sign), `initial_magmoms` (the guess, the model's input) and `magmoms`
  (converged DFT moments, training targets only), plus the protocol and GPAW version in each
  frame's `info`. `reference_orderings_*.extxyz`: the ordering-diversity pool of the rocksalt
  materials (`docs/ordering_data.md`).
* `*.rejected.extxyz`, beside each labelled file: runs kept out of training (not converged,
  within the protocol's SCF limit or an active-learning campaign's labelling budget,
  `max_scf_steps`; converged to another magnetic state than the one asked for: a flipped sign
  or a collapsed moment, another electronic state, or GPAW failed on the structure), each
  with the reason in `info['dft_status']`.
* `active_MATERIAL/`: a prospective active-learning campaign (`docs/corundum_learning.md`):
  `test_labelled.extxyz` from `test_structures.extxyz`, and each round's
  `run/round_K/labelled.extxyz` from the structures its committee picked,
  `run/round_K/candidates.extxyz`. Such a campaign labels only what its committee picks from
  its pool, so most designed FeO and CoO structures are never meant to run.
* FeO and CoO have several DFT+U states (Fe²⁺ d⁶ and Co²⁺ d⁷ are orbitally degenerate);
  every frame starts with an orbital bias that fills the trigonal target orbitals (Fe a1g,
  Co e_g' about the AFM-II 3-fold axis), released after the first SCF steps (then with capped
  MSR1 mixing), and frames that end elsewhere (gap < 0.25 eV, fractional occupations,
  or 0.3 eV/f.u. above an ordering partner; CoO also with its target pair not filled, while
  FeO's electron may end in any whole orbital) are rejected: `data/studies/feo_coo_states.md`,
  `spinmultinet_ase/dft/states.py`. Corundum Cr2O3 and Fe2O3: `docs/corundum_data.md`.
* `gpaw_logs/`: one GPAW text log per structure. `labelling.log`: the labelling progress.
* Labelling resumes: `spinmultinet label` appends each frame atomically (a kill loses at most
  the frame being computed), skips the structure ids already in either file (a frame whose GPAW
  failure aborted the MPI job is recorded in `reference.extxyz.failures` and moved to the
  rejected file by the next run, which removes that record), and refuses to
  continue a file labelled with another protocol. Every input is checked before the first
  GPAW run (`docs/conventions.md`, Output files). A torn last frame (a file read while a
  frame is written) is not counted here.
* `protocol_check_900eV.extxyz`: the first frames, labelled at 900 eV and k-point density 2.0
  before the protocol moved to 700 eV + Pulay correction and 2.5; kept as a cross-check
  (below: its spread is the FM MnO k-point error of one cell at 2.0, see the cross-cell table).
* `protocol_check_mno_k2.extxyz`: the MnO yardsticks at k-point density 2.0, before the
  protocol moved to 2.5 (half-metallic FM MnO needs it: the cross-cell check below).
* `protocol_check_nio_unaligned.extxyz`: the NiO frames labelled before the protocol turned
  each structure so its metal–oxygen bonds lie along the axes (the orientation check below);
  relabelled since. MnO frames from before the change are kept: MnO's energy hardly depends
  on orientation (same table).
* `protocol_check_coo_default_mixer.extxyz`: the CoO frames labelled with GPAW's default
  mixer, before CoO took FeO's capped MSR1 (`data/studies/feo_coo_states.md`, "The rule for
  CoO"): the yardstick cells and the campaign's test structures, relabelled under capped
  MSR1 into `reference_CoO.extxyz` and `active_CoO/`; their GPAW logs are in
  `protocol_check_coo_default_mixer_logs/` (yardstick cells) and
  `studies/active_CoO_default_mixer/gpaw_logs/` (test structures).
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
nohup bash scripts/label_reference_data.sh Cr2O3 Fe2O3 > /dev/null 2>&1 &  # other materials
nohup bash scripts/label_reference_data.sh --until 16 FeO > /dev/null 2>&1 &  # yardsticks
nohup bash scripts/label_reference_data.sh --until 16 CoO > /dev/null 2>&1 &
nohup bash scripts/label_reference_data.sh --orderings MnO NiO > /dev/null 2>&1 &
setsid nohup bash scripts/active_learning.sh CoO > /dev/null 2>&1 &  # after its yardsticks
setsid nohup bash scripts/active_learning.sh FeO > /dev/null 2>&1 &
spinmultinet structures data/structures_FeO_strains.extxyz --materials FeO \\
    --rhombohedral-strains -0.06 -0.05 -0.04   # FeO's E(δ) beyond the reference strains
mpiexec -n 2 spinmultinet label data/structures_FeO_strains.extxyz \\
    data/reference_FeO_strains.extxyz --log-dir data/gpaw_logs
spinmultinet yardsticks data/reference.extxyz data/reference_FeO.extxyz \\
    data/reference_FeO_strains.extxyz data/reference_CoO.extxyz \\
    data/reference_Cr2O3_Fe2O3.extxyz data/yardsticks.json \\
    --overwrite --materials MnO FeO CoO NiO Cr2O3 Fe2O3  # names those with no yardstick frames yet
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


def ordering_kpoints_table(results: dict, materials: Collection[str] | None = None) -> list[str]:
    """Markdown rows of :func:`summarise_ordering_kpoints` (none without its runs), of
    ``materials`` only if given."""
    orderings = {
        key: row
        for key, row in summarise_ordering_kpoints(results).items()
        if materials is None or key.split()[0] in materials
    }
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


def labelled_from(output: Path) -> Path:
    """The structures file the labelling output ``output`` was labelled from, by the names the
    labelling scripts give them: ``reference[_X].extxyz`` from ``structures[_X].extxyz``
    (``scripts/label_reference_data.sh``), a campaign's ``test_labelled.extxyz`` from
    ``test_structures.extxyz`` (``scripts/active_learning.sh``) and a round's
    ``labelled.extxyz`` from ``candidates.extxyz`` (``train/active.py``).

    Raises:
        ValueError: ``output`` is named by none of these rules.
    """
    name = output.name
    if name.startswith("reference"):
        return output.with_name("structures" + name.removeprefix("reference"))
    if name == "test_labelled.extxyz":
        return output.with_name("test_structures.extxyz")
    if name == "labelled.extxyz":
        return output.with_name("candidates.extxyz")
    raise ValueError(f"{output}: no rule says which structures file it was labelled from")


@dataclass(frozen=True)
class LabelledFile:
    """One labelling output as it stands: its accepted and rejected frames and its inputs."""

    output: Path
    structures: Path
    accepted: list[Atoms]
    rejected: list[Atoms]
    designed: list[Atoms]

    @classmethod
    def read(cls, output: Path) -> LabelledFile:
        """Read through :func:`~spinmultinet_ase.dft.label.read_output` (a torn last frame,
        a writer's unfinished append, is left out; a missing file has no frames)."""
        structures = labelled_from(output)
        return cls(
            output,
            structures,
            read_output(output)[0],
            read_output(rejected_path(output))[0],
            read_output(structures)[0],
        )


def material_of(atoms: Atoms) -> str:
    """``info['material']``, else the reduced formula."""
    return atoms.info.get("material") or reduced_formula(atoms)


def rejection_kind(status: str) -> str:
    """The kind of a rejection: its ``dft_status`` up to the first colon."""
    return status.partition(":")[0].strip()


def _shown(path: Path, data_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(data_dir.resolve()))
    except ValueError:
        return str(path)


def _by_id(frames: Iterable[Atoms]) -> dict[str, Atoms]:
    return {atoms.info[STRUCTURE_ID]: atoms for atoms in frames}


def _files_table(files: Sequence[LabelledFile], data_dir: Path) -> str:
    rows = [
        "| labelled file | labelled from | materials | accepted | rejected | structures |",
        "|---|---|---|---|---|---|",
    ]
    for f in files:
        present = f.output.exists() or rejected_path(f.output).exists()
        materials = sorted({material_of(a) for a in f.designed + f.accepted + f.rejected})
        rows.append(
            f"| `{_shown(f.output, data_dir)}` | `{_shown(f.structures, data_dir)}` "
            f"| {', '.join(materials) or '–'} "
            f"| {len(f.accepted) if present else 'not written yet'} | {len(f.rejected)} "
            f"| {len(f.designed) if f.structures.exists() else 'not written yet'} |"
        )
    return "\n".join(rows)


def _progress(files: Sequence[LabelledFile], materials: Sequence[str], data_dir: Path) -> str:
    """Per material: structures designed, labelled, rejected and not run, wall time, files."""
    accepted = _by_id(a for f in files for a in f.accepted)
    rejected = _by_id(a for f in files for a in f.rejected)
    designed = _by_id(a for f in files for a in f.designed)
    done = list(accepted.values()) + list(rejected.values())
    rows = [
        "| material | designed | labelled | rejected | not run | DFT wall time (h) "
        "| not run, estimated (h) | files |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for material in materials:
        mine = [a for a in done if material_of(a) == material]
        todo = [
            a
            for i, a in designed.items()
            if material_of(a) == material and i not in accepted and i not in rejected
        ]
        holding = [
            f
            for f in files
            if any(material_of(a) == material for a in f.accepted + f.rejected + f.designed)
        ]
        hours = estimated_hours(done, todo) if todo else 0.0
        wall = sum(a.info.get("dft_wall_s", 0.0) for a in mine) / 3600
        rows.append(
            f"| {material} | {sum(material_of(a) == material for a in designed.values())} "
            f"| {sum(material_of(a) == material for a in accepted.values())} "
            f"| {sum(material_of(a) == material for a in rejected.values())} | {len(todo)} "
            f"| {wall:.1f} | {'–' if hours is None else f'{hours:.1f}'} "
            f"| {', '.join(f'`{_shown(f.output, data_dir)}`' for f in holding) or 'none yet'} |"
        )
    total = sum(a.info.get("dft_wall_s", 0.0) for a in done) / 3600
    lines = [
        "Distinct structure ids over all the files; labelled: accepted into training data; "
        "not run: designed, neither labelled nor rejected (an active-learning pool's "
        "structures are designed, but only those its committee picks run). Estimates: each "
        "structure at the mean wall time of the labelled frames of its material and size "
        "(`dft/label.py` `estimated_hours`).\n",
        "\n".join(rows),
        f"\nIn all {len(accepted)} frames labelled, {len(rejected)} rejected; {total:.1f} h wall "
        f"time on 2 MPI ranks ({2 * total:.1f} CPU-hours).",
    ]
    holders = Counter(i for f in files for i in _by_id(f.accepted))
    repeated = sorted(i for i, count in holders.items() if count > 1)
    if repeated:
        lines.append(f"Labelled in more than one file: {', '.join(repeated)}.")
    return "\n".join(lines)


def _rejections(files: Sequence[LabelledFile], data_dir: Path) -> str:
    """The rejected frames: counted by material and kind, then each with its reason."""
    frames = [(f, a) for f in files for a in f.rejected]
    if not frames:
        return "None."
    lines = [
        _counts(
            [a for _, a in frames],
            lambda a: f"{material_of(a)} | {rejection_kind(a.info[STATUS])}",
            header="| material | reason | frames |\n|---|---|---|",
        ),
        "",
    ]
    lines += [
        f"* `{_shown(rejected_path(f.output), data_dir)}` {a.info[STRUCTURE_ID]}: {a.info[STATUS]}"
        for f, a in frames
    ]
    return "\n".join(lines)


def _statistics(frames: list[Atoms]) -> str:
    def row(name: str, values: np.ndarray, digits: int) -> str:
        low, mean, high = (f"{v:.{digits}f}" for v in (values.min(), values.mean(), values.max()))
        return f"| {name} | {low} | {mean} | {high} |"

    rows = ["| quantity | min | mean | max |", "|---|---|---|---|"]
    by_material: dict[str, list[Atoms]] = {}
    for atoms in frames:
        by_material.setdefault(material_of(atoms), []).append(atoms)
    for material, mine in by_material.items():
        energies = np.array([a.get_potential_energy() / len(a) for a in mine])
        forces = np.concatenate([np.linalg.norm(a.get_forces(), axis=1) for a in mine])
        stresses = np.concatenate([a.get_stress()[:3] / GPa for a in mine])
        rows += [
            row(f"{material} energy per atom (eV)", energies, 3),
            row(f"{material} force magnitude (eV/Å)", forces, 3),
            row(f"{material} normal stress (GPa)", stresses, 2),
        ]
        by_element: dict[str, list[float]] = {}
        for atoms in mine:
            moments = atoms.get_magnetic_moments()
            for symbol, moment in zip(atoms.get_chemical_symbols(), moments, strict=True):
                by_element.setdefault(symbol, []).append(abs(moment))
        for symbol, values in sorted(by_element.items()):
            rows.append(
                row(f"{material} converged moment magnitude, {symbol} (μB)", np.array(values), 2)
            )
    return "\n".join(rows)


def _pairs(frames: list[Atoms]) -> int:
    """How many ordering partners are labelled together with their source frame."""
    ids = {a.info[STRUCTURE_ID] for a in frames}
    return sum(a.info.get("partner_of") in ids for a in frames)


def _counts(
    frames: list[Atoms], key: Callable[[Atoms], str], header: str = "| | frames |\n|---|---|"
) -> str:
    counter = Counter(key(a) for a in frames)
    rows = [header]
    rows += [f"| {name} | {count} |" for name, count in sorted(counter.items())]
    return "\n".join(rows)


def write_card(data_dir: str | Path, data: DataConfig) -> str:
    """Build the card of the labelled files ``data.paths`` and write it to
    ``data_dir/README.md``.

    Each file's rejected frames (``rejected_path``) and the structures it was labelled from
    (:func:`labelled_from`) are read beside it; a file not written yet counts no frames. The
    tables cover every material of ``data.materials`` (listed with none where the files hold
    none) and any other material the files hold; the split follows ``data``'s rules.
    ``data_dir`` holds the convergence study, the yardsticks and the protocol cross-checks.
    """
    data_dir = Path(data_dir)
    files = [LabelledFile.read(Path(p)) for p in data.paths]
    frames = list(_by_id(a for f in files for a in f.accepted).values())
    materials = list(data.materials)
    for f in files:
        for atoms in f.designed + f.accepted + f.rejected:
            if material_of(atoms) not in materials:
                materials.append(material_of(atoms))
    parts = [INTRO, "## Protocol\n", _protocol_table()]
    parts += [
        "\n## Convergence of the protocol\n",
        _convergence_table(data_dir / "convergence.json"),
    ]
    parts += [
        "\n## Files\n",
        _files_table(files, data_dir),
        "\n## Progress\n",
        _progress(files, materials, data_dir),
        "\n## Rejected\n",
        _rejections(files, data_dir),
    ]
    if frames:
        parts += [
            "\n## Counts\n",
            "Labelled frames by material and ordering:\n",
            _counts(frames, lambda a: f"{material_of(a)} {a.info.get('ordering', '–')}"),
            "\nBy material and cell (name: atoms):\n",
            _counts(frames, lambda a: f"{material_of(a)} {a.info.get('cell_name', '–')}"),
            f"\nOrdering partners labelled together with their source: {_pairs(frames)}.",
            "\n## Statistics\n",
            _statistics(frames),
            "\n## Split\n",
            f"Deterministic, by a hash of `structure_id` (stable as data is added): every frame "
            f"of the orderings {', '.join(data.test_orderings) or '(none)'} and of the cells "
            f"{', '.join(data.test_cells) or '(none)'}"
            + (", and every undistorted yardstick cell" if data.test_yardsticks else "")
            + f", is test data (orderings and cells unseen in training); of the rest, "
            f"{100 * data.test_fraction:g} % is test and {100 * data.validation_fraction:g} % "
            "validation, an ordering partner always in its source's split "
            "(`spinmultinet_ase/train/dataset.py`).\n",
            _counts(frames, lambda a: f"{material_of(a)} {split_of(a, data)}"),
        ]
    for name, other in (
        ("protocol_check_900eV.extxyz", "900 eV and k-point density 2.0"),
        ("protocol_check_mno_k2.extxyz", "k-point density 2.0"),
        ("protocol_check_nio_unaligned.extxyz", "NiO without bond alignment"),
        ("protocol_check_coo_default_mixer.extxyz", "CoO with GPAW's default mixer"),
    ):
        parts.append(_protocol_check(frames, data_dir / name, other))
    yardsticks = data_dir / "yardsticks.json"
    if yardsticks.exists():
        parts += ["\n## Yardsticks\n", "```json", yardsticks.read_text().strip(), "```"]
    text = "\n".join(parts) + "\n"
    write_text_atomic(data_dir / "README.md", text)
    return text
