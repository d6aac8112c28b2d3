"""The video settings reach the gate's face matching."""

from __future__ import annotations

import base64

from consent_service.media.limits import VideoLimits
from consent_service.services import Services
from consent_service.settings import Settings


def test_video_settings_become_the_matching_limits(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEO_MAX_SECONDS", "30")
    monkeypatch.setenv("VIDEO_SAMPLE_FPS", "2.5")
    settings = Settings(consent_service_home=tmp_path, video_max_pixels=1000, video_max_frames=90)
    secrets = {"secret_key": "x" * 32, "template_kek": base64.b64encode(bytes(32)).decode()}
    matching = Services(settings, secrets).face_matching
    assert matching.video == VideoLimits(
        max_seconds=30, max_pixels=1000, max_frames=90, sample_fps=2.5
    )
    assert matching.track_votes == 5
