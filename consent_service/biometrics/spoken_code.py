"""Hearing a one-time code read aloud: digits only, in English or Mandarin, by PocketSphinx.

The recogniser and its acoustic model ship inside the `pocketsphinx` wheel (CMU's US-English
continuous model); nothing is downloaded. A JSGF grammar lets it hear only digits, one or more,
so what it returns is always a string of digits (maybe the wrong ones). No Mandarin model ships
in a registry package, so Mandarin digits are spelled here over the same English phones (one
line per reading of a digit; `bench/liveness_attacks.py` and `bench/mandarin_digits.py`
measure how well that works). The
decoders load lazily, once per process and language, in workers only.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
LANGUAGES = ("en", "zh-CN")

# CMU dictionary pronunciations (the model's phone set). "oh" is read for 0 as often as "zero".
_ENGLISH = {
    "0": ("Z IH R OW", "Z IY R OW", "OW"),
    "1": ("W AH N", "HH W AH N"),
    "2": ("T UW",),
    "3": ("TH R IY",),
    "4": ("F AO R",),
    "5": ("F AY V",),
    "6": ("S IH K S",),
    "7": ("S EH V AH N",),
    "8": ("EY T",),
    "9": ("N AY N",),
}
# Mandarin digits over the English phones: líng, yī (yāo, as in phone numbers), èr, sān, sì, wǔ,
# liù, qī, bā, jiǔ. Tones are not heard (the model has none). The first readings are the nearest
# English phones; the others are what the English model's phone loop hears in a neural Mandarin
# voice made from real speech (s heard as TH, an l it misses, èr near AY, a bare vowel for bā),
# chosen on one part of bench/mandarin_digits.py's readings and checked on the other: 160 to 233
# of 360 held-out digits right, codes within one digit 3 to 9 of 60 (docs/liveness.md). Still
# far from reliable.
_MANDARIN = {
    "0": ("L IH NG", "L IY NG", "L IY N"),
    "1": ("IY", "Y IY", "Y AW"),
    "2": ("AA R", "ER", "AY ER", "AY R"),
    "3": ("S AA N", "S AE N", "TH AE N"),
    "4": ("S IH", "S ER", "S IH N"),
    "5": ("W UW", "UW", "W UH"),
    "6": ("L IY OW", "L Y OW"),
    "7": ("CH IY", "CH IH"),
    "8": ("B AA", "P AA", "B AE", "AE"),
    "9": ("JH Y OW", "JH IY OW", "Y OW"),
}
PRONUNCIATIONS = {"en": _ENGLISH, "zh-CN": _MANDARIN}
# Word insertion penalty per language: PocketSphinx's default (0.65) lets a digit grammar hear a
# digit in every pause; 1e-3 was the best of those tried on synthetic and recorded English
# digits; in Mandarin it lets silence win over weakly matched digits: the readings above were
# tried and checked with 1e-2 (see docs/liveness.md).
WORD_INSERTION_PENALTY = {"en": 1e-3, "zh-CN": 1e-2}


@dataclass(frozen=True)
class HeardDigit:
    digit: str
    start: float  # seconds into the audio given
    end: float


@dataclass(frozen=True)
class Heard:
    digits: str
    words: tuple[HeardDigit, ...]


def _word(digit: str, variant: int) -> str:
    return f"d{digit}" if variant == 0 else f"d{digit}({variant + 1})"


def dictionary(language: str) -> str:
    """The pronunciation dictionary of the digits of `language`, in PocketSphinx's format: a
    word `dN` per digit N, alternatives as `dN(2)`, `dN(3)`…"""
    lines = []
    for digit, readings in PRONUNCIATIONS[language].items():
        lines += [f"{_word(digit, i)} {phones}" for i, phones in enumerate(readings)]
    return "\n".join(lines) + "\n"


def grammar() -> str:
    """One or more digits, nothing else."""
    words = " | ".join(f"d{d}" for d in "0123456789")
    return f"#JSGF V1.0;\ngrammar digits;\npublic <code> = ( {words} )+;\n"


def _model_dir() -> str:
    import pocketsphinx  # heavy: the decoder and its model, loaded on first use (workers only)

    return os.path.join(os.path.dirname(pocketsphinx.__file__), "model", "en-us")


_decoders: dict[str, object] = {}
_lock = threading.Lock()


def _decoder(language: str):
    from pocketsphinx import Decoder

    if language not in PRONUNCIATIONS:
        raise ValueError(f"no digit pronunciations for {language!r}")
    if language not in _decoders:
        # The decoder reads its dictionary from a file, once, while it starts.
        with tempfile.NamedTemporaryFile("w", suffix=".dict", delete=False) as out:
            out.write(dictionary(language))
        try:
            decoder = Decoder(
                hmm=os.path.join(_model_dir(), "en-us"),
                dict=out.name,
                lm=None,
                samprate=SAMPLE_RATE,
                wip=WORD_INSERTION_PENALTY[language],
                loglevel="FATAL",
            )
        finally:
            os.unlink(out.name)
        decoder.add_jsgf_string("digits", grammar())
        decoder.activate_search("digits")
        _decoders[language] = decoder
    return _decoders[language]


def readings(language: str) -> tuple[str, ...]:
    """The languages a code shown on a `language` page may be read in, the page's first. A
    Mandarin page also takes English digits: no Mandarin model ships in a registry package and
    Mandarin digits over the English phones are heard poorly (docs/liveness.md), while English
    digits are heard well; the page says so. Either way the code must be the one shown."""
    return (language,) if language == "en" else (language, "en")


def hear_digits(samples: np.ndarray, language: str) -> Heard:
    """The digits heard in 16 kHz mono float samples, read in `language` ("en" or "zh-CN"),
    each with where it was heard."""
    pcm = (np.clip(np.asarray(samples, dtype=np.float32), -1, 1) * 32767).astype("<i2")
    if len(pcm) < SAMPLE_RATE // 10:
        return Heard("", ())
    with _lock:
        decoder = _decoder(language)
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), full_utt=True)
        decoder.end_utt()
        if decoder.hyp() is None:  # no path through the grammar: nothing like digits
            return Heard("", ())
        words = tuple(
            HeardDigit(seg.word[1], seg.start_frame / 100, (seg.end_frame + 1) / 100)
            for seg in decoder.seg() or ()
            if seg.word.startswith("d") and seg.word[1:2].isdigit()
        )
    return Heard("".join(w.digit for w in words), words)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: digits missed, added or misheard."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (x != y))
    return row[-1]
