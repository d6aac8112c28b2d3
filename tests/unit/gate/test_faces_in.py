"""The gate's per-item seam: images give one person per face, videos one person per track."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from consent_service.biometrics.faces import DetectedFace
from consent_service.biometrics.service import FaceMatching
from consent_service.errors import MediaRejected
from consent_service.gate.pipeline import faces_in
from consent_service.media.limits import VideoLimits
from tests import videos


class ByBrightness:
    """A stand-in face finder for decoding tests: a frame's brightness (in steps of 40) names the
    one person it shows; black shows nobody."""

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        who = round(float(rgb.mean()) / 40)
        if who == 0:
            return []
        v = np.zeros(128)
        v[who] = 1.0
        return [DetectedFace((who, 30, 20, 0), v)]


def matching(**video) -> FaceMatching:
    return FaceMatching(
        embedder=ByBrightness(),
        gallery=None,  # type: ignore[arg-type]  # not used by faces_in
        tolerance=0.5,
        margin=0.06,
        max_pixels=10**7,
        video=VideoLimits(**{"max_seconds": 60, "sample_fps": 1.0, **video}),
        track_votes=3,
    )


def frames(*levels: int, seconds_each: int = 1, fps: int = 4) -> list[np.ndarray]:
    return [
        np.full((48, 64, 3), level, np.uint8) for level in levels for _ in range(fps * seconds_each)
    ]


def test_the_same_person_in_many_frames_is_one_track():
    data = videos.encode(frames(120, 120, 120, 120, 0, 200, 200), fps=4)
    tracks = faces_in(data, matching())
    assert [(t.sightings, len(t.embeddings), t.first_seen) for t in tracks] == [
        (4, 3, 0.0),
        (2, 2, 5.0),
    ]


def test_a_video_showing_nobody_has_no_tracks():
    assert faces_in(videos.encode(frames(0, 0), fps=4), matching()) == []


def test_video_limits_come_from_the_matching_settings():
    data = videos.encode(frames(120, 120, 120), fps=4)
    with pytest.raises(MediaRejected, match="limit is 2 s"):
        faces_in(data, matching(max_seconds=2))


def test_an_image_is_one_track_per_face():
    out = io.BytesIO()
    Image.fromarray(np.full((48, 64, 3), 80, np.uint8)).save(out, "PNG")
    (track,) = faces_in(out.getvalue(), matching())
    assert track.sightings == 1 and len(track.embeddings) == 1


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n", "a playlist"),
        (b"ffconcat version 1.0\nfile 'x.mp4'\n", "a playlist"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 32, "an audio file"),
    ],
)
def test_playlists_and_audio_are_refused_for_faces(data, what):
    with pytest.raises(MediaRejected, match=f"The file is {what}; a face operation needs"):
        faces_in(data, matching())


def test_anything_else_gets_the_image_decoders_answer():
    with pytest.raises(MediaRejected, match="not an image we can read"):
        faces_in(b"hello", matching())
