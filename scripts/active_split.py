"""The inputs of a prospective active-learning campaign for one material (``spinmultinet
active-learn configs/active_MATERIAL.yaml``), from its designed structures.

From ``data/structures_MATERIAL.extxyz`` (its yardstick cells, ``info['yardstick']``, first)
and their labels in ``data/reference_MATERIAL.extxyz``, into ``data/active_MATERIAL/``:

* ``test_structures.extxyz``: :data:`TEST_SIZE` non-yardstick structures drawn at random
  (seed :data:`SEED`) among those with no ordering partner (``info['partner_of']``), so no
  geometry of the test is also in the pool;
* ``pool.extxyz``: every other non-yardstick structure;
* ``initial.extxyz``: the labelled yardstick frames with ``rhombohedral_strain`` ≠ 0 (the
  starting committee's training data);
* with ``--test``, once every test structure is labelled or rejected
  (``test_labelled.extxyz``, by ``spinmultinet label``): ``test.extxyz``, the labelled ideal
  yardstick cells (``rhombohedral_strain`` 0: the learning curve's ordering-energy yardstick)
  followed by the labelled test structures.

Deterministic; rerunning writes nothing new, and an existing file with other content is
never replaced (one-line error).

Usage: python scripts/active_split.py MATERIAL [--test]   (from the repository root)
"""

from __future__ import annotations

import argparse
import io
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

from spinmultinet_ase.data.partners import geometry_of
from spinmultinet_ase.dft.label import STRUCTURE_ID, read_output, rejected_path
from spinmultinet_ase.outputs import write_text_atomic

TEST_SIZE = 8
SEED = 0


def _ids(frames: Sequence[Atoms]) -> list[str]:
    return [atoms.info[STRUCTURE_ID] for atoms in frames]


def _is_yardstick(atoms: Atoms) -> bool:
    return bool(atoms.info.get("yardstick", False))


def _write_checked(path: Path, frames: Sequence[Atoms]) -> None:
    """Write ``frames`` to ``path`` (extxyz) unless it exists.

    Raises:
        ValueError: it exists with other content.
    """
    text = io.StringIO()
    write(text, list(frames), format="extxyz")
    if path.is_file():
        if path.read_text(encoding="utf-8") != text.getvalue():
            raise ValueError(f"{path} exists with other content; not overwritten (remove it)")
        return
    write_text_atomic(path, text.getvalue())


def _labelled(path: Path) -> tuple[dict[str, Atoms], set[str]]:
    """The accepted frames of the labelling output ``path`` by id, and the rejected ids."""
    accepted = {atoms.info[STRUCTURE_ID]: atoms for atoms in read_output(path)[0]}
    rejected = set(_ids(read_output(rejected_path(path))[0]))
    return accepted, rejected


def _labelled_yardsticks(structures: Sequence[Atoms], reference: Path) -> list[Atoms]:
    """The accepted labels of the yardstick cells among ``structures``, in their order.

    Raises:
        ValueError: a yardstick cell is neither labelled nor rejected yet.
    """
    accepted, rejected = _labelled(reference)
    wanted = _ids([atoms for atoms in structures if _is_yardstick(atoms)])
    missing = [sid for sid in wanted if sid not in accepted and sid not in rejected]
    if missing:
        raise ValueError(
            f"{len(missing)} of the {len(wanted)} yardstick cells are not labelled in "
            f"{reference} yet (first: {missing[0]}); label them first"
        )
    return [accepted[sid] for sid in wanted if sid in accepted]


def split(material: str, data: Path = Path("data")) -> Path:
    """Write the test structures, pool and initial data of ``material``; their folder.

    Raises:
        FileNotFoundError: the structures file does not exist.
        ValueError: fewer than :data:`TEST_SIZE` structures without a partner, an unlabelled
            yardstick cell, or an existing file with other content.
    """
    path = data / f"structures_{material}.extxyz"
    if not path.is_file():
        raise FileNotFoundError(f"no designed structures at {path}")
    structures = read(path, ":")
    designed = [atoms for atoms in structures if not _is_yardstick(atoms)]
    sizes = Counter(geometry_of(atoms) for atoms in designed)
    alone = [i for i, atoms in enumerate(designed) if sizes[geometry_of(atoms)] == 1]
    if len(alone) < TEST_SIZE:
        raise ValueError(f"{path}: {len(alone)} structures without a partner, {TEST_SIZE} needed")
    chosen = set(np.random.default_rng(SEED).choice(alone, TEST_SIZE, replace=False).tolist())
    yardsticks = _labelled_yardsticks(structures, data / f"reference_{material}.extxyz")
    folder = data / f"active_{material}"
    folder.mkdir(parents=True, exist_ok=True)
    outputs = {
        "test_structures.extxyz": [a for i, a in enumerate(designed) if i in chosen],
        "pool.extxyz": [a for i, a in enumerate(designed) if i not in chosen],
        "initial.extxyz": [a for a in yardsticks if a.info["rhombohedral_strain"] != 0],
    }
    for name, frames in outputs.items():
        _write_checked(folder / name, frames)
    return folder


def write_test_file(material: str, data: Path = Path("data")) -> Path:
    """Write ``test.extxyz`` of ``material`` (after :func:`split` and the labelling of its
    test structures into ``test_labelled.extxyz``); its path.

    Raises:
        ValueError: a test structure is neither labelled nor rejected yet, or ``test.extxyz``
            exists with other content.
    """
    folder = data / f"active_{material}"
    wanted = _ids(read(folder / "test_structures.extxyz", ":"))
    accepted, rejected = _labelled(folder / "test_labelled.extxyz")
    missing = [sid for sid in wanted if sid not in accepted and sid not in rejected]
    if missing:
        raise ValueError(
            f"{len(missing)} of the {len(wanted)} test structures are not labelled in "
            f"{folder / 'test_labelled.extxyz'} yet; label them first"
        )
    structures = read(data / f"structures_{material}.extxyz", ":")
    yardsticks = _labelled_yardsticks(structures, data / f"reference_{material}.extxyz")
    ideal = [a for a in yardsticks if a.info["rhombohedral_strain"] == 0]
    path = folder / "test.extxyz"
    _write_checked(path, ideal + [accepted[sid] for sid in wanted if sid in accepted])
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("material", help="e.g. CoO: data/structures_CoO.extxyz")
    parser.add_argument(
        "--test", action="store_true", help="write test.extxyz from the labelled test structures"
    )
    args = parser.parse_args(argv)
    try:
        out = write_test_file(args.material) if args.test else split(args.material)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{out}: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
