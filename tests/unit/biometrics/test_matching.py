"""1:N identification: a strict distance, a margin to the runner-up subject, nearest template or
the mean over a subject's templates."""

from __future__ import annotations

import numpy as np
import pytest

from consent_service.biometrics.matching import (
    Gallery,
    Match,
    Rule,
    identify,
    mutually_consistent,
)

DIM = 128
TOLERANCE = 0.5
MARGIN = 0.06


def point(*coords: tuple[int, float]) -> np.ndarray:
    """A 128-d embedding with the given (axis, value) coordinates and zeros elsewhere."""
    v = np.zeros(DIM)
    for axis, value in coords:
        v[axis] = value
    return v


ALICE, BOB, CAROL = 11, 22, 33


def gallery(*rows: tuple[int, np.ndarray]) -> Gallery:
    return Gallery.build(1, list(rows))


def test_clear_match_names_the_subject():
    g = gallery((ALICE, point((0, 1.0))), (BOB, point((1, 1.0))))
    match = identify(g, point((0, 1.0), (5, 0.1)), TOLERANCE, MARGIN)
    assert match == Match(ALICE)
    assert type(match.subject_id) is int


def test_nearest_subject_beyond_tolerance_is_nobody():
    g = gallery((ALICE, point((0, 1.0))), (BOB, point((1, 1.0))))
    assert identify(g, point((0, 1.0), (5, 0.55)), TOLERANCE, MARGIN) == Match(None)


def test_tolerance_is_the_setting_not_a_constant():
    g = gallery((ALICE, point((0, 1.0))))
    probe = point((0, 1.0), (5, 0.45))
    assert identify(g, probe, 0.5, MARGIN).subject_id == ALICE
    assert identify(g, probe, 0.4, MARGIN).subject_id is None


def test_two_subjects_within_the_margin_are_ambiguous():
    # Alice at 0.10, Bob at ~0.128 from the probe: closer together than the 0.06 margin.
    g = gallery((ALICE, point((0, 1.0))), (BOB, point((0, 1.0), (6, 0.08))))
    probe = point((0, 1.0), (5, 0.1))
    assert identify(g, probe, TOLERANCE, MARGIN) == Match(None, ambiguous=True)
    assert identify(g, probe, TOLERANCE, 0.02) == Match(ALICE)


def test_runner_up_beyond_tolerance_but_within_margin_is_still_ambiguous():
    g = gallery((ALICE, point()), (BOB, point((0, 1.0))))
    probe = point((0, 0.48))  # 0.48 from Alice (a match), 0.52 from Bob
    assert identify(g, probe, TOLERANCE, MARGIN) == Match(None, ambiguous=True)


def test_runner_up_just_outside_the_margin_is_not_ambiguous():
    g = gallery((ALICE, point()), (BOB, point((0, 1.0))))
    probe = point((0, 0.4))  # 0.40 from Alice, 0.60 from Bob
    assert identify(g, probe, TOLERANCE, MARGIN) == Match(ALICE)


def test_excluded_subject_is_ignored():
    g = gallery((ALICE, point((0, 1.0))), (BOB, point((0, 1.0), (6, 0.08))))
    probe = point((0, 1.0), (5, 0.1))
    assert identify(g, probe, TOLERANCE, MARGIN, exclude_subject=BOB) == Match(ALICE)
    assert identify(g, probe, TOLERANCE, MARGIN, exclude_subject=ALICE) == Match(BOB)


def test_excluding_the_only_close_subject_leaves_nobody():
    g = gallery((ALICE, point((0, 1.0))), (BOB, point((1, 1.0))))
    assert identify(g, point((0, 1.0)), TOLERANCE, MARGIN, exclude_subject=ALICE) == Match(None)


def test_empty_gallery_matches_nobody():
    g = Gallery.build(0, [])
    assert len(g) == 0
    assert identify(g, point((0, 1.0)), TOLERANCE, MARGIN) == Match(None)


def test_several_templates_per_subject_use_the_nearest():
    # Rows arrive interleaved, as the database returns them; Alice's near template comes last.
    g = gallery(
        (BOB, point((0, -0.5))),
        (ALICE, point((0, 3.0))),
        (CAROL, point((1, 5.0))),
        (ALICE, point((0, 2.0))),
        (ALICE, point()),
    )
    assert len(g) == 5
    # Nearest Alice template is 0.1 away; her mean or first template would be far beyond 0.5.
    assert identify(g, point((0, 0.1)), TOLERANCE, MARGIN) == Match(ALICE)


def test_the_mean_rule_takes_every_template_of_a_subject():
    g = gallery((ALICE, point()), (ALICE, point((0, 0.6))), (BOB, point((1, 2.0))))
    probe = point((0, 0.1))  # 0.1 from one Alice template, 0.5 from the other: mean 0.3
    assert identify(g, probe, TOLERANCE, MARGIN, rule=Rule.MEAN) == Match(ALICE)
    far = point((0, -0.35))  # 0.35 and 0.95: the nearest is within 0.5, the mean (0.65) is not
    assert identify(g, far, TOLERANCE, MARGIN) == Match(ALICE)
    assert identify(g, far, TOLERANCE, MARGIN, rule=Rule.MEAN) == Match(None)


def test_margin_is_between_subjects_not_between_one_subjects_templates():
    g = gallery((ALICE, point()), (ALICE, point((1, 0.02))), (BOB, point((0, 1.0))))
    assert identify(g, point((2, 0.1)), TOLERANCE, MARGIN) == Match(ALICE)


@pytest.mark.parametrize(
    ("embeddings", "consistent"),
    [
        ([], True),
        ([point((0, 1.0))], True),
        ([point(), point((1, 0.3)), point((2, 0.3))], True),  # furthest pair ~0.42
        ([point(), point((1, 0.3)), point((2, 0.7))], False),
        # Neighbours are close, the first and last are not: every pair counts.
        ([point(), point((0, 0.5)), point((0, 1.0))], False),
    ],
)
def test_mutually_consistent_checks_every_pair(embeddings, consistent):
    assert mutually_consistent(embeddings, 0.6) is consistent
