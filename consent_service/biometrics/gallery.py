"""The gallery engine: every template of one modality and model in one float32 matrix, searched
for all the faces (or voices) of a job in one matrix product.

The rule is `matching.identify`'s, exactly: the subject whose distance is within `tolerance` and
beats every other subject's by at least `margin`; `ambiguous` when a second subject is that close;
nobody otherwise. A subject's distance is, by the `Rule` asked for, their nearest template's
(`NEAREST`) or the mean over all their templates (`MEAN`: the stricter of the two at a given
tolerance, fewer strangers and fewer of a person's own varied photos within it; bench/face_tail.py).

How it is fast:
- Rows are laid out once, by subject (`_Block`): subjects with the same number of templates
  together, template-major, so each subject's nearest template (or sum of distances) comes from a
  few contiguous elementwise minimums (or sums) over precomputed ranges (no `np.unique`, no
  sorting per query).
- Squared distances come from `|g|² - 2 g·q + |q|²`, with `|g|²` precomputed: the work per probe
  is one pass of BLAS over the matrix, and `|q|²` is added per subject, not per row.
- Additions since the matrix was built wait in a small second block (`delta`) with its own
  segments; removals set a row's norm to +inf (it can never be nearest) and zero its vector.
  When the delta or the removed rows grow past a fraction of the matrix, both are compacted.

How it stays exact: float32 distances carry a rounding error that this module bounds
(`_error_bound`). When a decision (within tolerance? unique best? runner-up within the margin?)
does not hold with every distance moved by that bound, the few subjects that could change it are
measured again in float64, as `matching.identify` always did, and the rule is applied to those.
(For `MEAN`, the bound on squared distances becomes one on each distance, then on their mean.)
Templates are stored as float32, so galleries whose vectors are float32 values (dlib and
resemblyzer embeddings are) decide exactly as before.

Snapshots (`seal_snapshot` / `open_snapshot`): a worker writes the matrix it holds, sealed with
AES-256-GCM in chunks bound to the gallery and its log position, so the next worker on the host
starts in seconds instead of decrypting every template; the plaintext never touches the disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_UNIT = 2.0**-24  # float32 unit roundoff
_ID = "S32"  # template ids: uuid4 hex
_INF = np.float32(np.inf)


class Rule(StrEnum):
    """How a subject's templates give one distance to a probe."""

    NEAREST = "nearest"  # the nearest template's distance
    MEAN = "mean"  # the mean of the distances to all of the subject's templates


@dataclass(frozen=True)
class Match:
    subject_id: int | None  # set only for a clear match
    ambiguous: bool = False


class Searchable(Protocol):
    """What the analysers search: a `Gallery`, or a sharded one (`shards.ShardedGallery`) that
    decides exactly as the whole gallery would."""

    def identify(
        self,
        embedding: np.ndarray,
        tolerance: float,
        margin: float,
        exclude_subject: int | None = None,
        rule: Rule = Rule.NEAREST,
    ) -> Match: ...

    def identify_many(
        self,
        probes: Sequence[np.ndarray] | np.ndarray,
        tolerance: float,
        margin: float,
        exclude_subject: int | None = None,
        rule: Rule = Rule.NEAREST,
    ) -> list[Match]: ...


class _ReadWriteLock:
    """Many concurrent searches, or one change at a time (a waiting change goes first)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class _Block:
    """Rows laid out so each subject's nearest template is a few contiguous `np.minimum`s.

    Subjects are grouped by how many templates they have (c); within the group of the m
    subjects with c templates, row `offset + k*m + j` is the k-th template of the group's j-th
    subject. The group's distances, seen as a (c, m) array, reduce over axis 0 into the slots
    of its m subjects: c - 1 elementwise passes, no per-query `np.unique` and no scattered
    segments. Slots are numbered group by group; `slot_subjects[slot]` is the subject."""

    def __init__(
        self,
        subjects: np.ndarray,
        ids: np.ndarray,
        vectors: np.ndarray,
        laid_out: list[tuple[int, int]] | None = None,
    ):
        """`laid_out`: the (c, m) groups of rows already in this layout (a snapshot's, which
        AES-GCM authenticates), so nothing is sorted or moved."""
        subjects = np.asarray(subjects, dtype=np.int64)
        n = len(subjects)
        if laid_out is None:
            by_subject = np.argsort(subjects, kind="stable")
            ordered = subjects[by_subject]
            starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))[:n]
            counts = np.diff(np.append(starts, n))
            rank = np.arange(n) - np.repeat(starts, counts)  # k: which of its subject's rows
            layout = by_subject[np.lexsort((ordered, rank, np.repeat(counts, counts)))]
            subjects, ids, vectors = subjects[layout], np.asarray(ids)[layout], vectors[layout]
            sizes = np.unique(counts)
            laid_out = [(int(c), int(np.count_nonzero(counts == c))) for c in sizes]
        if sum(c * m for c, m in laid_out) != n:
            raise ValueError("the groups do not cover the rows")
        self.subjects = np.ascontiguousarray(subjects)
        self.ids = np.ascontiguousarray(ids, dtype=_ID)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.norms = np.einsum("ij,ij->i", self.vectors, self.vectors, dtype=np.float64).astype(
            np.float32
        )
        # Groups: (templates per subject c, first row, first slot, subjects m).
        self.groups: list[tuple[int, int, int, int]] = []
        row = slot = 0
        for c, m in laid_out:
            self.groups.append((c, row, slot, m))
            row, slot = row + c * m, slot + m
        self.group_slots = np.array([g[2] for g in self.groups], np.intp)
        self.slot_subjects = np.concatenate(
            [self.subjects[r : r + m] for _, r, _, m in self.groups] or [np.empty(0, np.int64)]
        )
        self._by_subject = np.argsort(self.slot_subjects, kind="stable")
        self._sorted_subjects = self.slot_subjects[self._by_subject]
        self.removed = 0
        # For the mean rule: each slot's live templates, and the removed rows (left out of sums).
        self.live_counts = np.concatenate(
            [np.full(m, c, np.float32) for c, _, _, m in self.groups] or [np.empty(0, np.float32)]
        )
        self._dead: list[int] = []
        self.max_norm = float(np.sqrt(self.norms.max())) if n else 0.0

    @classmethod
    def empty(cls, dim: int) -> _Block:
        return cls(np.empty(0, np.int64), np.empty(0, _ID), np.empty((0, dim), np.float32))

    def __len__(self) -> int:
        return len(self.subjects)

    def slot_of(self, subject_id: int) -> int | None:
        k = int(np.searchsorted(self._sorted_subjects, subject_id))
        if k < len(self._sorted_subjects) and self._sorted_subjects[k] == subject_id:
            return int(self._by_subject[k])
        return None

    def slots_of(self, subject_ids: np.ndarray) -> np.ndarray:
        """The slot of each subject, -1 for subjects not in this block."""
        if not len(self._sorted_subjects):
            return np.full(len(subject_ids), -1, np.intp)
        k = np.minimum(
            np.searchsorted(self._sorted_subjects, subject_ids), len(self._by_subject) - 1
        )
        return np.where(self._sorted_subjects[k] == subject_ids, self._by_subject[k], -1)

    def rows_of_slot(self, slot: int) -> np.ndarray:
        g = int(np.searchsorted(self.group_slots, slot, side="right")) - 1
        c, row, first, m = self.groups[g]
        return row + np.arange(c) * m + (slot - first)

    def row_of(self, subject_id: int, template_id: bytes) -> int | None:
        slot = self.slot_of(subject_id)
        if slot is None:
            return None
        rows = self.rows_of_slot(slot)
        hits = rows[self.ids[rows] == template_id]
        return int(hits[0]) if len(hits) else None

    def remove(self, row: int) -> None:
        if np.isfinite(self.norms[row]):
            self.norms[row] = _INF  # never nearest again...
            self.vectors[row] = 0.0  # ...and the person's template is gone from memory
            self.removed += 1
            g = int(np.searchsorted([r for _, r, _, _ in self.groups], row, side="right")) - 1
            _, first_row, first_slot, m = self.groups[g]
            self.live_counts[first_slot + (row - first_row) % m] -= 1
            self._dead.append(row)

    def live(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = np.isfinite(self.norms)
        if keep.all():
            return self.subjects, self.ids, self.vectors
        return self.subjects[keep], self.ids[keep], self.vectors[keep]

    def per_subject(self, minus_two_q: np.ndarray) -> np.ndarray:
        """(slots, probes): each subject's smallest `|g|² - 2 g·q` (float32)."""
        probes = minus_two_q.shape[0]
        table = np.empty((len(self.slot_subjects), probes), np.float32)
        if not len(self.subjects):
            return table
        if probes == 1:  # one probe: BLAS gemv, 1-d reductions
            d = self.vectors @ minus_two_q[0]
            d += self.norms
            flat = table[:, 0]
            for c, row, slot, m in self.groups:
                np.minimum.reduce(
                    d[row : row + c * m].reshape(c, m), axis=0, out=flat[slot : slot + m]
                )
            return table
        d = self.vectors @ minus_two_q.T
        d += self.norms[:, None]
        for c, row, slot, m in self.groups:
            np.minimum.reduce(
                d[row : row + c * m].reshape(c, m, probes), axis=0, out=table[slot : slot + m]
            )
        return table

    def sums(self, minus_two_q: np.ndarray, q_norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """((slots, probes): each subject's sum of distances over their live templates, (probes):
        the smallest distance of any live row), float32; `q_norms` are the probes' |q|²."""
        probes = minus_two_q.shape[0]
        table = np.zeros((len(self.slot_subjects), probes), np.float32)
        if not len(self.subjects):
            return table, np.full(probes, _INF, np.float32)
        if probes == 1:  # one probe: BLAS gemv
            d = (self.vectors @ minus_two_q[0])[:, None]
        else:
            d = self.vectors @ minus_two_q.T
        d += self.norms[:, None]
        d += q_norms.astype(np.float32)[None, :]
        np.maximum(d, 0.0, out=d)
        np.sqrt(d, out=d)
        smallest = d.min(axis=0)  # removed rows are +inf
        if self._dead:
            d[self._dead] = 0.0
        for c, row, slot, m in self.groups:
            np.add.reduce(
                d[row : row + c * m].reshape(c, m, probes), axis=0, out=table[slot : slot + m]
            )
        return table, smallest


class Gallery:
    """The templates of one modality and model, searchable and updatable in place.

    `seq` is the position in the template change log this gallery reflects (or, for galleries
    built by hand, any version number the caller likes). Thread-safe: searches run
    concurrently; a change waits for the searches in progress and runs alone."""

    def __init__(self, dim: int | None = None, seq: int = 0):
        self.seq = seq
        self._dim = dim
        self._lock = _ReadWriteLock()  # searches share it; a change to the arrays takes it alone
        self._changing = threading.Lock()  # one change (and its compaction) at a time
        self._main = _Block.empty(dim or 0)
        self._delta = _Block.empty(dim or 0)
        self._index_delta()

    # ------------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        version: int,
        rows: Sequence[tuple[int, np.ndarray]],
        dim: int = 128,
        ids: Sequence[str] | None = None,
    ) -> Gallery:
        """A gallery of (subject id, vector) rows; `ids` name the templates (default: row
        numbers), so later changes can remove them."""
        gallery = cls(dim, version)
        if rows:
            vectors = np.asarray([v for _, v in rows], dtype=np.float32).reshape(len(rows), -1)
            gallery._dim = vectors.shape[1]
            gallery._main = _Block(
                np.fromiter((s for s, _ in rows), dtype=np.int64, count=len(rows)),
                np.asarray(ids if ids is not None else [str(i) for i in range(len(rows))], _ID),
                vectors,
            )
            gallery._delta = _Block.empty(gallery._dim)
            gallery._index_delta()
        return gallery

    @classmethod
    def from_arrays(
        cls,
        seq: int,
        subjects: np.ndarray,
        ids: np.ndarray,
        vectors: np.ndarray,
    ) -> Gallery:
        """A gallery of whole arrays (a bulk load): no per-row Python."""
        dim = vectors.shape[1]
        gallery = cls(dim, seq)
        gallery._main = _Block(subjects, ids, vectors)
        gallery._delta = _Block.empty(dim)
        gallery._index_delta()
        return gallery

    def __len__(self) -> int:
        with self._lock.read():
            return self._live_rows()

    def _live_rows(self) -> int:
        return len(self._main) - self._main.removed + len(self._delta) - self._delta.removed

    @property
    def version(self) -> int:
        return self.seq

    @property
    def dim(self) -> int | None:
        return self._dim

    # ------------------------------------------------------------------ changes
    def apply(
        self,
        seq: int,
        added: Iterable[tuple[str, int, np.ndarray]] = (),
        removed: Iterable[tuple[str, int]] = (),
    ) -> None:
        """Apply changes from the template log up to `seq`: `added` (template id, subject id,
        vector) rows join the gallery (ids already present are skipped, so replaying is
        harmless); `removed` (template id, subject id) rows leave it (unknown ids are ignored)."""
        added, removed = list(added), list(removed)
        with self._changing:
            with self._lock.write():
                # Additions first: an id is never added again once removed, so additions then
                # removals is right whatever their order in the log.
                fresh = [
                    (tid, s, v)
                    for tid, s, v in added
                    if self._main.row_of(s, tid.encode()) is None
                    and self._delta.row_of(s, tid.encode()) is None
                ]
                if fresh:
                    if self._dim is None or not (len(self._main) or len(self._delta)):
                        self._dim = len(fresh[0][2])
                        self._main = _Block.empty(self._dim) if not len(self._main) else self._main
                        self._delta = _Block.empty(self._dim)
                    subjects, ids, vectors = self._delta.live()
                    self._delta = _Block(
                        np.concatenate([subjects, np.array([s for _, s, _ in fresh], np.int64)]),
                        np.concatenate([ids, np.array([t for t, _, _ in fresh], _ID)]),
                        np.concatenate(
                            [vectors, np.asarray([v for _, _, v in fresh], np.float32)], axis=0
                        ),
                    )
                for template_id, subject_id in removed:
                    tid = template_id.encode()
                    for block in (self._main, self._delta):
                        row = block.row_of(subject_id, tid)
                        if row is not None:
                            block.remove(row)
                if self._delta.removed:
                    self._delta = _Block(*self._delta.live())
                self._index_delta()
                self.seq = max(self.seq, seq)
                compact = self._needs_compaction()
            if compact:
                self._compact()

    def _needs_compaction(self) -> bool:
        n = len(self._main)
        return len(self._delta) > max(1024, n // 64) or self._main.removed > max(1024, n // 16)

    def _compact(self) -> None:
        """One matrix again, laid out anew from the live rows of both blocks. Built while
        searches go on (nothing else changes the blocks: the caller holds `_changing`), then
        swapped in; the new matrix and the old exist together only for that moment."""
        dim = self._dim or 0
        parts = [self._main.live(), self._delta.live()]
        main = _Block(
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts], axis=0).reshape(-1, dim),
        )
        del parts
        with self._lock.write():
            self._main, self._delta = main, _Block.empty(dim)
            self._index_delta()

    def _index_delta(self) -> None:
        """Where each delta subject's nearest template goes in the per-subject table: the slot of
        the same subject in the matrix, else a new slot after the matrix's subjects."""
        main_subjects = self._main.slot_subjects
        delta_subjects = self._delta.slot_subjects
        slots = self._main.slots_of(delta_subjects)
        known = slots >= 0
        newcomers = delta_subjects[~known]
        slots[~known] = len(main_subjects) + np.arange(len(newcomers))
        self._delta_slots = slots
        self._slot_subjects = np.concatenate([main_subjects, newcomers])

    # ------------------------------------------------------------------ search
    def identify(
        self,
        embedding: np.ndarray,
        tolerance: float,
        margin: float,
        exclude_subject: int | None = None,
        rule: Rule = Rule.NEAREST,
    ) -> Match:
        return self.identify_many([embedding], tolerance, margin, exclude_subject, rule)[0]

    def identify_many(
        self,
        probes: Sequence[np.ndarray] | np.ndarray,
        tolerance: float,
        margin: float,
        exclude_subject: int | None = None,
        rule: Rule = Rule.NEAREST,
    ) -> list[Match]:
        """`matching.identify` for every probe, in one matrix product over the gallery."""
        if len(probes) == 0:
            return []
        q = np.atleast_2d(np.asarray(probes, dtype=np.float64))
        with self._lock.read():
            if not len(self._slot_subjects) or self._live_rows() == 0:
                return [Match(None) for _ in range(len(q))]
            table, bounds = self._scan(q, rule, exclude_subject)
            return [
                self._decide(table[:, p], q[p], bounds[p], tolerance, margin, exclude_subject, rule)
                for p in range(len(q))
            ]

    def _scan(self, q: np.ndarray, rule: Rule, exclude_subject: int | None):
        """The float32 table of every subject's distance by `rule` to each probe (one matrix
        product; `exclude_subject` out), with each probe's error bounds on it. Under the read
        lock."""
        minus_two_q = (-2.0 * q).astype(np.float32)  # scaling by 2 is exact
        q_norms = np.einsum("ij,ij->i", q, q)
        if rule is Rule.MEAN:
            table, smallest, most = self._means(minus_two_q, q_norms)
        else:
            table = self._per_subject(minus_two_q)
        if exclude_subject is not None:
            table[np.flatnonzero(self._slot_subjects == exclude_subject), :] = _INF
        max_norm = max(self._main.max_norm, self._delta.max_norm)
        bounds = []
        for p in range(len(q)):
            q_norm2 = float(q_norms[p])
            eps = _error_bound(q.shape[1], max_norm, float(np.sqrt(q_norm2)))
            bounds.append(
                _mean_bounds(eps, max_norm + np.sqrt(q_norm2), float(smallest[p]), most)
                if rule is Rule.MEAN
                else _nearest_bounds(eps, q_norm2)
            )
        return table, bounds

    def _per_subject(self, minus_two_q: np.ndarray) -> np.ndarray:
        table = self._main.per_subject(minus_two_q)
        if len(self._delta):
            extra = len(self._slot_subjects) - len(table)
            if extra:
                table = np.concatenate(
                    [table, np.full((extra, table.shape[1]), _INF, np.float32)], axis=0
                )
            delta = self._delta.per_subject(minus_two_q)
            table[self._delta_slots] = np.minimum(table[self._delta_slots], delta)
        return table

    def _means(
        self, minus_two_q: np.ndarray, q_norms: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """(slots, probes): each subject's mean distance over their live templates (+inf for a
        subject with none left); (probes): the smallest distance of any row; the most templates
        any subject has (what the bounds need)."""
        sums, smallest = self._main.sums(minus_two_q, q_norms)
        counts = self._main.live_counts
        if len(self._delta):
            extra = len(self._slot_subjects) - len(sums)
            if extra:
                sums = np.concatenate([sums, np.zeros((extra, sums.shape[1]), np.float32)])
                counts = np.concatenate([counts, np.zeros(extra, np.float32)])
            else:
                counts = counts.copy()
            delta, low = self._delta.sums(minus_two_q, q_norms)
            sums[self._delta_slots] += delta  # each delta subject has one slot: no repeats
            counts[self._delta_slots] += self._delta.live_counts
            smallest = np.minimum(smallest, low)
        with np.errstate(divide="ignore", invalid="ignore"):
            means = sums / counts[:, None]
        means[counts == 0] = _INF
        return means, smallest, int(counts.max()) if len(counts) else 1

    def _decide(
        self,
        column: np.ndarray,
        q: np.ndarray,
        bounds: _Bounds,
        tolerance: float,
        margin: float,
        exclude_subject: int | None,
        rule: Rule,
    ) -> Match:
        first = int(np.argmin(column))
        best = float(column[first])
        if not np.isfinite(best):
            return Match(None)
        held, column[first] = column[first], _INF
        second = float(column.min()) if len(column) > 1 else np.inf
        column[first] = held
        best_lo, best_hi = bounds.low(best), bounds.high(best)
        if best_lo > tolerance:
            return Match(None)
        second_lo, second_hi = bounds.low(second), bounds.high(second)
        if best_hi <= tolerance:
            if second_hi < best_lo + margin:
                return Match(None, ambiguous=True)
            if second_lo >= best_hi + margin and second_lo > best_hi:
                return Match(int(self._slot_subjects[first]))
        # Too close to call in float32: measure the subjects that could decide it in float64.
        candidates = np.flatnonzero(column <= bounds.reach(best_hi + margin))
        return self._decide_exactly(candidates, q, tolerance, margin, exclude_subject, rule)

    def _decide_exactly(
        self,
        slots: np.ndarray,
        q: np.ndarray,
        tolerance: float,
        margin: float,
        exclude_subject: int | None,
        rule: Rule = Rule.NEAREST,
    ) -> Match:
        """The rule of `matching.identify`, computed as it did (float64 norms of differences),
        over the given subjects' templates."""
        subjects = np.sort(self._slot_subjects[slots])
        subjects = (
            subjects[subjects != exclude_subject] if exclude_subject is not None else subjects
        )
        scores = np.array([self._distance_exactly(int(s), q, rule) for s in subjects])
        if not len(subjects):
            return Match(None)
        order = np.argsort(scores)
        best = scores[order[0]]
        if best > tolerance:
            return Match(None)
        if len(order) > 1 and scores[order[1]] < best + margin:
            return Match(None, ambiguous=True)
        return Match(int(subjects[order[0]]))

    def _distance_exactly(self, subject_id: int, q: np.ndarray, rule: Rule) -> float:
        rows = []
        for block in (self._main, self._delta):
            slot = block.slot_of(subject_id)
            if slot is not None:
                own = block.rows_of_slot(slot)  # in template order, as the old gallery had them
                rows.append(block.vectors[own[np.isfinite(block.norms[own])]])
        if not rows:
            return np.inf
        vectors = np.concatenate(rows).astype(np.float64)
        if not len(vectors):
            return np.inf
        distances = np.linalg.norm(vectors - q, axis=1)
        return float(distances.mean() if rule is Rule.MEAN else distances.min())

    # ------------------------------------------------------------------ shards
    def nearest_two(
        self,
        probes: Sequence[np.ndarray] | np.ndarray,
        exclude_subject: int | None = None,
        rule: Rule = Rule.NEAREST,
    ) -> list[Nearest]:
        """For each probe, the two subjects nearest by `rule`, with those distances computed
        exactly (float64, as `matching.identify` does): what one shard of a gallery answers, so
        `merge_nearest` over every shard decides as one whole gallery.

        Exact: the float32 table's second-smallest value b2 is, exactly, at most `high(b2)`
        (the bounds `identify_many` uses), so the exact runner-up is too; any subject that could
        be among the exact two nearest has a table value within `reach(high(b2))`, and only
        those are measured again in float64."""
        if len(probes) == 0:
            return []
        q = np.atleast_2d(np.asarray(probes, dtype=np.float64))
        with self._lock.read():
            if not len(self._slot_subjects) or self._live_rows() == 0:
                return [() for _ in range(len(q))]
            table, all_bounds = self._scan(q, rule, exclude_subject)
            answers: list[Nearest] = []
            for p in range(len(q)):
                column = table[:, p]
                finite = column[np.isfinite(column)]
                if not len(finite):
                    answers.append(())
                    continue
                bounds = all_bounds[p]
                b2 = float(np.partition(finite, 1)[1]) if len(finite) > 1 else float(finite[0])
                slots = np.flatnonzero(column <= bounds.reach(bounds.high(b2)))
                measured = sorted(
                    (d, int(s))
                    for s in self._slot_subjects[slots]
                    for d in (self._distance_exactly(int(s), q[p], rule),)
                    if np.isfinite(d)
                )
                answers.append(tuple((subject, distance) for distance, subject in measured[:2]))
            return answers

    # ------------------------------------------------------------------ snapshots
    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(subjects, template ids, vectors) of every live row, sorted by subject (a copy)."""
        with self._lock.read():
            parts = [self._main.live(), self._delta.live()]
            subjects = np.concatenate([p[0] for p in parts])
            order = np.argsort(subjects, kind="stable")
            dim = self._dim or 0
            return (
                subjects[order],
                np.concatenate([p[1] for p in parts])[order],
                np.concatenate([p[2] for p in parts], axis=0).reshape(-1, dim)[order],
            )

    @contextmanager
    def _frozen_blocks(self) -> Iterator[list[_Block]]:
        """The blocks, unchanged while the caller reads them (searches go on meanwhile)."""
        with self._lock.read():
            yield [self._main, self._delta]

    def nbytes(self) -> int:
        """Memory held by the matrices and their indexes."""
        with self._lock.read():
            return sum(
                a.nbytes
                for b in (self._main, self._delta)
                for a in (b.vectors, b.norms, b.subjects, b.ids, b.slot_subjects)
            )


@dataclass(frozen=True)
class _Bounds:
    """For one probe: the least and the most a subject's distance can be, given its float32
    value in the per-subject table, and the table values whose distance can be within x."""

    low: Callable[[float], float]
    high: Callable[[float], float]
    reach: Callable[[float], float]


def _nearest_bounds(eps: float, q_norm2: float) -> _Bounds:
    """The table holds `|g|² - 2 g·q` (float32), within `eps` of the exact squared distance
    minus |q|²."""
    return _Bounds(
        low=lambda v: float(np.sqrt(max(v + q_norm2 - eps, 0.0))),
        high=lambda v: float(np.sqrt(max(v + q_norm2 + eps, 0.0))),
        reach=lambda x: x**2 + eps - q_norm2,
    )


def _mean_bounds(eps: float, far: float, smallest: float, templates: int) -> _Bounds:
    """The table holds mean distances (float32). Each squared distance, with |q|² added in
    float32, is within `e = eps + 2u·reach²` of the exact one, so each distance d within
    e / max(d, √e) (|√a - √b| = |a - b| / (√a + √b)), at most e / max(smallest, √e) for every
    row; float32 rounding of the square root, of a sum of up to `templates` terms and of the
    division adds (templates + 3)·u·far (every distance is at most `far`, |g| + |q|)."""
    e = eps + 2.0 * _UNIT * far**2
    err = e / max(smallest, float(np.sqrt(e))) + (templates + 3) * _UNIT * far
    return _Bounds(low=lambda v: v - err, high=lambda v: v + err, reach=lambda x: x + err)


def _error_bound(dim: int, max_norm: float, q_norm: float) -> float:
    """A bound on |computed - exact| squared distance for any row: float32 rounding of -2q and
    of |g|², a float32 dot product of `dim` terms (γ_dim, any summation order), and the sum;
    doubled for safety. Decisions further than this from a threshold stand as computed."""
    return 2.0 * (2 * dim + 8) * _UNIT * (max_norm + q_norm) ** 2


# ---------------------------------------------------------------------------- shards
# One shard's answer for one probe: up to two (subject id, exact distance), nearest first.
Nearest = tuple[tuple[int, float], ...]


def shards_of(subjects: np.ndarray, shards: int) -> np.ndarray:
    """The shard of each subject id: a stable hash (splitmix64's finaliser) modulo `shards`,
    the same in every process, host and version, and spread evenly even over sequential ids."""
    z = np.asarray(subjects, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(shards)).astype(np.int64)


def shard_of(subject_id: int, shards: int) -> int:
    return int(shards_of(np.array([subject_id]), shards)[0])


def merge_nearest(answers: Iterable[Nearest], tolerance: float, margin: float) -> Match:
    """One probe's decision from every shard's two nearest subjects (`Gallery.nearest_two`, all
    by one rule): `matching.identify`'s rule over the union (a subject lives in one shard, so
    the whole gallery's best and runner-up are among the shards' two nearest each)."""
    ranked = sorted((distance, subject) for answer in answers for subject, distance in answer)
    if not ranked or ranked[0][0] > tolerance:
        return Match(None)
    best, subject = ranked[0]
    if len(ranked) > 1 and ranked[1][0] < best + margin:
        return Match(None, ambiguous=True)
    return Match(subject)


# ---------------------------------------------------------------------------- snapshots
_MAGIC = b"CSGALLERY1\n"
_CHUNK_ROWS = 65536


def _chunk_aad(header_digest: bytes, index: int, total: int) -> bytes:
    return header_digest + struct.pack(">II", index, total)


def _live_chunks(block: _Block) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The live rows of a block, `_CHUNK_ROWS` at a time (only one chunk is ever copied)."""
    live = np.flatnonzero(np.isfinite(block.norms))
    for start in range(0, len(live), _CHUNK_ROWS):
        rows = live[start : start + _CHUNK_ROWS]
        yield block.subjects[rows], block.ids[rows], block.vectors[rows]


def seal_snapshot(gallery: Gallery, key: bytes, path: Path, binding: dict) -> None:
    """Write `gallery` to `path`, encrypted: AES-256-GCM in chunks of rows, each chunk bound to
    the header (which binds `binding`: modality, model, the last change applied...) and to its
    place, so no chunk can be dropped, moved or swapped. The plaintext exists one chunk at a
    time, in memory only; the file is written under a temporary name, then renamed."""
    aead = AESGCM(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with gallery._frozen_blocks() as blocks, open(tmp, "wb") as fh:
            sizes = [len(b) - b.removed for b in blocks]
            chunks = [-(-n // _CHUNK_ROWS) for n in sizes]
            # A block without removed rows is written in its layout: opened without sorting.
            layouts = [None if b.removed else [[c, m] for c, _, _, m in b.groups] for b in blocks]
            header = json.dumps(
                {
                    **binding,
                    "seq": gallery.seq,
                    "dim": int(gallery.dim or 0),
                    "blocks": sizes,
                    "chunks": chunks,
                    "layouts": layouts,
                },
                sort_keys=True,
            ).encode()
            digest = hashlib.sha256(header).digest()
            fh.write(_MAGIC + struct.pack(">I", len(header)) + header)
            index, total = 0, sum(chunks)
            for block in blocks:
                for subjects, ids, vectors in _live_chunks(block):
                    plain = subjects.tobytes() + ids.tobytes() + vectors.tobytes()
                    nonce = os.urandom(12)
                    sealed = aead.encrypt(nonce, plain, _chunk_aad(digest, index, total))
                    del plain
                    fh.write(struct.pack(">Q", len(sealed)) + nonce + sealed)
                    index += 1
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_snapshot_header(path: Path) -> dict:
    with open(path, "rb") as fh:
        return _read_header(fh)[0]


def _read_header(fh: BinaryIO) -> tuple[dict, bytes]:
    if fh.read(len(_MAGIC)) != _MAGIC:
        raise ValueError("not a gallery snapshot")
    (size,) = struct.unpack(">I", fh.read(4))
    raw = fh.read(size)
    return json.loads(raw), hashlib.sha256(raw).digest()


def open_snapshot(key: bytes, path: Path, binding: dict) -> Gallery:
    """The gallery sealed at `path`; ValueError if it is not for `binding`, InvalidTag if any
    byte was changed or the key is not the one that sealed it."""
    aead = AESGCM(key)
    with open(path, "rb") as fh:
        header, digest = _read_header(fh)
        if any(header.get(k) != v for k, v in binding.items()):
            raise ValueError("the snapshot is for another gallery")
        dim, total = header["dim"], sum(header["chunks"])
        index, blocks = 0, []
        # One ciphertext and one plaintext buffer, reused chunk after chunk (no copies).
        row_bytes = 8 + 32 + 4 * dim
        sealed, plain = bytearray(_CHUNK_ROWS * row_bytes + 16), bytearray(_CHUNK_ROWS * row_bytes)
        for n, count in zip(header["blocks"], header["chunks"], strict=True):
            subjects = np.empty(n, np.int64)
            ids = np.empty(n, _ID)
            vectors = np.empty((n, dim), np.float32)
            for c in range(count):
                (size,) = struct.unpack(">Q", fh.read(8))
                start = c * _CHUNK_ROWS
                m = min(_CHUNK_ROWS, n - start)
                if size != m * row_bytes + 16:
                    raise ValueError("a snapshot chunk has the wrong size")
                nonce = fh.read(12)
                data, out = memoryview(sealed)[:size], memoryview(plain)[: size - 16]
                if fh.readinto(data) != size:
                    raise ValueError("the snapshot is cut short")
                aead.decrypt_into(nonce, data, _chunk_aad(digest, index, total), out)
                index += 1
                a, b = m * 8, m * 40
                subjects[start : start + m] = np.frombuffer(out[:a], np.int64)
                ids[start : start + m] = np.frombuffer(out[a:b], _ID)
                vectors[start : start + m] = np.frombuffer(out[b:], np.float32).reshape(m, dim)
            blocks.append((subjects, ids, vectors))
        if fh.read(1):
            raise ValueError("trailing bytes after the snapshot")
    (main, delta), layouts = blocks, header["layouts"]
    gallery = Gallery(dim, header["seq"])
    gallery._main, gallery._delta = (
        _Block(*arrays, laid_out=[tuple(g) for g in layout] if layout else None)
        for arrays, layout in zip((main, delta), layouts, strict=True)
    )
    gallery._index_delta()
    return gallery
