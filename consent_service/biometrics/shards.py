"""The gallery past one machine: shards served by worker groups of their own.

With GALLERY_SHARDS = N > 1 a matching worker holds no gallery. The gallery its analysers search
is a `ShardedGallery`: each search (the faces of one media item, one vector of an enrollment's
duplicate check) is one Celery chord, a `gallery.search_shard` task per shard on that shard's own
queue (`queues.shard_queue`), whose worker answers each probe's two nearest subjects exactly
(`Gallery.nearest_two`), and a `gallery.merge_shards` callback that decides each probe from the
union (`merge_nearest`), so the decisions are exactly those of one whole gallery. The shard
workers (`consent-service worker --shard K`) hold `GalleryIndex(shard=(K, N))`, kept current from
the template change log, and never load a face or voice model: only embeddings reach them.

What crosses the broker: the probes' embeddings (JSON floats, exact), and in the result backend
each shard's two nearest subject ids with their distances, forgotten once the job has read them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from celery import chord
from celery.exceptions import ChordError, TaskRevokedError
from celery.exceptions import TimeoutError as ResultTimeout
from flask import current_app

from consent_service.biometrics.gallery import Gallery, Match, Nearest, Rule, merge_nearest
from consent_service.queues import GALLERY_MERGE_QUEUE, shard_queue
from consent_service.vocabulary import Modality

log = logging.getLogger(__name__)

SEARCH_SHARD = "gallery.search_shard"
MERGE_SHARDS = "gallery.merge_shards"

# What a shard answers as JSON: per probe, up to two [subject id, exact distance].
ShardAnswer = list[list[list[float]]]


class ShardsUnavailable(RuntimeError):
    """Not every shard answered in time: no decision is made from part of the gallery."""


class FanOut(Protocol):
    """Decides `probes` over every shard of the `modality`'s gallery, by `rule`, as one whole
    gallery would; raises ShardsUnavailable when a shard does not answer."""

    def __call__(
        self,
        modality: Modality,
        probes: list[list[float]],
        tolerance: float,
        margin: float,
        exclude_subject: int | None,
        rule: Rule,
    ) -> list[Match]: ...


@dataclass(frozen=True)
class ShardedGallery:
    """What a matching worker searches when the gallery is sharded: `identify_many` and
    `identify` as `Gallery`'s, each call one fan-out to every shard."""

    modality: Modality
    fan_out: FanOut

    def identify_many(
        self,
        probes: Sequence[np.ndarray] | np.ndarray,
        tolerance: float,
        margin: float,
        exclude_subject: int | None = None,
        rule: Rule = Rule.NEAREST,
    ) -> list[Match]:
        if len(probes) == 0:
            return []
        # float64 to JSON and back is exact (repr round-trips), so shards see the same vectors.
        vectors = [[float(x) for x in np.asarray(p, np.float64)] for p in probes]
        return self.fan_out(self.modality, vectors, tolerance, margin, exclude_subject, rule)

    def identify(
        self,
        embedding: np.ndarray,
        tolerance: float,
        margin: float,
        exclude_subject: int | None = None,
        rule: Rule = Rule.NEAREST,
    ) -> Match:
        return self.identify_many([embedding], tolerance, margin, exclude_subject, rule)[0]


class ShardedIndex:
    """A matching worker's galleries when they are sharded: it holds none, so `current` needs no
    database (each shard worker brings its own part up to the change log's head per search)."""

    def __init__(self, fan_out: FanOut):
        self._fan_out = fan_out

    def current(self, session: object, modality: Modality) -> ShardedGallery:
        return ShardedGallery(modality, self._fan_out)


# ---------------------------------------------------------------------------- the two halves
def search_shard(
    gallery: Gallery, probes: list[list[float]], exclude_subject: int | None, rule: Rule
) -> ShardAnswer:
    """A shard's answer: each probe's two nearest subjects in this shard, exact distances."""
    answers = gallery.nearest_two(np.asarray(probes, np.float64), exclude_subject, rule)
    return [[[subject, distance] for subject, distance in answer] for answer in answers]


def merge_answers(answers: Sequence[ShardAnswer], tolerance: float, margin: float) -> list[Match]:
    """Each probe's decision from every shard's answer (`merge_nearest`)."""
    if not answers:
        return []
    probes = len(answers[0])
    if any(len(a) != probes for a in answers):
        raise ValueError("the shards answered for different numbers of probes")
    return [
        merge_nearest(
            [_nearest(answer[p]) for answer in answers],
            tolerance,
            margin,
        )
        for p in range(probes)
    ]


def _nearest(pairs: list[list[float]]) -> Nearest:
    return tuple((int(subject), float(distance)) for subject, distance in pairs)


# ---------------------------------------------------------------------------- over Celery
@dataclass(frozen=True)
class ChordFanOut:
    """The fan-out as a Celery chord on the running app's Celery: one search per shard on its
    own queue, the merge as the callback on `GALLERY_MERGE_QUEUE` (served by the shard workers,
    never by the matching workers, which wait here), awaited for `timeout` seconds.

    Waiting for a result inside a task (`disable_sync_subtasks=False`) is safe here because the
    tasks waited for run on other worker groups (the shards' queues and the merge queue), never
    on the matching queue this task holds a process of: the wait cannot deadlock on itself. A
    search not started within `timeout` expires, so a shard that comes back does no stale work.
    """

    shards: int
    timeout: float

    def __call__(
        self,
        modality: Modality,
        probes: list[list[float]],
        tolerance: float,
        margin: float,
        exclude_subject: int | None,
        rule: Rule,
    ) -> list[Match]:
        celery_app = current_app.extensions["celery"]
        header = [
            celery_app.signature(
                SEARCH_SHARD,
                args=(modality.value, k, self.shards, probes, exclude_subject, rule.value),
                queue=shard_queue(modality, k),
                expires=self.timeout,
            )
            for k in range(self.shards)
        ]
        merge = celery_app.signature(
            MERGE_SHARDS, args=(tolerance, margin), queue=GALLERY_MERGE_QUEUE
        )
        started = time.perf_counter()
        # Redis joins a chord natively; an SQL result backend polls for the header's end in the
        # `celery.chord_unlock` task (routed to the merge queue; first look after 1 s).
        result = chord(header, merge, app=celery_app).apply_async()
        try:
            merged = result.get(timeout=self.timeout, interval=0.05, disable_sync_subtasks=False)
        # A search a shard received after `timeout` is discarded as expired, and the chord
        # answers TaskRevokedError("expired"): a shard that did not answer in time like the
        # others (the four-host bench's partition found it escaping the task, its job left
        # `processing` instead of sent again).
        except (ResultTimeout, ChordError, TaskRevokedError) as exc:
            raise ShardsUnavailable(
                f"the {modality.value} gallery's {self.shards} shards did not all answer "
                f"within {self.timeout:g} s ({exc!r})"
            ) from exc
        finally:
            _forget(result)
        log.info(
            "gallery fan-out: %s, %d shards, %d probes, %.1f ms",
            modality.value,
            self.shards,
            len(probes),
            (time.perf_counter() - started) * 1000,
        )
        return [Match(subject, bool(ambiguous)) for subject, ambiguous in merged]


def _forget(result) -> None:  # noqa: ANN001 - a Celery AsyncResult
    """Drop the chord's results (subject ids and distances) from the result backend now rather
    than at their expiry."""
    try:
        parent = result.parent
        for part in parent.results if parent is not None else ():
            part.forget()
        result.forget()
    except Exception:  # noqa: BLE001 - forgetting is tidiness; the results expire anyway
        log.debug("could not forget a gallery chord's results", exc_info=True)
