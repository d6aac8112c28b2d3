"""Bounds on the work one uploaded video may cause (kept apart from the decoder: no PyAV import)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VideoLimits:
    """Refused, with the reason, as soon as one is seen to be broken (declared or decoded)."""

    max_seconds: float = 120.0
    max_pixels: int = 3840 * 2160
    max_frames: int = 7200  # frames decoded in all (declared or counted), not frames sampled
    sample_fps: float = 1.0
