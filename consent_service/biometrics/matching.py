"""1:N identification against the gallery: a strict distance plus a margin to the runner-up."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Gallery:
    """Embeddings of one modality and model, sorted by subject, with where each subject starts."""

    version: int
    vectors: np.ndarray  # (n, d)
    subject_ids: np.ndarray  # (n,), sorted

    @classmethod
    def build(cls, version: int, rows: list[tuple[int, np.ndarray]], dim: int = 128) -> Gallery:
        if not rows:
            return cls(version, np.empty((0, dim)), np.empty(0, dtype=np.int64))
        rows = sorted(rows, key=lambda r: r[0])
        return cls(
            version, np.vstack([v for _, v in rows]), np.array([s for s, _ in rows], dtype=np.int64)
        )

    def __len__(self) -> int:
        return len(self.subject_ids)


@dataclass(frozen=True)
class Match:
    subject_id: int | None  # set only for a clear match
    ambiguous: bool = False


def identify(
    gallery: Gallery,
    embedding: np.ndarray,
    tolerance: float,
    margin: float,
    exclude_subject: int | None = None,
) -> Match:
    """The subject whose nearest template is within `tolerance` and beats every other subject's
    nearest template by at least `margin`; `ambiguous` when a second subject is that close."""
    if len(gallery) == 0:
        return Match(None)
    distances = np.linalg.norm(gallery.vectors - embedding, axis=1)
    subjects, starts = np.unique(gallery.subject_ids, return_index=True)
    per_subject = np.minimum.reduceat(distances, starts)
    if exclude_subject is not None:
        per_subject = np.where(subjects == exclude_subject, np.inf, per_subject)
    order = np.argsort(per_subject)
    best = per_subject[order[0]]
    if best > tolerance:
        return Match(None)
    if len(order) > 1 and per_subject[order[1]] < best + margin:
        return Match(None, ambiguous=True)
    return Match(int(subjects[order[0]]))


def mutually_consistent(embeddings: list[np.ndarray], tolerance: float) -> bool:
    """Whether every pair of embeddings is within `tolerance` (one person across photos)."""
    return all(
        np.linalg.norm(a - b) <= tolerance
        for i, a in enumerate(embeddings)
        for b in embeddings[i + 1 :]
    )
