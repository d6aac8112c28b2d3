"""Finding and embedding faces. The dlib model loads lazily, once per process, in workers only.

The encoder sits behind `FaceEmbedder`: the dlib one is the only implementation today, and
`face_embedder` is the one place a second model (whose weights a registry package ships under a
licence a commercial service may use) would be added. Its thresholds are its own: re-measure them
with bench/thresholds.py and bench/face_tail.py before it serves."""

from __future__ import annotations

from collections.abc import Callable
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
    """Finds every face in an RGB image and embeds each.

    Contract: `detect` takes an RGB uint8 array (height, width, 3) at full resolution and
    returns one `DetectedFace` per face it trusts, its box in that image's pixels; embeddings of
    one model have one length and are compared by Euclidean distance, smaller meaning more alike
    (`FACE_TOLERANCE` and `FACE_MARGIN` are in that model's units); they are stored as float32.
    `model_name` tags every template made, and a gallery holds one model's templates only, so
    a second model never meets the first's vectors: its people enroll again."""

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
            boxes = self.boxes(rgb, first)
            if not boxes and max(rgb.shape[:2]) <= first:
                return []  # the small copy was the whole image: the larger scan is the same
        if not boxes:
            boxes = self.boxes(rgb, self.detect_max_side)
        if not boxes:
            return []
        encodings = face_recognition.face_encodings(rgb, known_face_locations=boxes, model="small")
        return [
            DetectedFace(b, np.asarray(e, dtype=np.float64))
            for b, e in zip(boxes, encodings, strict=True)
        ]

    def boxes(self, rgb: np.ndarray, max_side: int) -> list[tuple[int, int, int, int]]:
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


# The face models this installation can use, by the name `FACE_MODEL` gives: each makes an
# embedder from the detection settings (the longest side detection runs on, the smallest face,
# the side of an optional first, smaller look).
FACE_MODELS: dict[str, Callable[[int, int, int | None], FaceEmbedder]] = {
    "dlib": lambda detect_max_side, min_size, detect_first_side: DlibFaceEmbedder(
        detect_max_side=detect_max_side, min_size=min_size, detect_first_side=detect_first_side
    ),
}


def face_embedder(
    model: str, detect_max_side: int, min_size: int, detect_first_side: int | None = None
) -> FaceEmbedder:
    """The embedder of the face model named `model` (a key of `FACE_MODELS`)."""
    try:
        make = FACE_MODELS[model]
    except KeyError:
        raise ValueError(f"unknown face model {model!r}; known: {', '.join(FACE_MODELS)}") from None
    return make(detect_max_side, min_size, detect_first_side)
