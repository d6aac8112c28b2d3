"""Finding and embedding faces. The dlib model loads lazily, once per process, in workers only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

FACE_MODEL = "face_recognition/dlib-resnet-v1"


@dataclass(frozen=True)
class DetectedFace:
    box: tuple[int, int, int, int]  # top, right, bottom, left in the full-resolution image
    embedding: np.ndarray  # 128 floats


class FaceEmbedder(Protocol):
    """Finds every face in an RGB image and embeds each; `model_name` tags the templates made."""

    model_name: str

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]: ...


class DlibFaceEmbedder:
    """face_recognition (dlib): HOG (or CNN) detection on a downscaled copy, 5-point landmarks,
    ResNet encoding at full resolution.

    With `detect_first_side`, detection first scans a copy that small (HOG's cost grows with the
    pixels it scans, and most photos show their people large); only a photo where no face is
    found there is scanned again on the larger copy (`detect_max_side`), so a photo whose faces
    are all small is still found. A small face beside a large one is missed, so it is off by
    default. Encodings come from the full-resolution image either way."""

    model_name = FACE_MODEL

    def __init__(
        self,
        detect_max_side: int = 1024,
        min_size: int = 40,
        detector: str = "hog",
        upsample: int = 1,
        detect_first_side: int | None = None,
    ):
        self.detect_max_side = detect_max_side
        self.detect_first_side = detect_first_side
        self.min_size = min_size
        self.detector = detector
        self.upsample = upsample

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        import face_recognition  # heavy: dlib and its models, loaded on first use

        boxes: list[tuple[int, int, int, int]] = []
        first = self.detect_first_side
        if first is not None and first < self.detect_max_side:
            boxes = self._boxes(rgb, first)
            if not boxes and max(rgb.shape[:2]) <= first:
                return []  # the small copy was the whole image: the larger scan is the same
        if not boxes:
            boxes = self._boxes(rgb, self.detect_max_side)
        if not boxes:
            return []
        encodings = face_recognition.face_encodings(rgb, known_face_locations=boxes, model="small")
        return [
            DetectedFace(b, np.asarray(e, dtype=np.float64))
            for b, e in zip(boxes, encodings, strict=True)
        ]

    def _boxes(self, rgb: np.ndarray, max_side: int) -> list[tuple[int, int, int, int]]:
        """The faces HOG finds on a copy scaled down to `max_side`, as boxes of the
        full-resolution image, at least `min_size` pixels on their shorter side."""
        import face_recognition

        height, width = rgb.shape[:2]
        scale = min(1.0, max_side / max(height, width))
        small = rgb
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
        boxes = []
        for top, right, bottom, left in face_recognition.face_locations(
            small, number_of_times_to_upsample=self.upsample, model=self.detector
        ):
            box = (
                max(0, round(top / scale)),
                min(width, round(right / scale)),
                min(height, round(bottom / scale)),
                max(0, round(left / scale)),
            )
            if min(box[2] - box[0], box[1] - box[3]) >= self.min_size:
                boxes.append(box)
        return boxes
