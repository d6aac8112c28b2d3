"""Grouping one person's faces across frames, and identifying each group (track) once."""

from __future__ import annotations

import numpy as np
import pytest

from consent_service.biometrics.faces import DetectedFace
from consent_service.biometrics.matching import Gallery, Match
from consent_service.biometrics.tracks import (
    FaceTrack,
    group_embeddings,
    identify_track,
    identify_tracks,
    track_faces,
)
from consent_service.media.video import SampledFrame

DIM = 128
SAME = 0.6  # the 1:1 same-person distance
rng = np.random.default_rng(7)


def person(axis: int) -> np.ndarray:
    v = np.zeros(DIM)
    v[axis] = 1.0
    return v


def seen(center: np.ndarray, jitter: float = 0.1) -> np.ndarray:
    """One sighting: the person's point moved by `jitter` in a random direction."""
    d = rng.normal(size=DIM)
    return center + jitter * d / np.linalg.norm(d)


class TestGrouping:
    def test_nothing(self):
        assert group_embeddings([], [], SAME) == []

    def test_one_person_in_every_frame_is_one_group(self):
        a = person(0)
        faces = [seen(a) for _ in range(30)]
        (group,) = group_embeddings(faces, list(range(30)), SAME)
        assert sorted(group) == list(range(30))

    def test_two_people_in_every_frame_are_two_groups(self):
        a, b = person(0), person(1)
        faces, frames = [], []
        for frame in range(10):
            faces += [seen(a), seen(b)]
            frames += [frame, frame]
        groups = group_embeddings(faces, frames, SAME)
        assert sorted(sorted(g) for g in groups) == [list(range(0, 20, 2)), list(range(1, 20, 2))]

    def test_faces_in_one_frame_never_merge_even_when_alike(self):
        """Twins side by side in each frame: two people, however close their embeddings."""
        a = person(0)
        twin = a + 0.3 * person(1)
        groups = group_embeddings([a, twin, a, twin], [0, 0, 1, 1], SAME)
        assert sorted(sorted(g) for g in groups) == [[0, 2], [1, 3]]

    def test_beyond_the_same_person_distance_stays_apart(self):
        a, b = person(0), person(0) + 0.7 * person(1)
        assert len(group_embeddings([a, b], [0, 1], SAME)) == 2

    def test_within_it_merges(self):
        a, b = person(0), person(0) + 0.5 * person(1)
        assert len(group_embeddings([a, b], [0, 1], SAME)) == 1

    def test_biggest_group_first_and_most_central_face_first(self):
        a, b = person(0), person(1)
        outlier = a + 0.45 * person(2)
        faces = [outlier, a, a + 0.05 * person(3), b]
        groups = group_embeddings(faces, [0, 1, 2, 3], SAME)
        assert groups[0][0] == 1 and groups[0][-1] == 0
        assert groups[1] == [3]

    def test_frames_must_match_embeddings(self):
        with pytest.raises(ValueError):
            group_embeddings([person(0)], [0, 1], SAME)


ALICE, BOB = 11, 22
TOL, MARGIN = 0.5, 0.06


def gallery() -> Gallery:
    return Gallery.build(1, [(ALICE, person(0)), (BOB, person(1))])


class TestIdentifyTrack:
    def test_every_vote_for_one_subject(self):
        assert identify_track(gallery(), [seen(person(0)) for _ in range(5)], TOL, MARGIN) == Match(
            ALICE
        )

    def test_nobody(self):
        assert identify_track(gallery(), [person(5), person(6)], TOL, MARGIN) == Match(None)

    def test_no_embeddings_is_nobody(self):
        assert identify_track(gallery(), [], TOL, MARGIN) == Match(None)

    def test_a_track_that_matches_two_subjects_is_ambiguous(self):
        votes = [person(0), person(0), person(0), person(1)]
        assert identify_track(gallery(), votes, TOL, MARGIN) == Match(None, ambiguous=True)

    def test_a_minority_match_is_ambiguous_not_nobody(self):
        votes = [person(0), person(5), person(6)]
        assert identify_track(gallery(), votes, TOL, MARGIN) == Match(None, ambiguous=True)

    def test_one_ambiguous_vote_makes_the_track_ambiguous(self):
        g = Gallery.build(1, [(ALICE, person(0)), (BOB, person(0) + 0.4 * person(1))])
        assert identify_track(g, [person(0)] * 3, TOL, MARGIN) == Match(ALICE)
        halfway = person(0) + 0.2 * person(1)  # as close to BOB as to ALICE
        votes = [person(0), person(0), halfway]
        assert identify_track(g, votes, TOL, MARGIN) == Match(None, ambiguous=True)

    def test_a_single_face_is_identified_as_before(self):
        assert identify_track(gallery(), [person(1)], TOL, MARGIN) == Match(BOB)

    def test_a_jobs_tracks_in_one_search_as_one_by_one(self):
        tracks = [
            [seen(person(0)) for _ in range(3)],
            [],
            [person(0), person(0), person(1)],
            [person(5)],
            [person(1)],
        ]
        one_by_one = [identify_track(gallery(), t, TOL, MARGIN) for t in tracks]
        assert identify_tracks(gallery(), tracks, TOL, MARGIN) == one_by_one
        assert one_by_one == [
            Match(ALICE), Match(None), Match(None, ambiguous=True), Match(None), Match(BOB)
        ]  # fmt: skip


class Painted:
    """Embeds the one "face" a test frame carries: its pixel value picks the person."""

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        value = int(rgb[0, 0, 0])
        return [DetectedFace((value, 20, 10, 0), seen(person(value % DIM), 0.05))] if value else []


def test_track_faces_keeps_the_most_central_embeddings_and_first_sighting():
    frames = [
        SampledFrame(float(t), np.full((4, 4, 3), 3 if t < 6 else 0, np.uint8)) for t in range(8)
    ]
    frames += [SampledFrame(8.0 + t, np.full((4, 4, 3), 9, np.uint8)) for t in range(2)]
    tracks = track_faces(frames, Painted(), SAME, votes=4)
    assert [(t.sightings, len(t.embeddings), t.first_seen) for t in tracks] == [
        (6, 4, 0.0),
        (2, 2, 8.0),
    ]
    assert all(isinstance(t, FaceTrack) for t in tracks)
    assert tracks[0].box == (3, 20, 10, 0)
