"""Finding and embedding faces. The dlib model loads lazily, once per process, in workers only.

The encoder sits behind `FaceEmbedder`: the dlib one is the only implementation today, and
`face_embedder` is the one place a second model (whose weights a registry package ships under a
licence a commercial service may use) would be added. Its thresholds are its own: re-measure them
with bench/thresholds.py and bench/face_tail.py before it serves."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from consent_service.biometrics.face_proposals import (
    CenterFace,
    ModelMissing,
    proposed_faces,
    shrunk,
)

log = logging.getLogger(__name__)

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
    """face_recognition (dlib): faces found on a downscaled copy, 5-point landmarks, ResNet
    encoding at full resolution.

    With `proposer_model` (the default's CenterFace weights, FACE_DETECTOR=proposed), a small
    network proposes where faces are and HOG confirms each at the scales the whole-copy scan
    would use (`face_proposals`): the same faces, about 3 times less CPU. Without it (or where
    the weights are missing: a warning, once), HOG (or the CNN) scans the whole copy. Encodings
    come from the full-resolution image either way."""

    model_name = FACE_MODEL

    def __init__(
        self,
        detect_max_side: int = 1024,
        min_size: int = 40,
        detector: str = "hog",
        upsample: int = 1,
        proposer_model: Path | None = None,
    ):
        self.detect_max_side = detect_max_side
        self.min_size = min_size
        self.detector = detector
        self.upsample = upsample
        self.proposer_model = proposer_model
        self._proposer: CenterFace | None = None

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        import face_recognition  # heavy: dlib and its models, loaded on first use

        boxes = self.boxes(rgb, self.detect_max_side)
        if not boxes:
            return []
        encodings = face_recognition.face_encodings(rgb, known_face_locations=boxes, model="small")
        return [
            DetectedFace(b, np.asarray(e, dtype=np.float64))
            for b, e in zip(boxes, encodings, strict=True)
        ]

    def proposer(self) -> CenterFace | None:
        if self.proposer_model is None:
            return None
        if self._proposer is None:
            try:
                self._proposer = CenterFace(self.proposer_model)
            except ModelMissing as missing:
                log.warning("%s; scanning whole images with HOG instead (slower)", missing)
                self.proposer_model = None
                return None
        return self._proposer

    def boxes(self, rgb: np.ndarray, max_side: int) -> list[tuple[int, int, int, int]]:
        """The faces found on a copy scaled down to `max_side`, as boxes of the
        full-resolution image, at least `min_size` pixels on their shorter side."""
        import face_recognition

        height, width = rgb.shape[:2]
        small, scale = shrunk(rgb, max_side)
        proposer = self.proposer() if self.detector == "hog" else None
        if proposer is not None:
            found = [
                (r.top, r.right, r.bottom, r.left)
                for r in proposed_faces(proposer, hog_detector(), small, self.upsample)
            ]
        else:
            found = face_recognition.face_locations(
                small, number_of_times_to_upsample=self.upsample, model=self.detector
            )
        boxes = []
        for top, right, bottom, left in found:
            box = (
                max(0, round(top / scale)),
                min(width, round(right / scale)),
                min(height, round(bottom / scale)),
                max(0, round(left / scale)),
            )
            if min(box[2] - box[0], box[1] - box[3]) >= self.min_size:
                boxes.append(box)
        return boxes


def hog_detector():
    """dlib's frontal (HOG) face detector: the one face_recognition's `face_locations` uses,
    loaded with it."""
    import face_recognition.api

    return face_recognition.api.face_detector


# The face models this installation can use, by the name `FACE_MODEL` gives: each makes an
# embedder from the detection settings (the longest side detection runs on, the smallest face,
# the proposer's weights or None: FACE_DETECTOR).
FACE_MODELS: dict[str, Callable[[int, int, Path | None], FaceEmbedder]] = {
    "dlib": lambda detect_max_side, min_size, proposer_model: DlibFaceEmbedder(
        detect_max_side=detect_max_side, min_size=min_size, proposer_model=proposer_model
    ),
}


def face_embedder(
    model: str, detect_max_side: int, min_size: int, proposer_model: Path | None = None
) -> FaceEmbedder:
    """The embedder of the face model named `model` (a key of `FACE_MODELS`)."""
    try:
        make = FACE_MODELS[model]
    except KeyError:
        raise ValueError(f"unknown face model {model!r}; known: {', '.join(FACE_MODELS)}") from None
    return make(detect_max_side, min_size, proposer_model)
