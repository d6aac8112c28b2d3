"""The gallery engine decides exactly as the old `identify` did (and, by the mean rule, as the same
computation in float64 does); changes applied from the log equal a rebuild; snapshots hold no
plaintext and open only for their own gallery."""

from __future__ import annotations

import secrets
import threading

import numpy as np
import pytest
from cryptography.exceptions import InvalidTag

from consent_service.biometrics.gallery import (
    Gallery,
    Match,
    Rule,
    open_snapshot,
    seal_snapshot,
)


def reference_identify(
    rows, embedding, tolerance, margin, exclude_subject=None, rule=Rule.NEAREST
) -> Match:
    """`matching.identify` as it was before the engine (float64, `np.unique` per query), verbatim
    but for taking the rows instead of the old `Gallery`, and for the mean rule beside it."""
    if not rows:
        return Match(None)
    rows = sorted(rows, key=lambda r: r[0])
    vectors = np.vstack([v for _, v in rows])
    subject_ids = np.array([s for s, _ in rows], dtype=np.int64)
    distances = np.linalg.norm(vectors - embedding, axis=1)
    subjects, starts = np.unique(subject_ids, return_index=True)
    if rule is Rule.MEAN:
        per_subject = np.add.reduceat(distances, starts) / np.diff(np.append(starts, len(rows)))
    else:
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


def f32(v: np.ndarray) -> np.ndarray:
    """Embeddings as the models give them: float32 values (dlib and resemblyzer compute in
    float32); the engine stores float32, so these are the vectors both sides see."""
    return np.asarray(v, np.float32).astype(np.float64)


def unit(rng: np.random.Generator, dim: int = 128) -> np.ndarray:
    v = rng.normal(size=dim)
    return v / np.linalg.norm(v)


def random_rows(rng, subjects: int, dim: int = 128, spread: float = 0.35):
    """Subjects with 1-4 templates each around a centre, listed in shuffled order."""
    rows = []
    for s in rng.choice(10_000, size=subjects, replace=False):
        centre = unit(rng, dim)
        for _ in range(rng.integers(1, 5)):
            rows.append((int(s), f32(centre + rng.normal(0, spread / np.sqrt(dim), dim))))
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def probes_near(rng, rows, count: int, dim: int = 128):
    """Probes near some templates (matches, near misses) and some far from all."""
    out = []
    for _ in range(count):
        if rng.random() < 0.8:
            _, v = rows[rng.integers(len(rows))]
            out.append(v + rng.normal(0, rng.uniform(0.01, 0.4) / np.sqrt(dim), dim))
        else:
            out.append(unit(rng, dim))
    return out


def assert_same_as_reference(
    gallery, rows, probes, tolerance, margin, exclude=None, rule=Rule.NEAREST
):
    got = gallery.identify_many(probes, tolerance, margin, exclude_subject=exclude, rule=rule)
    want = [reference_identify(rows, p, tolerance, margin, exclude, rule) for p in probes]
    assert got == want


@pytest.mark.parametrize("rule", list(Rule))
@pytest.mark.parametrize("seed", range(12))
def test_random_galleries_decide_as_before(seed, rule):
    rng = np.random.default_rng(seed)
    rows = random_rows(rng, subjects=int(rng.integers(2, 60)))
    gallery = Gallery.build(1, rows)
    probes = probes_near(rng, rows, 40)
    for tolerance, margin in [(0.5, 0.06), (0.6, 0.0), (0.3, 0.2), (1.5, 0.01)]:
        assert_same_as_reference(gallery, rows, probes, tolerance, margin, rule=rule)
        excluded = rows[rng.integers(len(rows))][0]
        assert_same_as_reference(gallery, rows, probes, tolerance, margin, excluded, rule)


def _placed(rng, probe: np.ndarray, distance: float) -> np.ndarray:
    """A float32 vector `distance` (to float32 precision) away from `probe`."""
    return f32(probe + distance * unit(rng, len(probe)))


@pytest.mark.parametrize("seed", range(6))
def test_ties_at_the_margin_and_the_tolerance_decide_as_before(seed, monkeypatch):
    """Runner-ups placed a hair either side of `best + margin`, and bests a hair either side of
    the tolerance: float32 cannot tell these apart, so the engine must measure them again."""
    rng = np.random.default_rng(100 + seed)
    tolerance, margin = 0.5, 0.06
    refined = []
    original = Gallery._decide_exactly
    monkeypatch.setattr(
        Gallery,
        "_decide_exactly",
        lambda self, *a, **k: refined.append(1) or original(self, *a, **k),
    )
    for hair in (-3e-7, -1e-7, -2e-8, 0.0, 2e-8, 1e-7, 3e-7):
        probe = unit(rng)
        best = rng.uniform(0.2, 0.45)
        rows = [
            (7, _placed(rng, probe, best)),
            (7, _placed(rng, probe, best + 0.3)),
            (9, _placed(rng, probe, best + margin + hair)),
            (9, _placed(rng, probe, 0.9)),
            (3, _placed(rng, probe, tolerance + hair)),  # alone near the tolerance when 7 is out
            (4, _placed(rng, probe, 1.2)),
        ]
        gallery = Gallery.build(1, rows)
        for exclude in (None, 7, 9):
            assert_same_as_reference(gallery, rows, [probe], tolerance, margin, exclude)
        # The runner-up tied exactly with the best: ambiguous for any positive margin.
        tied = rows + [(5, rows[0][1])]
        assert_same_as_reference(Gallery.build(1, tied), tied, [probe], tolerance, margin)
    assert refined, "near ties must be decided by the exact (float64) path"


@pytest.mark.parametrize("seed", range(6))
def test_mean_ties_at_the_margin_and_the_tolerance_decide_as_float64(seed, monkeypatch):
    """By the mean rule: subjects whose mean distance sits a hair either side of the tolerance
    or of `best + margin` are measured again in float64, and decide as the reference does."""
    rng = np.random.default_rng(300 + seed)
    tolerance, margin = 0.5, 0.06
    refined = []
    original = Gallery._decide_exactly
    monkeypatch.setattr(
        Gallery,
        "_decide_exactly",
        lambda self, *a, **k: refined.append(1) or original(self, *a, **k),
    )
    for hair in (-3e-7, -1e-7, -2e-8, 0.0, 2e-8, 1e-7, 3e-7):
        probe = unit(rng)
        best = rng.uniform(0.2, 0.4)
        spread = rng.uniform(0.01, 0.1)
        rows = [
            (7, _placed(rng, probe, best - spread)),  # mean `best`
            (7, _placed(rng, probe, best + spread)),
            (9, _placed(rng, probe, best + margin + hair - 0.05)),  # mean `best + margin + hair`
            (9, _placed(rng, probe, best + margin + hair + 0.05)),
            (9, _placed(rng, probe, best + margin + hair)),
            (3, _placed(rng, probe, tolerance + hair)),  # alone near the tolerance when 7 is out
            (4, _placed(rng, probe, 1.2)),
        ]
        gallery = Gallery.build(1, rows)
        for exclude in (None, 7, 9):
            assert_same_as_reference(gallery, rows, [probe], tolerance, margin, exclude, Rule.MEAN)
    assert refined, "near ties must be decided by the exact (float64) path"


def test_the_mean_rule_needs_every_template_near_not_one():
    """A probe near one of a subject's templates and far from the others: the nearest rule
    names them, the mean rule does not."""
    rng = np.random.default_rng(11)
    probe = unit(rng)
    rows = [(1, _placed(rng, probe, 0.3)), (1, _placed(rng, probe, 0.8)), (2, unit(rng))]
    gallery = Gallery.build(1, rows)
    assert gallery.identify(probe, 0.5, 0.06) == Match(1)
    assert gallery.identify(probe, 0.5, 0.06, rule=Rule.MEAN) == Match(None)
    assert gallery.identify(probe, 0.56, 0.06, rule=Rule.MEAN) == Match(1)  # mean 0.55


def test_a_removed_template_leaves_the_mean_of_the_others():
    rng = np.random.default_rng(12)
    probe = unit(rng)
    rows = [(1, _placed(rng, probe, 0.3)), (1, _placed(rng, probe, 0.9)), (2, unit(rng))]
    gallery = Gallery.build(0, rows, ids=["near", "far", "other"])
    assert gallery.identify(probe, 0.5, 0.0, rule=Rule.MEAN) == Match(None)  # mean 0.6
    gallery.apply(1, removed=[("far", 1)])
    assert gallery.identify(probe, 0.5, 0.0, rule=Rule.MEAN) == Match(1)  # mean 0.3
    gallery.apply(2, removed=[("near", 1)])  # nothing left of subject 1
    assert gallery.identify(probe, 2.0, 0.0, rule=Rule.MEAN) == Match(2)


def test_a_subjects_templates_in_the_matrix_and_the_delta_count_together():
    rng = np.random.default_rng(13)
    probe = unit(rng)
    gallery = Gallery.build(0, [(1, _placed(rng, probe, 0.2))], ids=["a"])
    gallery.apply(1, added=[("b", 1, _placed(rng, probe, 0.9)), ("c", 2, unit(rng))])
    assert len(gallery._delta) == 2  # subject 1 now in both blocks
    assert gallery.identify(probe, 0.5, 0.0, rule=Rule.MEAN) == Match(None)  # mean 0.55
    assert gallery.identify(probe, 0.56, 0.0, rule=Rule.MEAN) == Match(1)


def test_empty_gallery_matches_nobody():
    probe = np.ones(128) / np.sqrt(128)
    assert Gallery.build(0, []).identify_many([probe, probe], 0.5, 0.06) == [Match(None)] * 2
    assert Gallery().identify_many([probe], 0.5, 0.06) == [Match(None)]
    assert Gallery.build(0, []).identify_many([], 0.5, 0.06) == []


def test_excluding_the_only_subject_matches_nobody():
    v = f32(np.ones(128) / np.sqrt(128))
    assert Gallery.build(1, [(5, v)]).identify(v, 0.5, 0.06, exclude_subject=5) == Match(None)


def test_one_product_for_a_job_gives_each_probes_own_answer():
    rng = np.random.default_rng(7)
    rows = random_rows(rng, subjects=30)
    gallery = Gallery.build(1, rows)
    probes = probes_near(rng, rows, 6)
    assert gallery.identify_many(probes, 0.5, 0.06) == [
        gallery.identify(p, 0.5, 0.06) for p in probes
    ]


# ---------------------------------------------------------------------------- the change log
def _with_ids(rows):
    return [(f"t{i:030d}", s, v) for i, (s, v) in enumerate(rows)]


def _replay(rng, changes: int, start: int = 50):
    """A gallery built from `start` templates, then `changes` random additions and removals
    applied as the log delivers them (a few per batch); and what is left at the end."""
    initial = _with_ids(random_rows(rng, subjects=start))
    gallery = Gallery.build(0, [(s, v) for _, s, v in initial], ids=[t for t, _, _ in initial])
    live = {t: (s, v) for t, s, v in initial}
    seq, counter = 0, 10_000
    while changes > 0:
        added, removed = [], []
        for _ in range(int(rng.integers(1, 6))):
            if live and rng.random() < 0.35:
                t = list(live)[rng.integers(len(live))]
                removed.append((t, live.pop(t)[0]))
            else:
                s = int(rng.integers(0, 12_000))
                t = f"n{counter:030d}"
                counter += 1
                v = f32(unit(rng))
                live[t] = (s, v)
                added.append((t, s, v))
            changes -= 1
        seq += 1
        gallery.apply(seq, added=added, removed=removed)
    return gallery, live, seq


@pytest.mark.parametrize("seed", range(4))
def test_applying_the_log_equals_a_rebuild(seed):
    rng = np.random.default_rng(200 + seed)
    gallery, live, seq = _replay(rng, changes=120)
    rows = [(s, v) for s, v in live.values()]
    rebuilt = Gallery.build(seq, rows, ids=list(live))
    assert gallery.seq == seq
    assert len(gallery) == len(rebuilt) == len(live)
    for mine, theirs in zip(gallery.arrays(), rebuilt.arrays(), strict=True):
        assert np.array_equal(np.sort(mine, axis=0), np.sort(theirs, axis=0))
    probes = probes_near(rng, rows, 30) if rows else []
    for tolerance, margin in [(0.5, 0.06), (1.3, 0.0)]:
        for rule in Rule:
            assert_same_as_reference(gallery, rows, probes, tolerance, margin, rule=rule)
            assert gallery.identify_many(
                probes, tolerance, margin, rule=rule
            ) == rebuilt.identify_many(probes, tolerance, margin, rule=rule)


def test_many_additions_compact_into_one_matrix_and_still_equal_a_rebuild():
    rng = np.random.default_rng(3)
    gallery, live, seq = _replay(rng, changes=2_000, start=10)
    assert len(gallery._delta) < 1024  # compacted at least once on the way
    rows = [(s, v) for s, v in live.values()]
    probes = probes_near(rng, rows, 20)
    assert_same_as_reference(gallery, rows, probes, 0.5, 0.06)
    assert_same_as_reference(gallery, rows, probes, 0.5, 0.06, rule=Rule.MEAN)


def test_replaying_changes_already_applied_is_harmless():
    rng = np.random.default_rng(4)
    rows = _with_ids(random_rows(rng, subjects=10))
    gallery = Gallery.build(0, [(s, v) for _, s, v in rows], ids=[t for t, _, _ in rows])
    gallery.apply(1, added=rows[:3], removed=[("never-seen", 1)])
    assert len(gallery) == len(rows)
    t, s, _ = rows[0]
    gallery.apply(2, removed=[(t, s)])
    gallery.apply(3, removed=[(t, s)])
    assert len(gallery) == len(rows) - 1


def test_a_removed_template_is_gone_from_memory():
    v = f32(np.full(128, 0.0883883))
    gallery = Gallery.build(0, [(1, v), (2, -v)], ids=["a", "b"])
    gallery.apply(1, removed=[("a", 1)])
    assert gallery.identify(v, 0.5, 0.0) == Match(None)
    assert not np.any(np.all(gallery._main.vectors == v.astype(np.float32), axis=1))


def test_the_first_additions_set_the_dimension():
    gallery = Gallery()
    v = f32(np.ones(256) / 16)
    gallery.apply(1, added=[("a", 4, v)])
    assert gallery.dim == 256
    assert gallery.identify(v, 0.1, 0.0) == Match(4)


def test_searches_and_changes_from_many_threads():
    rng = np.random.default_rng(5)
    rows = _with_ids(random_rows(rng, subjects=40))
    gallery = Gallery.build(0, [(s, v) for _, s, v in rows], ids=[t for t, _, _ in rows])
    stable = rows[0]  # never removed: always found
    errors = []

    def search():
        for _ in range(40):
            m = gallery.identify(stable[2], 0.01, 0.0)
            if m != Match(stable[1]):
                errors.append(m)

    def change():
        for i in range(40):
            t, s, v = rows[1 + i % (len(rows) - 1)]
            gallery.apply(i, removed=[(t, s)])
            gallery.apply(i, added=[(t, s, v)])

    threads = [threading.Thread(target=f) for f in (search, search, change)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


# ---------------------------------------------------------------------------- snapshots
BINDING = {"modality": "face", "model": "m", "last": "t000"}


@pytest.fixture
def sealed(tmp_path):
    rng = np.random.default_rng(6)
    rows = _with_ids(random_rows(rng, subjects=40))
    gallery = Gallery.build(9, [(s, v) for _, s, v in rows], ids=[t for t, _, _ in rows])
    gallery.apply(10, removed=[(rows[0][0], rows[0][1])])
    key = secrets.token_bytes(32)
    path = tmp_path / "face.gallery"
    seal_snapshot(gallery, key, path, BINDING)
    return gallery, key, path, rows


def test_snapshot_opens_to_the_same_gallery(sealed):
    gallery, key, path, rows = sealed
    opened = open_snapshot(key, path, BINDING)
    assert opened.seq == 10
    for mine, theirs in zip(opened.arrays(), gallery.arrays(), strict=True):
        assert np.array_equal(mine, theirs)
    probes = [v for _, _, v in rows[:10]]
    assert opened.identify_many(probes, 0.5, 0.06) == gallery.identify_many(probes, 0.5, 0.06)


def test_snapshot_file_holds_no_plaintext(sealed, tmp_path):
    gallery, _, path, rows = sealed
    blob = path.read_bytes()
    subjects, ids, vectors = gallery.arrays()
    for row in vectors:
        assert row.tobytes()[:16] not in blob
        assert row.astype("<f8").tobytes()[:16] not in blob
    assert vectors[:4].tobytes()[:64] not in blob
    assert ids[:4].tobytes() not in blob
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_snapshot_refuses_another_key_binding_or_any_change(sealed):
    _, key, path, _ = sealed
    with pytest.raises(InvalidTag):
        open_snapshot(secrets.token_bytes(32), path, BINDING)
    with pytest.raises(ValueError):
        open_snapshot(key, path, {**BINDING, "last": "t999"})
    blob = bytearray(path.read_bytes())
    blob[-20] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(InvalidTag):
        open_snapshot(key, path, BINDING)


def test_snapshot_header_cannot_be_edited(sealed):
    _, key, path, _ = sealed
    blob = path.read_bytes().replace(b'"seq": 10', b'"seq": 11')
    path.write_bytes(blob)
    with pytest.raises(InvalidTag):
        open_snapshot(key, path, BINDING)
