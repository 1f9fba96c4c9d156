"""The data card (``data/README.md``) counts what the labelling outputs hold, per material."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from spinmultinet_ase.dft.label import STATUS, STATUS_OK, rejected_path
from spinmultinet_ase.reference.data_card import INTRO, write_card
from spinmultinet_ase.train.config import DataConfig

HOUR = 3600.0


def _structure(material: str, index: int, ordering: str) -> Atoms:
    atoms = bulk(material, "rocksalt", a=4.4, cubic=True)
    atoms.rattle(0.02, seed=index)
    atoms.set_initial_magnetic_moments([4.0 if s != "O" else 0.0 for s in atoms.symbols])
    atoms.info.update(
        structure_id=f"{material}-{index}", material=material, ordering=ordering, cell_name="c-8"
    )
    return atoms


def _labelled(atoms: Atoms, status: str) -> Atoms:
    frame = atoms.copy()
    frame.info.update({STATUS: status, "dft_wall_s": HOUR})
    n = len(frame)
    rng = np.random.default_rng(len(frame.info["structure_id"]))
    frame.calc = SinglePointCalculator(
        frame,
        energy=-7.0 * n,
        forces=rng.normal(size=(n, 3)),
        stress=rng.normal(size=6) * 0.01,
        magmoms=frame.get_initial_magnetic_moments() * 0.9,
    )
    return frame


def _progress_row(text: str, material: str) -> list[str]:
    section = text.split("## Progress")[1].split("## Rejected")[0]
    (line,) = [row for row in section.splitlines() if row.startswith(f"| {material} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_card_counts_each_material_from_its_files(tmp_path):
    """MnO with accepted, rejected and a torn last frame (and a round of a campaign), NiO with
    only rejected frames, FeO designed but never run, CoO named without any file: the card's
    counts equal the counts of the frames written here, and no listed material is left out."""
    designed = {
        "MnO": [_structure("MnO", i, "FM" if i % 2 else "AFM-II") for i in range(6)],
        "NiO": [_structure("NiO", i, "FM") for i in range(3)],
        "FeO": [_structure("FeO", i, "AFM-II") for i in range(2)],
    }
    for material, frames in designed.items():
        write(tmp_path / f"structures_{material}.extxyz", frames)
    mno = designed["MnO"]
    accepted = {"reference_MnO": [_labelled(a, STATUS_OK) for a in mno[:3]]}
    rejected = {
        "reference_MnO": [_labelled(mno[4], "not converged in 300 SCF steps")],
        "reference_NiO": [
            _labelled(a, f"wrong magnetic state: moment of atom 0 (Ni) flipped sign to -{i}")
            for i, a in enumerate(designed["NiO"][:2])
        ],
    }
    for name, frames in accepted.items():
        write(tmp_path / f"{name}.extxyz", frames)
    for name, frames in rejected.items():
        write(rejected_path(tmp_path / f"{name}.extxyz"), frames)
    # a labeller killed while appending MnO-3: half a frame at the end of the file
    torn = io.StringIO()
    write(torn, _labelled(mno[3], STATUS_OK), format="extxyz")
    with open(tmp_path / "reference_MnO.extxyz", "a") as handle:
        handle.write(torn.getvalue()[: len(torn.getvalue()) // 2])
    round_dir = tmp_path / "active_MnO" / "run" / "round_1"
    round_dir.mkdir(parents=True)
    write(round_dir / "candidates.extxyz", [mno[5]])
    round_frames = [_labelled(mno[5], STATUS_OK)]
    write(round_dir / "labelled.extxyz", round_frames)

    paths = [tmp_path / f"reference_{m}.extxyz" for m in designed] + [round_dir / "labelled.extxyz"]
    data = DataConfig(path=tuple(map(str, paths)), materials=("MnO", "NiO", "FeO", "CoO"))
    text = write_card(tmp_path, data)
    assert (tmp_path / "README.md").read_text() == text

    all_accepted = [a for frames in accepted.values() for a in frames] + round_frames
    all_rejected = [a for frames in rejected.values() for a in frames]
    for material in ("MnO", "NiO", "FeO", "CoO"):
        ids = {a.info["structure_id"] for a in designed.get(material, [])}
        done = {a.info["structure_id"] for a in all_accepted + all_rejected}
        n_accepted = sum(a.info["material"] == material for a in all_accepted)
        n_rejected = sum(a.info["material"] == material for a in all_rejected)
        row = _progress_row(text, material)
        assert row[1:5] == [str(len(ids)), str(n_accepted), str(n_rejected), str(len(ids - done))]
        assert float(row[5]) == (n_accepted + n_rejected) * 1.0  # hours, one per run
    assert _progress_row(text, "MnO")[1:5] == ["6", "4", "1", "1"]  # MnO-3 torn: not run
    assert _progress_row(text, "FeO")[-1] == "`reference_FeO.extxyz`"
    assert _progress_row(text, "CoO")[-1] == "none yet"

    files = text.split("## Files")[1].split("## Progress")[0]
    assert "| `reference_MnO.extxyz` | `structures_MnO.extxyz` | MnO | 3 | 1 | 6 |" in files
    assert "| `reference_NiO.extxyz` | `structures_NiO.extxyz` | NiO | 0 | 2 | 3 |" in files
    assert "| `reference_FeO.extxyz` | `structures_FeO.extxyz` | FeO | not written yet |" in files

    reasons = Counter((a.info["material"], a.info[STATUS].split(":")[0]) for a in all_rejected)
    section = text.split("## Rejected")[1].split("## Counts")[0]
    for (material, reason), count in reasons.items():
        assert f"| {material} | {reason} | {count} |" in section
    for atoms in all_rejected:
        assert f"{atoms.info['structure_id']}: {atoms.info[STATUS]}" in section

    orderings = Counter(f"{a.info['material']} {a.info['ordering']}" for a in all_accepted)
    counts = text.split("## Counts")[1].split("## Statistics")[0]
    for key, count in orderings.items():
        assert f"| {key} | {count} |" in counts
    assert "NiO" not in counts and "FeO" not in counts  # no accepted frame
    assert "MnO-3" not in text.split("## Rejected")[1]
    assert (
        Path(tmp_path / "reference_MnO.extxyz")
        .read_text()
        .endswith(torn.getvalue()[: len(torn.getvalue()) // 2])
    )  # the card reads, never repairs


def test_the_shipped_card_starts_with_what_write_card_writes():
    """``data/README.md`` is written, not edited: its text above the tables is ``INTRO`` (a
    hand edit there is lost the next time the card is written)."""
    shipped = Path(__file__).parents[1] / "data" / "README.md"
    assert shipped.read_text(encoding="utf-8").startswith(INTRO)
