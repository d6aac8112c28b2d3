"""A real face photo framed as a webcam would show it: the start of the live consent session's
fake camera clips (tests/live_clips.py) and of the attack bench (bench/liveness_attacks.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

WIDTH, HEIGHT = 640, 480


def _face_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    import face_recognition

    boxes = face_recognition.face_locations(rgb)
    assert len(boxes) == 1, boxes
    return boxes[0]


def portrait(photo: Path, mirror: bool = False) -> Image.Image:
    """The photo's face, centred in a camera-sized frame with room around it."""
    image = Image.open(photo).convert("RGB")
    if mirror:
        image = ImageOps.mirror(image)
    top, right, bottom, left = _face_box(np.asarray(image))
    side = (bottom - top) * 2.4  # the face fills about 40% of the frame's height
    cx, cy = (left + right) / 2, (top + bottom) / 2
    box = (cx - side * 2 / 3, cy - side / 2, cx + side * 2 / 3, cy + side / 2)
    return image.crop(tuple(round(v) for v in box)).resize((WIDTH, HEIGHT))
