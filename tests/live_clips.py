"""Live consent recordings built by code from real material, for the tests, the attack bench and
the browser tests' fake camera and microphone.

The best genuine-like clip this machine can make: a real photo (face_recognition's obama.jpg)
warped smoothly, frame by frame, so the head seems to turn, look up or down, come closer or lean
back while each prompt is on screen (the nose moves against the eyes as a rotation moves it;
the face grows or shrinks as a distance does), with a little camera shake and sensor noise; and a
sound track with the code read aloud when the code is on screen. No registry package carries a
real video of a person moving their head while speaking, so this is a warped photo: it proves
the pipeline accepts what a live person's recording looks like to 5-point landmarks, not that
a real face's recording passes (see docs/liveness.md).

Spoken codes: real digit words cut from PocketSphinx's test recordings where the code's digits
exist there (`real_digits`: one TIDIGITS speaker says 2 9 3 4 0; another, in the card-game
recordings, 4 5 7 8), otherwise synthetic speech (Debian's flite for English, espeak-ng's
pinyin Mandarin voice for zh-CN)."""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import av
import numpy as np
from PIL import Image

from consent_service.biometrics.audio import decode_audio
from consent_service.biometrics.live_recording import MOVE_SECONDS, Script
from consent_service.demo.samples import Samples, fetch
from consent_service.settings import Settings

SAMPLE_RATE = 16_000
GAP = 0.5  # between digit words: connected-speech cuts run together closer (see the bench)
WIDTH, HEIGHT, FPS = 640, 480, 10
# How far each move goes at its furthest: the nose tip moved in eye distances (turns, looks;
# dlib's landmarks then read a yaw of about 0.2 and a pitch change of about 0.15, as real turned
# photos read) or a zoom factor. The turn was 0.7 until 4 December: the warp then changed the
# face's embedding as much as two real photos at different angles do (see move_amount); at 0.6
# each turn still goes 1.3-1.9 times the check's minimum (the enrollment clip at eight phases).
TURN, PITCH, CLOSER, BACK = 0.6, 0.2, 1.35, 0.74
PINYIN = ["ling2", "yi1", "er4", "san1", "si4", "wu3", "liu4", "qi1", "ba1", "jiu3"]
ENGLISH = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


# --- the face ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pose:
    """Where the warped head is: yaw and pitch offsets in eye distances (+ the person's left,
    + down), zoom as a factor, and a camera shift in pixels."""

    turn: float = 0.0
    pitch: float = 0.0
    zoom: float = 1.0
    dx: float = 0.0
    dy: float = 0.0


def _piecewise_inverse(out: np.ndarray, src_knots: Sequence[float], dst_knots: Sequence[float]):
    """Source coordinates for output coordinates `out` under the piecewise-linear map that
    sends each src knot to its dst knot."""
    return np.interp(out, dst_knots, src_knots)


class Face:
    """One real photo, framed like a webcam picture, and warped to any `Pose`."""

    def __init__(self, picture: Image.Image):
        from consent_service.biometrics.landmarks import dlib_landmarks

        self.rgb = np.asarray(picture.convert("RGB").resize((WIDTH, HEIGHT)), dtype=np.float32)
        import face_recognition

        boxes = face_recognition.face_locations(self.rgb.astype(np.uint8))
        assert len(boxes) == 1, boxes
        top, right, bottom, left = boxes[0]
        marks = dlib_landmarks(self.rgb.astype(np.uint8), boxes[0])
        eyes = sorted(
            (np.mean(marks[k], axis=0) for k in ("left_eye", "right_eye")), key=lambda e: e[0]
        )
        self.eye_distance = float(np.linalg.norm(eyes[0] - eyes[1]))
        self.eye_xs = (float(eyes[0][0]), float(eyes[1][0]))
        self.eye_y = float((eyes[0][1] + eyes[1][1]) / 2)
        self.nose = np.asarray(marks["nose_tip"][0], dtype=float)
        self.chin_y = float(self.nose[1] + 1.6 * (self.nose[1] - self.eye_y))
        self.centre = np.array([(left + right) / 2, (top + bottom) / 2])
        self.sides = (float(left), float(right))

    def frame(self, pose: Pose, noise: np.random.Generator | None = None) -> np.ndarray:
        xs = np.arange(WIDTH, dtype=np.float64)
        ys = np.arange(HEIGHT, dtype=np.float64)
        # Undo, in order: the camera shift, the zoom about the face, the pitch, the turn.
        xs = (xs - pose.dx - self.centre[0]) / pose.zoom + self.centre[0]
        ys = (ys - pose.dy - self.centre[1]) / pose.zoom + self.centre[1]
        # The eyes stay, the nose tip moves (a rotation moves the nose most); the picture's
        # edges, the top of the head and the chin stay too.
        nx, ny = self.nose
        (lx, rx), ey, cy = self.eye_xs, self.eye_y, self.chin_y
        d = pose.turn * self.eye_distance
        fl, fr = self.sides  # the face's outline stays; the eyes follow the nose part of the way
        xs = _piecewise_inverse(
            xs,
            [-WIDTH, 0, fl, lx, nx, rx, fr, 2 * WIDTH],
            [-WIDTH, 0, fl, lx + 0.4 * d, nx + d, rx + 0.4 * d, fr, 2 * WIDTH],
        )
        d = pose.pitch * self.eye_distance
        ys = _piecewise_inverse(
            ys, [-HEIGHT, 0, ey, ny, cy, 2 * HEIGHT], [-HEIGHT, 0, ey, ny + d, cy, 2 * HEIGHT]
        )
        out = _bilinear(self.rgb, ys, xs)
        if noise is not None:  # sensor noise: one of a few noise fields, shifted at random
            field = _NOISE[int(noise.integers(len(_NOISE)))]
            out = out + np.roll(field, int(noise.integers(WIDTH)), axis=1)
        return np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8))


_NOISE = [
    np.random.default_rng(k).normal(0, 2.0, (HEIGHT, WIDTH, 1)).astype(np.float32) for k in range(4)
]


def _bilinear(rgb: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """`rgb` (float32) sampled at rows `ys` and columns `xs` (a separable warp), bilinearly."""
    ys = np.clip(ys, 0, rgb.shape[0] - 1.001)
    xs = np.clip(xs, 0, rgb.shape[1] - 1.001)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy = (ys - y0).astype(np.float32)[:, None, None]
    fx = (xs - x0).astype(np.float32)[None, :, None]
    rows = rgb[y0]
    rows += (rgb[y0 + 1] - rows) * fy
    left = rows[:, x0]
    return left + (rows[:, x0 + 1] - left) * fx


def _ease(u: float) -> float:
    u = min(1.0, max(0.0, u))
    return (1 - math.cos(math.pi * u)) / 2


# A move's timing, in seconds after its prompt appeared: a reaction time, out, held, back to
# rest before the next prompt (MOVE_SECONDS after this one). Until 4 December the head went out
# over 0.65 s and back over 0.7 s, and turned 0.7: in mid-turn the warped photo's embedding then
# moved 0.33-0.44 from one sampled frame to the next (the enrollment clip at eight sampling
# phases; `cut` fails above 0.45), as far as two real photos of the man taken at different
# angles lie apart (0.37), more than a smooth turn should; a browser's recording of the clip
# sometimes went over (1 of the 12 browser flows in three CI runs). Slower and a little smaller, the
# same eight phases give 0.25-0.33.
REACT, OUT, BACK_AT, BACK_OVER = 0.35, 0.85, 1.4, 0.95  # held from 1.2 s to 1.4 s


def move_amount(t: float) -> float:
    """How far into its move the head is, `t` seconds after the move's prompt appeared: still
    for a reaction time, out, held, back to rest before the next prompt."""
    if t < REACT:
        return 0.0
    if t < REACT + OUT:
        return _ease((t - REACT) / OUT)
    if t < BACK_AT:
        return 1.0
    return 1.0 - _ease((t - BACK_AT) / BACK_OVER)


def pose_at(script: Script, t: float, moves: Sequence[str] | None = None) -> Pose:
    """The head's pose at `t` seconds into a recording following `script` (or `moves`), with
    a slow, small camera sway."""
    moves = script.moves if moves is None else moves
    sway = Pose(dx=3 * math.sin(1.3 * t), dy=2 * math.sin(0.9 * t + 1))
    i = int(t // MOVE_SECONDS)
    if t < 0 or i >= len(moves):
        return sway
    a = move_amount(t - i * MOVE_SECONDS)
    move = moves[i]
    return Pose(
        turn={"turn_left": TURN, "turn_right": -TURN}.get(move, 0.0) * a,
        pitch={"look_up": -PITCH, "look_down": PITCH}.get(move, 0.0) * a,
        zoom=1.0 + ({"come_closer": CLOSER, "lean_back": BACK}.get(move, 1.0) - 1.0) * a,
        dx=sway.dx,
        dy=sway.dy,
    )


@cache
def face(photo: Path) -> Face:
    from tests.camera import portrait

    return Face(portrait(photo))


def genuine_frames(
    script: Script, photo: Path, fps: int = FPS, lead_seconds: float = 0.0, seed: int = 0
) -> Iterator[np.ndarray]:
    """The frames of a head following `script` (the photo's person), `lead_seconds` at rest
    first."""
    rng = np.random.default_rng(seed)
    person = face(photo)
    total = lead_seconds + script.seconds
    for k in range(int(total * fps)):
        yield person.frame(pose_at(script, k / fps - lead_seconds), rng)


# --- the voice ------------------------------------------------------------------------------
def _read_wav(path: Path) -> np.ndarray:
    return decode_audio(path.read_bytes(), 120)


def synthetic_speech(text: str, language: str, voice: str | None = None) -> np.ndarray:
    """`text` spoken by Debian's flite (English; `voice` one of kal, awb, rms, slt) or
    espeak-ng (Mandarin in pinyin with tone numbers, or English with an `en-*` voice)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        if language == "en" and not (voice or "").startswith("en"):
            if not shutil.which("flite"):
                raise RuntimeError("flite is missing: apt-get install flite")
            subprocess.run(
                ["flite", "-voice", voice or "awb", "-t", text, "-o", str(out)], check=True
            )
        else:
            if not shutil.which("espeak-ng"):
                raise RuntimeError("espeak-ng is missing: apt-get install espeak-ng")
            espeak_voice = voice or ("cmn-latn-pinyin" if language == "zh-CN" else "en-us")
            subprocess.run(["espeak-ng", "-v", espeak_voice, "-w", str(out), text], check=True)
        return _read_wav(out)


def code_text(code: str, language: str) -> str:
    words = PINYIN if language == "zh-CN" else ENGLISH
    return " ".join(words[int(d)] for d in code)


def synthetic_code(code: str, language: str, voice: str | None = None) -> np.ndarray:
    return synthetic_speech(code_text(code, language), language, voice)


@cache
def _digits_folder() -> Path:
    target = Samples.from_settings(Settings()).cache_dir / "pocketsphinx-5.1.1-digits"
    if not (target / ".complete").exists():
        fetch("pocketsphinx", "5.1.1", "test/data/tidigits/", target)
        fetch("pocketsphinx", "5.1.1", "test/data/cards/", target)
        (target / ".complete").touch()
    return target


@cache
def _english_decoder():
    from pocketsphinx import Decoder

    return Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")  # the wheel's model and language model


def _words(samples: np.ndarray) -> list[tuple[str, float, float]]:
    """Each word PocketSphinx's full English model hears, with where (seconds)."""
    decoder = _english_decoder()
    decoder.start_utt()
    decoder.process_raw((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes(), full_utt=True)
    decoder.end_utt()
    return [
        (seg.word.split("(")[0], seg.start_frame / 100, (seg.end_frame + 1) / 100)
        for seg in decoder.seg() or ()
    ]


@cache
def digit_words(speaker: str) -> dict[str, list[np.ndarray]]:
    """Digit words one real speaker said, cut where PocketSphinx's English model hears them:
    "tidigits" (a man reading "two nine three four zero"), "cards" (a card game's calls: five
    five; seven of clubs; eight of spades, four of clubs, seven of hearts)."""
    folder = _digits_folder()
    if speaker == "tidigits":
        raw = np.frombuffer((folder / "dhd.2934z.raw").read_bytes(), "<i2")
        recordings = [raw.astype(np.float32) / 32768]
    elif speaker == "cards":
        recordings = [_read_wav(folder / f"00{k}.wav") for k in (3, 4, 5)]
    else:
        raise LookupError(speaker)
    words: dict[str, list[np.ndarray]] = {}
    for samples in recordings:
        for word, start, end in _words(samples):
            if word in ENGLISH:
                a = max(0, int((start - 0.03) * SAMPLE_RATE))
                b = int((end + 0.03) * SAMPLE_RATE)
                words.setdefault(str(ENGLISH.index(word)), []).append(samples[a:b])
    return words


def real_digits(speaker: str) -> str:
    """The digits `speaker` can say."""
    return "".join(sorted(digit_words(speaker)))


def real_code(code: str, speaker: str) -> np.ndarray:
    """`code` in a real speaker's voice: their recorded digit words, `GAP` seconds apart."""
    words = digit_words(speaker)
    gap = np.zeros(int(GAP * SAMPLE_RATE), np.float32)
    parts = []
    for k, digit in enumerate(code):
        takes = words[digit]
        parts += [takes[k % len(takes)], gap]
    return np.concatenate(parts)


def soundtrack(seconds: float, parts: Sequence[tuple[float, np.ndarray]], seed: int = 0):
    """`seconds` of room noise with each (start, samples) part laid in."""
    rng = np.random.default_rng(seed)
    track = rng.normal(0, 0.002, int(seconds * SAMPLE_RATE)).astype(np.float32)
    for start, samples in parts:
        a = max(0, int(start * SAMPLE_RATE))
        if a >= len(track):
            continue
        piece = samples[: len(track) - a]
        track[a : a + len(piece)] += piece * (0.5 / max(1e-6, float(np.max(np.abs(piece)))))
    return np.clip(track, -1, 1)


def synthetic_digits(code: str, language: str, gap: float) -> np.ndarray:
    """`code` read one digit at a time, `gap` seconds apart, by synthetic speech."""
    pause = np.zeros(int(gap * SAMPLE_RATE), np.float32)
    parts: list[np.ndarray] = []
    for digit in code:
        parts += [synthetic_code(digit, language), pause]
    return np.concatenate(parts[:-1])


def code_speech(
    script: Script,
    speaker: str | None = None,
    digit_gap: float | None = None,
    language: str | None = None,
) -> np.ndarray:
    """The script's code read aloud: by the real `speaker` when given, else synthetic (one
    digit at a time, `digit_gap` seconds apart, when given; else in one breath), in `language`
    (by default the script's: a Mandarin page also takes the code read in English)."""
    if speaker is not None:
        return real_code(script.code, speaker)
    language = language or script.language
    if digit_gap is not None:
        return synthetic_digits(script.code, language, digit_gap)
    return synthetic_code(script.code, language)


def genuine_sound(
    script: Script,
    speaker: str | None = None,
    lead_seconds: float = 0.0,
    delay: float = 0.8,
    digit_gap: float | None = None,
    code_language: str | None = None,
) -> np.ndarray:
    """Room noise, then the code read `delay` seconds after it appears (in `code_language`,
    by default the script's), then the statement."""
    code = code_speech(script, speaker, digit_gap, code_language)
    parts = [(lead_seconds + script.code_start + delay, code)]
    if script.statement:
        from consent_service.biometrics.live_recording import CODE_SECONDS

        statement = synthetic_speech(script.statement, script.language)
        parts.append((lead_seconds + script.code_start + CODE_SECONDS + 0.3, statement))
    return soundtrack(lead_seconds + script.seconds, parts)


# --- the container ---------------------------------------------------------------------------
def encode_webm(
    frames: Sequence[np.ndarray] | Iterator[np.ndarray],
    fps: int,
    sound,
    video_codec: str = "mpeg4",
    keyframe_every: int | None = None,
) -> bytes:
    """Video and Opus audio in Matroska/WebM; `sound` 16 kHz mono samples, or None for a
    recording without a sound track. Chromium's MediaRecorder writes VP8 (`video_codec=
    "libvpx"`) in WebM; MPEG-4 part 2 (the default) encodes ten times faster here and goes
    through the same decoder (PyAV, sampled frames), so the bench uses it. `keyframe_every`
    frames: for a clip a browser must seek in."""
    out = io.BytesIO()
    webm = video_codec == "libvpx"
    with av.open(out, "w", format="webm" if webm else "matroska") as container:
        options = {"deadline": "realtime", "cpu-used": "8"} if webm else {}
        video = container.add_stream(video_codec, rate=fps, options=options)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.bit_rate = 1_500_000
        if keyframe_every is not None:
            video.codec_context.gop_size = keyframe_every
        audio = None
        if sound is not None:
            audio = container.add_stream("libopus", rate=48_000, layout="mono")
        for rgb in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
            mono = av.AudioFrame.from_ndarray(
                (np.clip(sound, -1, 1) * 32767).astype(np.int16)[None, :],
                format="s16",
                layout="mono",
            )
            mono.sample_rate = SAMPLE_RATE
            fifo = av.AudioFifo()
            for frame in resampler.resample(mono) + resampler.resample(None):
                frame.pts = None
                fifo.write(frame)
            size = audio.codec_context.frame_size or 960
            while fifo.samples >= size:
                for packet in audio.encode(fifo.read(size)):
                    container.mux(packet)
            for packet in audio.encode(None):
                container.mux(packet)
    return out.getvalue()


def genuine_clip(
    script: Script,
    photo: Path,
    speaker: str | None = None,
    seed: int = 0,
    video_codec: str = "mpeg4",
) -> bytes:
    """A recording as the page would upload it: the photo's person following `script`, the
    code read by `speaker` (real digit words) or synthetic speech."""
    frames = genuine_frames(script, photo, seed=seed)
    return encode_webm(frames, FPS, genuine_sound(script, speaker), video_codec)


# --- Chromium's fake devices ------------------------------------------------------------------
def write_y4m(path: Path, frames: Iterator[np.ndarray], fps: int = FPS) -> Path:
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        half = (WIDTH // 2, HEIGHT // 2)
        for rgb in frames:
            y, cb, cr = Image.fromarray(rgb).convert("YCbCr").split()
            out.write(
                b"FRAME\n"
                + y.tobytes()
                + cb.resize(half, Image.Resampling.BILINEAR).tobytes()
                + cr.resize(half, Image.Resampling.BILINEAR).tobytes()
            )
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def write_fake_camera(
    script: Script,
    y4m_path: Path,
    wav_path: Path,
    *,
    photo: Path | None = None,
    speaker: str | None = None,
    lead_seconds: float = 0.0,
) -> tuple[Path, Path]:
    """Chromium's fake camera (`--use-file-for-fake-video-capture=<y4m>`) and microphone
    (`--use-file-for-fake-audio-capture=<wav>`) playing a person following `script`, after
    `lead_seconds` at rest. Chromium loops both files from when the page opens the devices:
    start the page's recording `lead_seconds` after that."""
    if photo is None:
        photo = Samples.from_settings(Settings()).sample("obama.jpg")
    write_y4m(y4m_path, genuine_frames(script, photo, lead_seconds=lead_seconds))
    write_wav(wav_path, genuine_sound(script, speaker, lead_seconds=lead_seconds))
    return y4m_path, wav_path
