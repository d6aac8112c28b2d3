"""1:N identification against the gallery: a strict distance plus a margin to the runner-up.

The gallery and its search live in `gallery` (one float32 matrix, one matrix product per job);
`identify` is the one-probe form every caller knows."""

from __future__ import annotations

import numpy as np

from consent_service.biometrics.gallery import Gallery, Match, Rule, Searchable

__all__ = ["Gallery", "Match", "Rule", "Searchable", "identify", "mutually_consistent"]


def identify(
    gallery: Searchable,
    embedding: np.ndarray,
    tolerance: float,
    margin: float,
    exclude_subject: int | None = None,
    rule: Rule = Rule.NEAREST,
) -> Match:
    """The subject whose distance is within `tolerance` and beats every other subject's by at
    least `margin`; `ambiguous` when a second subject is that close. A subject's distance is
    their nearest template's, or with `Rule.MEAN` the mean over all their templates.
    (`Gallery.identify_many` decides many probes at once, by the same rule.)"""
    return gallery.identify(embedding, tolerance, margin, exclude_subject, rule)


def mutually_consistent(embeddings: list[np.ndarray], tolerance: float) -> bool:
    """Whether every pair of embeddings is within `tolerance` (one person across photos)."""
    return all(
        np.linalg.norm(a - b) <= tolerance
        for i, a in enumerate(embeddings)
        for b in embeddings[i + 1 :]
    )
