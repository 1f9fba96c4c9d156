"""Which labelled frames share one geometry: a source frame and its ordering partners.

An ordering partner is the source's geometry with the moments of another spin ordering; its
``info['partner_of']`` names the source's ``info['structure_id']``. The labeller's check of
electronic states, the data splits and the evaluation all group frames by this one id.
"""

from __future__ import annotations

from typing import Final

from ase import Atoms

STRUCTURE_ID: Final[str] = "structure_id"  # info: a frame's id, unique within a data set
PARTNER_OF: Final[str] = "partner_of"  # info: the structure_id of the partner's source


def geometry_of(atoms: Atoms) -> str:
    """The id of a frame's geometry: its source's ``structure_id`` for an ordering partner,
    else its own."""
    return atoms.info.get(PARTNER_OF, atoms.info[STRUCTURE_ID])
