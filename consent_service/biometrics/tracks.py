"""One person across many frames: group face embeddings into tracks, identify each track once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from consent_service.biometrics.faces import DetectedFace
from consent_service.biometrics.matching import Match, Rule, Searchable


@dataclass(frozen=True)
class FaceTrack:
    """The faces of one person in one media item. `embeddings` are the most typical ones, most
    central first; `box` is where the most central face was, in its frame."""

    box: tuple[int, int, int, int]
    embeddings: list[np.ndarray]
    sightings: int  # faces grouped into the track
    first_seen: float = 0.0  # seconds into the media


def group_embeddings(
    embeddings: Sequence[np.ndarray], frames: Sequence[int], tolerance: float
) -> list[list[int]]:
    """Indices of `embeddings` grouped by person, biggest group first.

    Average-linkage agglomerative clustering: the two closest groups merge while their mean
    pairwise distance is within `tolerance` (a 1:1 same-person distance). Faces in the same frame
    are different people, so groups sharing a frame never merge. Members are listed most central
    first (smallest mean distance to the rest of their group)."""
    n = len(embeddings)
    if n == 0:
        return []
    if len(frames) != n:
        raise ValueError("one frame number per embedding")
    vectors = np.vstack(embeddings).astype(np.float64)
    distance = np.linalg.norm(vectors[:, None, :] - vectors[None, :, :], axis=2)
    frame_of = np.asarray(frames)
    apart = frame_of[:, None] == frame_of[None, :]  # cannot-link: same frame
    np.fill_diagonal(apart, True)
    linkage = distance.copy()
    sizes = np.ones(n)
    active = np.ones(n, dtype=bool)
    members: list[list[int]] = [[i] for i in range(n)]
    while True:
        candidate = np.where(apart | ~active[:, None] | ~active[None, :], np.inf, linkage)
        i, j = np.unravel_index(np.argmin(candidate), candidate.shape)
        if not candidate[i, j] <= tolerance:
            break
        # Lance–Williams update for average linkage: the merged group's mean distance to others.
        linkage[i, :] = (sizes[i] * linkage[i, :] + sizes[j] * linkage[j, :]) / (
            sizes[i] + sizes[j]
        )
        linkage[:, i] = linkage[i, :]
        apart[i, :] |= apart[j, :]
        apart[:, i] = apart[i, :]
        sizes[i] += sizes[j]
        active[j] = False
        members[i] += members[j]
        members[j] = []
    groups = []
    for group in (m for m, a in zip(members, active, strict=True) if a):
        inner = distance[np.ix_(group, group)].sum(axis=1)
        groups.append([group[k] for k in np.argsort(inner, kind="stable")])
    groups.sort(key=lambda g: (-len(g), g[0]))
    return groups


def identify_track(
    gallery: Searchable,
    embeddings: Sequence[np.ndarray],
    tolerance: float,
    margin: float,
    rule: Rule = Rule.NEAREST,
) -> Match:
    """A subject only when a majority of the track's embeddings name that subject and none names
    another or is ambiguous; nobody when none names anyone; `ambiguous` otherwise (a false match
    could let an edit through on someone else's consent)."""
    return _by_vote(gallery.identify_many(list(embeddings), tolerance, margin, rule=rule))


def identify_tracks(
    gallery: Searchable,
    tracks: Sequence[Sequence[np.ndarray]],
    tolerance: float,
    margin: float,
    rule: Rule = Rule.NEAREST,
) -> list[Match]:
    """`identify_track` for every track of a job (every person in every media item), searched
    in one matrix product over the gallery."""
    votes = gallery.identify_many([e for t in tracks for e in t], tolerance, margin, rule=rule)
    found, start = [], 0
    for track in tracks:
        found.append(_by_vote(votes[start : start + len(track)]))
        start += len(track)
    return found


def _by_vote(votes: list[Match]) -> Match:
    if not votes:
        return Match(None)
    named = Counter(v.subject_id for v in votes if v.subject_id is not None)
    if not named and not any(v.ambiguous for v in votes):
        return Match(None)
    if len(named) == 1 and not any(v.ambiguous for v in votes):
        ((subject_id, count),) = named.items()
        if 2 * count > len(votes):
            return Match(subject_id)
    return Match(None, ambiguous=True)


class _Embedder(Protocol):
    def detect(self, rgb: np.ndarray) -> list[DetectedFace]: ...


class _Frame(Protocol):
    # Read-only, so frozen dataclasses (media.video.SampledFrame) fit.
    @property
    def time(self) -> float: ...
    @property
    def rgb(self) -> np.ndarray: ...


def track_faces(
    frames: Iterable[_Frame], embedder: _Embedder, tolerance: float, votes: int
) -> list[FaceTrack]:
    """Every distinct person in a sequence of frames, each once, keeping up to `votes` of their
    most central embeddings. Frames are processed one at a time; only embeddings are kept."""
    faces: list[tuple[int, float, DetectedFace]] = []
    for number, frame in enumerate(frames):
        faces += [(number, frame.time, face) for face in embedder.detect(frame.rgb)]
    groups = group_embeddings(
        [f.embedding for _, _, f in faces], [n for n, _, _ in faces], tolerance
    )
    return [
        FaceTrack(
            box=faces[group[0]][2].box,
            embeddings=[faces[k][2].embedding for k in group[:votes]],
            sightings=len(group),
            first_seen=min(faces[k][1] for k in group),
        )
        for group in groups
    ]
