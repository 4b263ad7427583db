"""loopline's own columns, in the lake and in every frame it builds beside a model's features.

A user's columns may be called anything a spec accepts, ``entity_id``, ``label``,
``partition_date`` and ``_run_id`` included: loopline's own names begin with U+001F (the ASCII
unit separator), a control character no spec name may hold (``loopline.core.spec`` refuses
them), so the two can never collide. Lake files written before this layout carry the old plain
names; :func:`upgrade` renames them as they are read (such a file has no feature that collides
with them: the specs of that time refused those names).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

MARK = "\x1f"
ENTITY_ID = f"{MARK}entity_id"
EVENT_TS = f"{MARK}event_ts"
PARTITION_DATE = f"{MARK}partition_date"
LABEL = f"{MARK}label"
SOURCE_FILE = f"{MARK}source_file"
ROW_NUMBER = f"{MARK}row_number"
RUN_ID = f"{MARK}run_id"
LINEAGE = (SOURCE_FILE, ROW_NUMBER, RUN_ID)
# The plain names of the first layout (lake files, holdout frames of earlier training runs).
OLD_NAMES = {
    "entity_id": ENTITY_ID,
    "event_ts": EVENT_TS,
    "partition_date": PARTITION_DATE,
    "label": LABEL,
    "_source_file": SOURCE_FILE,
    "_row_number": ROW_NUMBER,
    "_run_id": RUN_ID,
}


def is_own(name: str) -> bool:
    return name.startswith(MARK)


def readable(name: str) -> str:
    """A column's name for people: an own column without its mark."""
    return name.removeprefix(MARK)


def old_clean_file(names: Iterable[str]) -> bool:
    """Whether a clean lake file is of the first layout: its lineage under the plain name."""
    names = list(names)
    return "_run_id" in names and not any(is_own(n) for n in names)


def old_frame(names: Iterable[str]) -> bool:
    """Whether a labelled frame (a training run's holdout) is of the first layout."""
    names = list(names)
    return {"label", "partition_date"} <= set(names) and not any(is_own(n) for n in names)


def reading_plan(
    columns: list[str] | None, present: list[str]
) -> tuple[list[str] | None, dict[str, str]]:
    """To get ``columns`` (all when None) with today's names from a clean file whose columns
    are ``present``: the names to read, and the renames that follow (none for a current file)."""
    if not old_clean_file(present):
        return columns, {}
    back = {new: old for old, new in OLD_NAMES.items()}
    wanted = None if columns is None else [back.get(c, c) for c in columns]
    read = present if wanted is None else wanted
    return wanted, {old: OLD_NAMES[old] for old in read if old in OLD_NAMES}


def upgrade(frame: pd.DataFrame) -> pd.DataFrame:
    """A labelled frame of the first layout with today's names (unchanged if current)."""
    return frame.rename(columns=OLD_NAMES) if old_frame(frame.columns) else frame
