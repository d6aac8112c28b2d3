"""A gallery split into shards by subject decides as the whole gallery: each shard answers its
two nearest subjects exactly, and `merge_nearest` applies the rule over their union."""

from __future__ import annotations

import numpy as np
import pytest

from consent_service.biometrics.gallery import Gallery, Rule, merge_nearest, shard_of, shards_of
from tests.unit.biometrics.test_gallery import (
    _placed,
    probes_near,
    random_rows,
    reference_identify,
    unit,
)


def sharded_identify(rows, probes, shards: int, tolerance, margin, exclude=None, rule=Rule.NEAREST):
    parts = [
        Gallery.build(1, [r for r in rows if shard_of(r[0], shards) == k]) for k in range(shards)
    ]
    answers = [part.nearest_two(probes, exclude_subject=exclude, rule=rule) for part in parts]
    return [
        merge_nearest([answer[p] for answer in answers], tolerance, margin)
        for p in range(len(probes))
    ]


@pytest.mark.parametrize("rule", list(Rule))
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shards", [1, 2, 3])
def test_shards_decide_as_the_whole_gallery(seed, shards, rule):
    rng = np.random.default_rng(seed)
    rows = random_rows(rng, subjects=int(rng.integers(2, 60)))
    whole = Gallery.build(1, rows)
    probes = probes_near(rng, rows, 40)
    for tolerance, margin in [(0.5, 0.06), (0.6, 0.0), (0.3, 0.2), (1.5, 0.01)]:
        excluded = rows[rng.integers(len(rows))][0]
        for exclude in (None, excluded):
            want = whole.identify_many(probes, tolerance, margin, exclude, rule)
            got = sharded_identify(rows, probes, shards, tolerance, margin, exclude, rule)
            assert got == want
            assert got == [
                reference_identify(rows, p, tolerance, margin, exclude, rule) for p in probes
            ]


@pytest.mark.parametrize("seed", range(4))
def test_near_ties_across_shards_decide_as_before(seed):
    """The runner-up a hair either side of `best + margin`, in another shard than the best."""
    rng = np.random.default_rng(200 + seed)
    tolerance, margin = 0.5, 0.06
    a, b = 7, next(s for s in range(8, 100) if shard_of(s, 2) != shard_of(7, 2))
    for hair in (-3e-7, -2e-8, 0.0, 2e-8, 3e-7):
        probe = unit(rng)
        best = rng.uniform(0.2, 0.4)
        rows = [
            (a, _placed(rng, probe, best)),
            (a, _placed(rng, probe, best + 0.3)),
            (b, _placed(rng, probe, best + margin + hair)),
            (3, _placed(rng, probe, 1.1)),
        ]
        want = reference_identify(rows, probe, tolerance, margin)
        assert sharded_identify(rows, [probe], 2, tolerance, margin) == [want]


@pytest.mark.parametrize("seed", range(4))
def test_mean_near_ties_across_shards_decide_as_float64(seed):
    """By the mean rule: the runner-up's mean a hair either side of `best + margin` and a third
    subject's a hair either side of the tolerance, each in another shard than the best; with
    the best excluded too (enrollment's duplicate check excludes the enrolling subject)."""
    rng = np.random.default_rng(400 + seed)
    tolerance, margin = 0.5, 0.06
    a = 7
    b = next(s for s in range(8, 100) if shard_of(s, 2) != shard_of(a, 2))
    c = next(s for s in range(b + 1, 200) if shard_of(s, 2) != shard_of(a, 2))
    for hair in (-3e-7, -1e-7, -2e-8, 0.0, 2e-8, 1e-7, 3e-7):
        probe = unit(rng)
        best = rng.uniform(0.2, 0.4)
        spread = rng.uniform(0.01, 0.1)
        rows = [
            (a, _placed(rng, probe, best - spread)),
            (a, _placed(rng, probe, best + spread)),
            (b, _placed(rng, probe, best + margin + hair - 0.05)),
            (b, _placed(rng, probe, best + margin + hair + 0.05)),
            (b, _placed(rng, probe, best + margin + hair)),
            (c, _placed(rng, probe, tolerance + hair)),
            (3, _placed(rng, probe, 1.2)),
        ]
        for exclude in (None, a, b):
            want = reference_identify(rows, probe, tolerance, margin, exclude, Rule.MEAN)
            got = sharded_identify(rows, [probe], 2, tolerance, margin, exclude, Rule.MEAN)
            assert got == [want]


def test_the_rules_rank_a_shards_subjects_differently():
    """One close template beside a far one: nearest by `NEAREST`, not by `MEAN`."""
    rng = np.random.default_rng(6)
    probe = unit(rng)
    rows = [
        (1, _placed(rng, probe, 0.2)),
        (1, _placed(rng, probe, 0.9)),
        (2, _placed(rng, probe, 0.4)),
    ]
    gallery = Gallery.build(1, rows)
    (nearest,) = gallery.nearest_two([probe])
    (mean,) = gallery.nearest_two([probe], rule=Rule.MEAN)
    assert [s for s, _ in nearest] == [1, 2]
    assert [s for s, _ in mean] == [2, 1]
    assert mean[1][1] == pytest.approx(0.55, abs=1e-6)


def test_a_shard_answers_at_most_two_subjects_nearest_first():
    rng = np.random.default_rng(5)
    probe = unit(rng)
    rows = [(s, _placed(rng, probe, d)) for s, d in ((1, 0.3), (2, 0.5), (3, 0.4), (1, 0.35))]
    (answer,) = Gallery.build(1, rows).nearest_two([probe])
    assert [s for s, _ in answer] == [1, 3]
    assert answer[0][1] == pytest.approx(0.3, abs=1e-6)
    assert Gallery().nearest_two([probe]) == [()]


def test_the_shard_of_a_subject_is_stable_and_even():
    ids = np.arange(1, 100_001)
    counts = np.bincount(shards_of(ids, 4), minlength=4)
    assert counts.min() > 0.97 * len(ids) / 4
    # Pinned: a subject never moves shard between versions or hosts.
    assert [shard_of(s, 4) for s in (1, 2, 3, 1_000_000)] == [1, 2, 1, 3]
    assert [shard_of(s, 1) for s in (1, 99)] == [0, 0]
