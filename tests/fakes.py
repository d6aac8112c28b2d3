"""A stand-in face finder for pipeline tests: no dlib. Each picture it draws carries a number in
its first pixel; `detect` answers with the faces registered for that number."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from consent_service.biometrics.faces import DetectedFace


def vector(k: int, other: int | None = None) -> np.ndarray:
    """Person k's face: a unit vector (people are √2 apart). With `other`, a face halfway
    between k and other: as close to both, so it names neither (ambiguous)."""
    v = np.zeros(128)
    v[k] = 1.0
    if other is not None:
        v[k] = v[other] = 0.5
    return v


class FakeFaces:
    model_name = "fake-faces"

    def __init__(self) -> None:
        self._pictures: dict[int, list[np.ndarray]] = {}

    def picture(self, *faces: np.ndarray) -> bytes:
        """PNG bytes of a picture showing these faces (none: nobody)."""
        number = len(self._pictures) + 1
        self._pictures[number] = list(faces)
        rgb = np.zeros((64, 64, 3), np.uint8)
        rgb[0, 0, 0] = number
        out = io.BytesIO()
        Image.fromarray(rgb).save(out, "PNG")
        return out.getvalue()

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        faces = self._pictures.get(int(rgb[0, 0, 0]), [])
        return [
            DetectedFace((10 * i, 10 * i + 5, 10 * i + 5, 10 * i), f) for i, f in enumerate(faces)
        ]
