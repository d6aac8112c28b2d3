"""Typed access to what the database gives a row.

The models type an integer primary key `int | None`: a new row has none until its flush. Code that
holds a row known to be in the database (loaded, or added and flushed) reads the key through
`row_id`, which narrows it once instead of every caller asserting or ignoring the type."""

from __future__ import annotations

from typing import Protocol


class Row(Protocol):
    @property
    def id(self) -> int | None: ...


def row_id(row: Row) -> int:
    """The primary key of a row that is in the database; reading it before the flush is a bug."""
    if row.id is None:
        raise RuntimeError(f"{type(row).__name__} has no id yet: flush it first")
    return row.id
