"""The machine checks of a live consent recording: one continuous clip (video and audio) made
while the page showed server-chosen head movements and then a one-time code to read aloud.

Pure: bytes and a `Script` in, a `RecordingReport` out; no database, no Flask, no Celery. What
is checked, on frames sampled a few times a second and on the audio track:
- one face throughout, with no cut: the identity (face embedding) and the face's position, size
  and pose move continuously from sampled frame to sampled frame;
- the head followed the prompts, in their order: during each move's time on screen the pose
  (5-point landmarks: yaw, pitch and eye distance) moved the asked way, more than any other way;
- the code was heard (PocketSphinx, digits only, in the script's language), started while the
  code was on screen and was read in time;
- one voice speaks (Resemblyzer; skipped, and `voice_embedding` None, without the voice extra).

Timeline (seconds from the recording's start, which is when the page shows the first prompt):
move i is on screen during [i·MOVE_SECONDS, (i+1)·MOVE_SECONDS); then the code (and, for a
grant, the statement after it) for CODE_SECONDS (+ STATEMENT_SECONDS). `Script.windows()` lists
them. Mouth movement against speech is not checked: 5-point landmarks hold no mouth, and no
registry package carries a real video of a person speaking to validate such a check on.
"""

from __future__ import annotations

import importlib.util
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from consent_service.biometrics.faces import DetectedFace, DlibFaceEmbedder, FaceEmbedder
from consent_service.biometrics.landmarks import LandmarkReader, Landmarks, dlib_landmarks, yaw
from consent_service.biometrics.spoken_code import (
    LANGUAGES,
    Heard,
    HeardDigit,
    edit_distance,
    hear_digits,
    readings,
)
from consent_service.biometrics.voices import (
    HEARD_AGGRESSIVENESS,
    SAMPLE_RATE,
    SPEECH_CONTEXT,
    VoiceEmbedder,
    find_speakers,
)
from consent_service.errors import N_, EnrollmentRejected, MediaRejected, Msgid
from consent_service.media.limits import VideoLimits
from consent_service.settings import Settings

MOVES = ("turn_left", "turn_right", "look_up", "look_down", "come_closer", "lean_back")
TURNS = ("turn_left", "turn_right")
LOOKS = ("look_up", "look_down")
MOVE_SECONDS = 2.5  # how long the page shows each move prompt
CODE_SECONDS = 7.0  # how long the page shows the code to read
STATEMENT_SECONDS = 10.0  # added after the code when the script has a statement
CODE_DIGITS = 6

# What the page shows for each move (the person's own left and right).
MOVE_PROMPTS = {
    "turn_left": N_("Turn your head to your left, then back"),
    "turn_right": N_("Turn your head to your right, then back"),
    "look_up": N_("Look up, then back"),
    "look_down": N_("Look down, then back"),
    "come_closer": N_("Come closer to the camera, then back"),
    "lean_back": N_("Lean back from the camera, then back"),
}

# Failure codes (stable: stored with a session, shown to operators) and what a person is told.
FAILURE_MESSAGES: dict[str, Msgid] = {
    "undecodable": N_(
        "The recording could not be read. Record again in a current browser (Chrome, Edge, "
        "Firefox or Safari)."
    ),
    "too_long": N_("The recording is longer than allowed. Record again and stop when asked."),
    "too_short": N_(
        "The recording stopped before the end. Keep recording until the page says it is done."
    ),
    "no_face": N_(
        "Your face was not seen for the whole recording. Keep your whole face in the picture, "
        "in good light, and try again."
    ),
    "several_faces": N_("More than one face was seen. Only you may be in the picture."),
    "cut": N_(
        "The recording does not look like one continuous take of one person. Record again in "
        "one go, without switching cameras."
    ),
    "moves_not_followed": N_(
        "Your head did not move as the prompts asked, in their order. Try again: move your whole "
        "head (not only your eyes) while each prompt is shown, then come back to the centre."
    ),
    "no_speech": N_(
        "No speech was heard. Read the code aloud, close to the microphone, in a quiet room."
    ),
    "code_not_heard": N_(
        "The code you read was not recognised. Read each digit clearly while the code is shown."
    ),
    "code_not_in_time": N_(
        "The code was not read while it was shown. Start reading as soon as the code appears."
    ),
    "statement_not_read": N_(
        "The sentence naming what you consent to was not heard. Read it aloud while it is shown."
    ),
    "several_voices": N_("More than one voice was heard. Only you may speak."),
    "face_mismatch": N_("The face in the recording is not the face enrolled for this account."),
    "voice_mismatch": N_("The voice in the recording is not the voice enrolled for this account."),
}


@dataclass(frozen=True)
class Script:
    """What the page asks, chosen by the server: the moves in order, the code to read (in
    `language`) and, for a grant, a statement to read after it."""

    moves: tuple[str, ...]
    code: str
    language: str
    statement: str | None = None

    def windows(self) -> list[tuple[str, float, float]]:
        """(what, start, end) in seconds from the recording's start: each move, then "code"."""
        out = [
            (move, i * MOVE_SECONDS, (i + 1) * MOVE_SECONDS) for i, move in enumerate(self.moves)
        ]
        start = len(self.moves) * MOVE_SECONDS
        out.append(("code", start, start + CODE_SECONDS))
        if self.statement:
            out.append(("statement", start + CODE_SECONDS, self.seconds))
        return out

    @property
    def code_start(self) -> float:
        return len(self.moves) * MOVE_SECONDS

    @property
    def seconds(self) -> float:
        """How long the page records."""
        extra = STATEMENT_SECONDS if self.statement else 0.0
        return self.code_start + CODE_SECONDS + extra

    def as_dict(self) -> dict:
        return {
            "moves": list(self.moves),
            "code": self.code,
            "language": self.language,
            "statement": self.statement,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Script:
        return cls(
            moves=tuple(data["moves"]),
            code=str(data["code"]),
            language=str(data["language"]),
            statement=data.get("statement"),
        )


def _draw_moves(count: int, rng: random.Random) -> tuple[str, ...]:
    """`count` moves, never the same twice in a row; from two moves on, at least one turn and
    one look up or down (coming closer and leaning back alone a photo moved towards the camera
    can do)."""
    while True:
        moves: list[str] = []
        for _ in range(count):
            moves.append(rng.choice([m for m in MOVES if not moves or m != moves[-1]]))
        if count == 1:
            if moves[0] in TURNS + LOOKS:
                return tuple(moves)
        elif any(m in TURNS for m in moves) and any(m in LOOKS for m in moves):
            return tuple(moves)


def _code(rng: random.Random, digits: int = CODE_DIGITS) -> str:
    return "".join(rng.choice("0123456789") for _ in range(digits))


def new_script(
    language: str,
    *,
    moves: int = 4,
    statement: str | None = None,
    rng: random.Random | None = None,
) -> Script:
    """A script for a live consent session: `moves` (at least 4) random moves and a 6-digit
    one-time code read in `language` ("en" or "zh-CN"), and for a grant the statement."""
    if language not in LANGUAGES:
        raise ValueError(f"no spoken codes in {language!r}")
    if moves < 4:
        raise ValueError("a live consent session asks for at least four moves")
    rng = rng or random.SystemRandom()
    return Script(_draw_moves(moves, rng), _code(rng), language, statement)


def short_script(
    language: str, *, rng: random.Random | None = None, statement: str | None = None
) -> Script:
    """A step-up check: one turn or look, a code, and the statement of what the person
    consents to (for a grant or an approval) after it."""
    if language not in LANGUAGES:
        raise ValueError(f"no spoken codes in {language!r}")
    rng = rng or random.SystemRandom()
    return Script(_draw_moves(1, rng), _code(rng), language, statement or None)


@dataclass(frozen=True)
class LiveChecks:
    """Thresholds and bounds of the analysis (settings map onto these)."""

    sample_fps: float = 4.0
    max_bytes: int = 50 * 1024 * 1024
    max_seconds: float = 60.0
    max_pixels: int = 1920 * 1080
    # Pose, in eye distances (yaw, pitch) and in relative eye distance (scale).
    min_turn: float = 0.12
    min_pitch: float = 0.08
    min_scale: float = 0.15
    reaction_seconds: float = 0.3  # a move is looked for from this long after its prompt …
    settle_seconds: float = 0.6  # … until this long after the next prompt appears
    # One face, no cut.
    max_missing: float = 0.2  # share of sampled frames without a face
    max_gap_seconds: float = 1.2  # longest stretch without a face
    several_faces_frames: int = 2  # sampled frames with more than one face that fail
    max_step_distance: float = 0.45  # face embedding, consecutive sampled frames
    same_person: float = 0.6  # face embedding, any sampled frame to the recording's medoid
    max_box_step: float = 0.5  # face centre, in face widths per 1/5 s
    # |log(size ratio)| per 1/5 s: the smaller of the eye distance's and the box's where both
    # frames have landmarks (genuine clips up to 0.14, three photos cut together 0.30), else the
    # box's, whose pyramid scales make a smooth move jump (genuine clips up to 0.36).
    max_size_step: float = 0.22
    max_box_size_step: float = 0.40
    max_pose_step: float = 0.2  # yaw or pitch, in eye distances per 1/5 s
    # The code.
    max_code_errors: int = 1  # digits missed, added or misheard
    max_code_delay: float = 2.5  # seconds from the code appearing to its first digit heard
    # The statement: speech heard while it is shown (and a second after), in seconds.
    min_statement_speech: float = 1.5
    # Voices: VOICE_SAME_SPEAKER's default (the worker passes the setting in force).
    same_speaker: float = Settings.model_fields["voice_same_speaker"].default
    other_voice_share: float = 0.25
    # Matching a step-up against enrolled templates: FACE_TOLERANCE's and VOICE_TOLERANCE's
    # defaults (the worker passes the settings in force).
    face_tolerance: float = Settings.model_fields["face_tolerance"].default
    voice_tolerance: float = Settings.model_fields["voice_tolerance"].default
    template_faces: int = 5


@dataclass(frozen=True)
class RecordingReport:
    passed: bool
    failures: tuple[str, ...]
    scores: dict[str, float]
    heard: str
    face_embeddings: list[np.ndarray]
    voice_embedding: np.ndarray | None
    details: dict[str, str] = field(default_factory=dict)  # why, in English, per failure


@dataclass(frozen=True)
class Pose:
    yaw: float  # eye distances, + the person's left
    pitch: float  # eye distances the nose tip sits below the eyes (looking up: smaller)
    scale: float  # eye distance in pixels


@dataclass(frozen=True)
class Sighting:
    """The face followed in one sampled frame (`face` None when none was found)."""

    time: float
    faces: int
    face: DetectedFace | None = None
    pose: Pose | None = None


def pose_of(landmarks: Landmarks) -> Pose:
    """Yaw (landmarks.yaw), pitch and scale from the 5-point landmarks. Pitch is the nose tip's
    distance from the line through the eyes, in eye distances: looking up brings the nose
    towards the eyes in the picture, looking down takes it away."""
    eyes = sorted(
        (np.mean(np.asarray(landmarks[k], dtype=float), axis=0) for k in ("left_eye", "right_eye")),
        key=lambda p: p[0],
    )
    axis = eyes[1] - eyes[0]
    distance = float(np.linalg.norm(axis))
    if distance == 0:
        raise EnrollmentRejected("The eyes could not be told apart; face the camera in good light.")
    normal = np.array([-axis[1], axis[0]]) / distance  # points down the picture for an upright face
    nose = np.asarray(landmarks["nose_tip"][0], dtype=float)
    pitch = float(np.dot(nose - (eyes[0] + eyes[1]) / 2, normal) / distance)
    return Pose(yaw(landmarks), pitch, distance)


def excursions(pose: Pose, base: Pose) -> dict[str, float]:
    """How far `pose` went each way from `base`, for each move, in units of no particular
    threshold (see `normalised`)."""
    ratio = math.log(pose.scale / base.scale) if pose.scale > 0 and base.scale > 0 else 0.0
    return {
        "turn_left": pose.yaw - base.yaw,
        "turn_right": base.yaw - pose.yaw,
        "look_up": base.pitch - pose.pitch,
        "look_down": pose.pitch - base.pitch,
        "come_closer": ratio,
        "lean_back": -ratio,
    }


def normalised(moved: dict[str, float], checks: LiveChecks) -> dict[str, float]:
    """Excursions in units of each move's threshold: 1.0 is just enough."""
    scale = math.log(1 + checks.min_scale)
    limits = {
        "turn_left": checks.min_turn,
        "turn_right": checks.min_turn,
        "look_up": checks.min_pitch,
        "look_down": checks.min_pitch,
        "come_closer": scale,
        "lean_back": scale,
    }
    return {m: moved[m] / limits[m] for m in MOVES}


def baseline(poses: Sequence[Pose]) -> Pose:
    """The resting pose: the median of each measure over the recording (each move goes one way
    and comes back, and the moves go different ways)."""
    return Pose(
        float(np.median([p.yaw for p in poses])),
        float(np.median([p.pitch for p in poses])),
        float(np.median([p.scale for p in poses])),
    )


def followed_moves(
    script: Script, sightings: Sequence[Sighting], checks: LiveChecks
) -> tuple[bool, dict[str, float]]:
    """Whether, during each move's time on screen, the pose went the asked way by at least its
    threshold, and further (in thresholds) than any other way. Scores: per move `move_i_<move>`
    the asked excursion, and `move_i_other` the largest other one, in thresholds."""
    posed = [s for s in sightings if s.pose is not None]
    scores: dict[str, float] = {}
    if not posed:
        return False, scores
    base = baseline([s.pose for s in posed if s.pose is not None])
    ok = True
    for i, (move, start, end) in enumerate(script.windows()[: len(script.moves)]):
        window = [
            normalised(excursions(s.pose, base), checks)
            for s in posed
            if s.pose is not None
            and start + checks.reaction_seconds <= s.time < end + checks.settle_seconds
        ]
        asked = max((w[move] for w in window), default=0.0)
        other = max((w[m] for w in window for m in MOVES if m != move), default=0.0)
        scores[f"move_{i}_{move}"] = round(asked, 3)
        scores[f"move_{i}_other"] = round(other, 3)
        if asked < 1.0 or other > asked:
            ok = False
    return ok, scores


def continuity(
    sightings: Sequence[Sighting], checks: LiveChecks
) -> tuple[list[str], dict[str, float]]:
    """Failures among no_face, several_faces and cut, with the measures behind them."""
    failures: list[str] = []
    seen = [s for s in sightings if s.face is not None]
    scores: dict[str, float] = {
        "frames": float(len(sightings)),
        "frames_with_face": float(len(seen)),
        "frames_with_several_faces": float(sum(s.faces > 1 for s in sightings)),
    }
    if not sightings or not seen:
        return ["no_face"], scores
    times = [s.time for s in sightings]
    gap, last = 0.0, times[0]
    for s in sightings:
        if s.face is not None:
            gap, last = max(gap, s.time - last), s.time
    gap = max(gap, times[-1] - last)
    scores["longest_gap_seconds"] = round(gap, 3)
    if 1 - len(seen) / len(sightings) > checks.max_missing or gap > checks.max_gap_seconds:
        failures.append("no_face")
    if scores["frames_with_several_faces"] >= checks.several_faces_frames:
        failures.append("several_faces")
    step = 1.0 / 5.0
    worst = {
        "identity_step": 0.0,
        "box_step": 0.0,
        "size_step": 0.0,
        "box_size_step": 0.0,
        "pose_step": 0.0,
    }
    for a, b in zip(seen, seen[1:], strict=False):
        assert a.face is not None and b.face is not None
        periods = max(1.0, (b.time - a.time) / step)
        worst["identity_step"] = max(
            worst["identity_step"], float(np.linalg.norm(a.face.embedding - b.face.embedding))
        )
        (ca, wa), (cb, wb) = _centre(a.face.box), _centre(b.face.box)
        worst["box_step"] = max(
            worst["box_step"], float(np.linalg.norm(ca - cb)) / max(wa, wb) / periods
        )
        # How much the face grew or shrank. The detector's box comes in its pyramid's scales
        # (about 18 % apart): a smooth lean-back can jump two between samples (0.36 per 1/5 s on
        # the test clip, whose eye distance changed 0.13), and the 5-point eyes wobble on their
        # own. So with landmarks on both frames the smaller of the two measures counts (a
        # splice of photos taken at different distances moves both: 0.30 in the attack bench);
        # without, the box alone, against its own, looser bound.
        box_size = abs(math.log(wb / wa)) / periods
        if a.pose is not None and b.pose is not None and a.pose.scale > 0 and b.pose.scale > 0:
            eyes = abs(math.log(b.pose.scale / a.pose.scale)) / periods
            worst["size_step"] = max(worst["size_step"], min(box_size, eyes))
        else:
            worst["box_size_step"] = max(worst["box_size_step"], box_size)
        if a.pose is not None and b.pose is not None:
            worst["pose_step"] = max(
                worst["pose_step"],
                max(abs(a.pose.yaw - b.pose.yaw), abs(a.pose.pitch - b.pose.pitch)) / periods,
            )
    embeddings = np.vstack([s.face.embedding for s in seen if s.face is not None])
    medoid = _medoid(embeddings)
    worst["identity_spread"] = float(np.max(np.linalg.norm(embeddings - medoid, axis=1)))
    scores.update({k: round(v, 4) for k, v in worst.items()})
    if (
        worst["identity_step"] > checks.max_step_distance
        or worst["identity_spread"] > checks.same_person
        or worst["box_step"] > checks.max_box_step
        or worst["size_step"] > checks.max_size_step
        or worst["box_size_step"] > checks.max_box_size_step
        or worst["pose_step"] > checks.max_pose_step
    ):
        failures.append("cut")
    return failures, scores


def _centre(box: tuple[int, int, int, int]) -> tuple[np.ndarray, float]:
    top, right, bottom, left = box
    return np.array([(left + right) / 2, (top + bottom) / 2]), float(max(1, right - left))


def _medoid(vectors: np.ndarray) -> np.ndarray:
    distances = np.linalg.norm(vectors[:, None, :] - vectors[None, :, :], axis=2)
    return vectors[int(np.argmin(distances.sum(axis=1)))]


def template_faces(
    sightings: Sequence[Sighting], checks: LiveChecks, base: Pose | None
) -> list[np.ndarray]:
    """Up to `checks.template_faces` embeddings for templates: from each equal stretch of the
    recording, the face nearest the resting pose (so they are spread over the take)."""
    seen = [s for s in sightings if s.face is not None]
    if not seen:
        return []
    count = min(checks.template_faces, len(seen))
    picked = []
    for part in np.array_split(np.arange(len(seen)), count):
        if len(part) == 0:
            continue

        def off(k: int) -> float:
            pose = seen[k].pose
            if pose is None or base is None:
                return 1.0
            return abs(pose.yaw - base.yaw) + abs(pose.pitch - base.pitch)

        best = min(part, key=off)
        face = seen[int(best)].face
        assert face is not None
        picked.append(face.embedding)
    return picked


def _pick(faces: list[DetectedFace], previous: DetectedFace | None) -> DetectedFace:
    """The face to follow: nearest the previous one, else the largest."""
    if previous is None:
        return max(faces, key=lambda f: _centre(f.box)[1])
    centre = _centre(previous.box)[0]
    return min(faces, key=lambda f: float(np.linalg.norm(_centre(f.box)[0] - centre)))


def sight_faces(
    data: bytes,
    checks: LiveChecks,
    embedder: FaceEmbedder,
    landmarks: LandmarkReader,
) -> list[Sighting]:
    """The face followed in each sampled frame, with its pose (MediaRejected on bad input)."""
    from consent_service.media.video import sample_frames  # PyAV: workers only

    limits = VideoLimits(
        max_seconds=checks.max_seconds,
        max_pixels=checks.max_pixels,
        max_frames=int(checks.max_seconds * 120),
        sample_fps=checks.sample_fps,
    )
    sightings: list[Sighting] = []
    previous: DetectedFace | None = None
    for frame in sample_frames(data, limits):
        faces = embedder.detect(frame.rgb)
        if not faces:
            sightings.append(Sighting(frame.time, 0))
            continue
        face = _pick(faces, previous)
        previous = face
        try:
            pose: Pose | None = pose_of(landmarks(frame.rgb, face.box))
        except EnrollmentRejected:
            pose = None
        sightings.append(Sighting(frame.time, len(faces), face, pose))
    return sightings


def reading_start(code: str, heard: Heard) -> HeardDigit | None:
    """The first digit heard that belongs to the reading of `code`: leading digits that are
    insertions (dropping one brings what was heard closer to the code: a breath or a noise at
    the window's edge heard as a digit) are passed over, so they neither start the reading
    early nor late. Dropping a digit that was read moves the reading further from the code, so
    a reading that really starts early or late still counts from its first digit."""
    digits, k = heard.digits, 0
    while k < len(digits) and edit_distance(code, digits[k + 1 :]) < edit_distance(
        code, digits[k:]
    ):
        k += 1
    return heard.words[k] if k < len(heard.words) else None


def code_errors(code: str, heard: Heard, shown_until: float) -> int:
    """Digits missed, added or misheard between `code` and what was `heard`, not counting digits
    heard after the code left the screen (`shown_until`, on `heard`'s clock) where leaving them
    out is nearer: by then the page shows the statement, whose words the digit recogniser hears
    as digits (measured on the browser test's clip: one or two such digits in either language,
    which used up or overran the allowance)."""
    kept = len(heard.words)
    while kept and heard.words[kept - 1].start >= shown_until:
        kept -= 1
    return min(edit_distance(code, heard.digits[:k]) for k in range(kept, len(heard.digits) + 1))


def code_heard(
    samples: np.ndarray, script: Script, checks: LiveChecks
) -> tuple[str, list[str], dict[str, float]]:
    """The digits heard while the code was on screen (and a little after), whether they are the
    code, and whether the reading started in time."""
    start = script.code_start
    end = start + CODE_SECONDS
    a, b = max(0, int((start - 0.5) * SAMPLE_RATE)), int((end + 1.0) * SAMPLE_RATE)
    shown_until = end - a / SAMPLE_RATE  # on the window's clock
    # Each language the page allows, the page's first; the reading nearest the code counts.
    errors, read_in, heard = min(
        (code_errors(script.code, h, shown_until), i, h)
        for i, h in enumerate(hear_digits(samples[a:b], lang) for lang in readings(script.language))
    )
    scores = {
        "code_digits_expected": float(len(script.code)),
        "code_digits_heard": float(len(heard.digits)),
        "code_digits_matched": float(max(0, len(script.code) - errors)),
        "code_errors": float(errors),
    }
    if script.language != "en":  # the evidence says which reading counted
        scores["code_read_in_english"] = float(readings(script.language)[read_in] == "en")
    failures = []
    if errors > checks.max_code_errors:
        failures.append("code_not_heard")
    elif (first := reading_start(script.code, heard)) is not None:
        delay = a / SAMPLE_RATE + first.start - start
        scores["code_delay_seconds"] = round(delay, 3)
        if delay > checks.max_code_delay or delay < -0.2:
            failures.append("code_not_in_time")
    return heard.digits, failures, scores


def statement_heard(
    speech: Sequence[tuple[float, float]], script: Script, checks: LiveChecks
) -> tuple[list[str], dict[str, float]]:
    """Whether the statement was read: at least `min_statement_speech` seconds of speech while
    it was on screen (and a second after), from the speech stretches (start, end) heard. Its
    words are not recognised (the digit recogniser knows digits only): the voice checks then
    hold it to the same one speaker, and an operator's review can listen to it."""
    if not script.statement:
        return [], {}
    start = script.code_start + CODE_SECONDS
    end = start + STATEMENT_SECONDS + 1.0
    heard = sum(max(0.0, min(b, end) - max(a, start)) for a, b in speech)
    scores = {"statement_speech_seconds": round(heard, 2)}
    return (["statement_not_read"] if heard < checks.min_statement_speech else []), scores


def voices_heard(
    samples: np.ndarray, checks: LiveChecks, embedder: VoiceEmbedder
) -> tuple[np.ndarray | None, list[str], dict[str, float]]:
    """The one voice of the recording (its embedding), or several_voices when another voice
    speaks for `other_voice_share` of the speech or more."""
    from consent_service.biometrics.audio import speech_segments  # webrtcvad: workers only

    heard = speech_segments(samples, aggressiveness=HEARD_AGGRESSIVENESS, context=SPEECH_CONTEXT)
    speakers = find_speakers(speech_segments(samples), embedder, checks.same_speaker, heard=heard)
    if not speakers:
        return None, [], {"voices": 0.0}
    total = sum(sp.seconds for sp in speakers)
    others = [sp for sp in speakers[1:] if sp.seconds >= checks.other_voice_share * total]
    scores = {
        "voices": float(1 + len(others)),
        "voice_seconds": round(speakers[0].seconds, 2),
        "other_voice_seconds": round(sum(sp.seconds for sp in speakers[1:]), 2),
    }
    return speakers[0].embedding, (["several_voices"] if others else []), scores


def _voice_embedder() -> VoiceEmbedder | None:
    """Resemblyzer when the voice extra is installed (checked without importing torch)."""
    if importlib.util.find_spec("resemblyzer") is None:
        return None
    from consent_service.biometrics.voices import ResemblyzerVoiceEmbedder

    return ResemblyzerVoiceEmbedder()


def _report(
    failures: list[str],
    scores: dict[str, float],
    details: dict[str, str],
    heard: str = "",
    faces: list[np.ndarray] | None = None,
    voice: np.ndarray | None = None,
) -> RecordingReport:
    unique = tuple(dict.fromkeys(failures))
    return RecordingReport(
        passed=not unique,
        failures=unique,
        scores=scores,
        heard=heard,
        face_embeddings=faces or [],
        voice_embedding=voice,
        details=details,
    )


def analyse_recording(
    data: bytes,
    script: Script,
    *,
    checks: LiveChecks = LiveChecks(),  # noqa: B008 - frozen, so one shared default is safe
    faces: FaceEmbedder | None = None,
    landmarks: LandmarkReader = dlib_landmarks,
    voices: VoiceEmbedder | None = None,
    reference_faces: Sequence[np.ndarray] = (),
    reference_voice: np.ndarray | None = None,
) -> RecordingReport:
    """Every machine check of one live recording against the script it answered.

    `faces` / `voices`: the embedders (dlib and Resemblyzer by default; the voice checks are
    skipped when the voice extra is missing). `reference_faces` / `reference_voice`: the
    subject's enrolled templates, for a step-up check (face_mismatch / voice_mismatch)."""
    from consent_service.biometrics.audio import decode_audio  # PyAV: workers only

    details: dict[str, str] = {}
    if len(data) > checks.max_bytes:
        details["too_long"] = f"{len(data):,} bytes; the limit is {checks.max_bytes:,}"
        return _report(["too_long"], {"bytes": float(len(data))}, details)
    # A webcam face is large: no upsampling, detection on a 480-pixel copy (faces of 80 px and
    # more there; about 8x less work than the gate's 1024 px with one upsampling).
    embedder = faces or DlibFaceEmbedder(detect_max_side=480, upsample=0)
    try:
        sightings = sight_faces(data, checks, embedder, landmarks)
    except MediaRejected as exc:
        # A broken bound on length (seconds or frames) is too_long; anything else is damage.
        too_long = "seconds" in exc.message or "frames (the limit)" in exc.message
        code = "too_long" if too_long and "limit" in exc.message else "undecodable"
        details[code] = str(exc)
        return _report([code], {}, details)
    failures: list[str] = []
    duration = sightings[-1].time if sightings else 0.0
    scores: dict[str, float] = {"seconds": round(duration, 2)}
    if duration < script.code_start + CODE_SECONDS / 2:
        failures.append("too_short")
        details["too_short"] = f"{duration:.1f} s; the script needs {script.seconds:.1f} s"
    found, measured = continuity(sightings, checks)
    failures += found
    scores.update(measured)
    followed, moved = followed_moves(script, sightings, checks)
    scores.update(moved)
    if not followed:
        failures.append("moves_not_followed")
    posed = [s.pose for s in sightings if s.pose is not None]
    templates = template_faces(sightings, checks, baseline(posed) if posed else None)

    heard, voice = "", None
    try:
        samples = decode_audio(data, checks.max_seconds)
    except MediaRejected as exc:
        samples = np.zeros(0, np.float32)
        details["no_speech"] = str(exc)
    from consent_service.biometrics.audio import speech_segments

    # Any speech at all, as the lenient detector hears it: digits read one by one are short
    # stretches the strict mode (and its 0.5 s minimum) drops (the bench's real speaker).
    speech = (
        speech_segments(samples, aggressiveness=HEARD_AGGRESSIVENESS, context=SPEECH_CONTEXT)
        if len(samples)
        else []
    )
    scores["speech_seconds"] = round(sum(s.end - s.start for s in speech), 2)
    if not speech:
        failures.append("no_speech")
    else:
        heard, found, measured = code_heard(samples, script, checks)
        failures += found
        scores.update(measured)
    # After the code (and with no speech at all, not read either).
    found, measured = statement_heard([(s.start, s.end) for s in speech], script, checks)
    failures += found
    scores.update(measured)
    if speech:
        embedder_v = voices if voices is not None else _voice_embedder()
        if embedder_v is not None:
            voice, found, measured = voices_heard(samples, checks, embedder_v)
            failures += found
            scores.update(measured)

    report = _report(failures, scores, details, heard, templates, voice)
    if reference_faces or reference_voice is not None:
        report = compared_with_enrolled(report, reference_faces, reference_voice, checks)
    return report


def compared_with_enrolled(
    report: RecordingReport,
    reference_faces: Sequence[np.ndarray],
    reference_voice: np.ndarray | None,
    checks: LiveChecks = LiveChecks(),  # noqa: B008 - frozen, so one shared default is safe
) -> RecordingReport:
    """The report of a step-up check: also face_mismatch when the recording's face (the median
    over its template faces of the distance to the nearest enrolled face) is further than
    `face_tolerance`, voice_mismatch when its voice is further than `voice_tolerance` from the
    enrolled voice (or no voice was heard)."""
    failures, scores = list(report.failures), dict(report.scores)
    if reference_faces:
        if not report.face_embeddings:
            failures.append("face_mismatch")
        else:
            distance = float(
                np.median(
                    [
                        min(np.linalg.norm(t - r) for r in reference_faces)
                        for t in report.face_embeddings
                    ]
                )
            )
            scores["face_distance"] = round(distance, 4)
            if distance > checks.face_tolerance:
                failures.append("face_mismatch")
    if reference_voice is not None:
        if report.voice_embedding is None:
            failures.append("voice_mismatch")
        else:
            distance = float(np.linalg.norm(report.voice_embedding - reference_voice))
            scores["voice_distance"] = round(distance, 4)
            if distance > checks.voice_tolerance:
                failures.append("voice_mismatch")
    return _report(
        failures,
        scores,
        report.details,
        report.heard,
        report.face_embeddings,
        report.voice_embedding,
    )
