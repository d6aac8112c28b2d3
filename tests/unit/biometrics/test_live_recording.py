"""The live consent recording's pure logic: scripts, the pose from 5-point landmarks, moves in
their order, continuity from frame to frame, and the digits' distance. Real clips (real models,
real speech) are analysed in tests/e2e/test_live_recording_clips.py."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from consent_service.biometrics import live_recording as lr
from consent_service.biometrics import spoken_code
from consent_service.biometrics.faces import DetectedFace


def landmarks(nose_x: float = 0.0, nose_y: float = 60.0, eyes: float = 100.0, tilt: float = 0.0):
    """Eye centres `eyes` px apart around (200, 200), the nose tip below them; rotated by
    `tilt` radians in the picture."""
    half = eyes / 2
    points = {
        "left_eye": [(200 - half - 20, 200.0), (200 - half + 20, 200.0)],
        "right_eye": [(200 + half - 20, 200.0), (200 + half + 20, 200.0)],
        "nose_tip": [(200.0 + nose_x, 200.0 + nose_y)],
    }
    c, s = np.cos(tilt), np.sin(tilt)
    return {
        k: [
            (200 + c * (x - 200) - s * (y - 200), 200 + s * (x - 200) + c * (y - 200)) for x, y in v
        ]
        for k, v in points.items()
    }


def test_scripts_draw_at_least_four_moves_never_twice_in_a_row_with_a_turn_and_a_look():
    rng = random.Random(7)
    for _ in range(300):
        script = lr.new_script("en", rng=rng)
        assert len(script.moves) == 4 and set(script.moves) <= set(lr.MOVES)
        assert all(a != b for a, b in zip(script.moves, script.moves[1:], strict=False))
        assert set(script.moves) & set(lr.TURNS) and set(script.moves) & set(lr.LOOKS)
        assert len(script.code) == 6 and script.code.isdigit()
    seen = {m for _ in range(200) for m in lr.new_script("zh-CN", moves=6, rng=rng).moves}
    assert seen == set(lr.MOVES)
    codes = {lr.new_script("en").code for _ in range(50)}  # the system's randomness
    assert len(codes) > 45


def test_a_script_refuses_unknown_languages_and_fewer_than_four_moves():
    with pytest.raises(ValueError):
        lr.new_script("fr")
    with pytest.raises(ValueError):
        lr.new_script("en", moves=3)
    with pytest.raises(ValueError):
        lr.short_script("de")


def test_a_step_up_script_is_one_turn_or_look_and_a_code():
    rng = random.Random(1)
    moves = {lr.short_script("en", rng=rng).moves for _ in range(200)}
    assert moves == {(m,) for m in lr.TURNS + lr.LOOKS}  # never a zoom a moved photo can do


def test_the_timeline_puts_each_move_then_the_code_then_the_statement():
    script = lr.Script(("turn_left", "look_up"), "123456", "en", statement="I agree")
    assert script.windows() == [
        ("turn_left", 0.0, lr.MOVE_SECONDS),
        ("look_up", lr.MOVE_SECONDS, 2 * lr.MOVE_SECONDS),
        ("code", 2 * lr.MOVE_SECONDS, 2 * lr.MOVE_SECONDS + lr.CODE_SECONDS),
        ("statement", 2 * lr.MOVE_SECONDS + lr.CODE_SECONDS, script.seconds),
    ]
    assert script.seconds == 2 * lr.MOVE_SECONDS + lr.CODE_SECONDS + lr.STATEMENT_SECONDS
    assert lr.Script.from_dict(script.as_dict()) == script


def test_the_pose_reads_yaw_pitch_and_scale_whatever_the_head_tilt():
    rest = lr.pose_of(landmarks())
    assert rest.yaw == pytest.approx(0) and rest.pitch == pytest.approx(0.6)
    assert rest.scale == pytest.approx(100)
    tilted = lr.pose_of(landmarks(nose_x=20, nose_y=45, tilt=0.4))
    assert tilted.yaw == pytest.approx(0.2) and tilted.pitch == pytest.approx(0.45)
    assert lr.pose_of(landmarks(eyes=130)).scale == pytest.approx(130)


def test_excursions_in_thresholds_name_each_way_the_head_went():
    checks = lr.LiveChecks(min_turn=0.1, min_pitch=0.1, min_scale=0.2)
    base = lr.Pose(0.0, 0.6, 100)
    moved = lr.normalised(lr.excursions(lr.Pose(0.2, 0.6, 100), base), checks)
    assert moved["turn_left"] == pytest.approx(2) and moved["turn_right"] == pytest.approx(-2)
    moved = lr.normalised(lr.excursions(lr.Pose(0, 0.45, 100), base), checks)
    assert moved["look_up"] == pytest.approx(1.5) and moved["look_down"] == pytest.approx(-1.5)
    moved = lr.normalised(lr.excursions(lr.Pose(0, 0.6, 120), base), checks)
    assert moved["come_closer"] == pytest.approx(1) and moved["lean_back"] == pytest.approx(-1)


FACE = np.zeros(128)


def sightings(poses, step=0.2, box=(100, 300, 300, 100), embedding=FACE):
    """One face per sampled frame, at each pose in turn."""
    return [
        lr.Sighting(k * step, 1, DetectedFace(box, embedding), pose) for k, pose in enumerate(poses)
    ]


def following(moves, *, fps=5, amount=1.0):
    """Poses of a head making each move while its prompt is shown, resting otherwise."""
    go = {
        "turn_left": lr.Pose(0.25, 0.6, 100),
        "turn_right": lr.Pose(-0.25, 0.6, 100),
        "look_up": lr.Pose(0, 0.45, 100),
        "look_down": lr.Pose(0, 0.75, 100),
        "come_closer": lr.Pose(0, 0.6, 130),
        "lean_back": lr.Pose(0, 0.6, 75),
    }
    rest = lr.Pose(0, 0.6, 100)
    poses = []
    script = lr.Script(tuple(moves), "123456", "en")
    for k in range(int(script.seconds * fps)):
        t = k / fps
        i = int(t // lr.MOVE_SECONDS)
        inside = t - i * lr.MOVE_SECONDS
        if i < len(moves) and 0.6 <= inside < 1.6:
            target = go[moves[i]]
            poses.append(
                lr.Pose(
                    rest.yaw + (target.yaw - rest.yaw) * amount,
                    rest.pitch + (target.pitch - rest.pitch) * amount,
                    rest.scale * (target.scale / rest.scale) ** amount,
                )
            )
        else:
            poses.append(rest)
    return script, poses


def test_a_head_following_the_prompts_in_order_passes():
    script, poses = following(("turn_left", "look_down", "come_closer", "turn_right"))
    ok, scores = lr.followed_moves(script, sightings(poses), lr.LiveChecks())
    assert ok, scores
    assert scores["move_0_turn_left"] > 1 and scores["move_1_look_down"] > 1


def test_the_right_moves_in_another_order_fail():
    _, poses = following(("look_down", "turn_left", "come_closer", "turn_right"))
    script = lr.Script(("turn_left", "look_down", "come_closer", "turn_right"), "1", "en")
    ok, scores = lr.followed_moves(script, sightings(poses), lr.LiveChecks())
    assert not ok and scores["move_0_turn_left"] < 1


def test_a_still_head_a_too_small_move_or_only_zooming_fails():
    script, poses = following(("turn_left", "look_up", "lean_back", "turn_right"))
    still = [lr.Pose(0, 0.6, 100)] * len(poses)
    assert not lr.followed_moves(script, sightings(still), lr.LiveChecks())[0]
    _, small = following(script.moves, amount=0.3)
    assert not lr.followed_moves(script, sightings(small), lr.LiveChecks())[0]
    # A photo carried towards and away from the camera: the face grows and shrinks only.
    zoomed = [lr.Pose(0, 0.6, 100 * (1.3 if k % 10 < 5 else 0.8)) for k in range(len(poses))]
    assert not lr.followed_moves(script, sightings(zoomed), lr.LiveChecks())[0]


def test_no_pose_at_all_follows_nothing():
    script = lr.Script(("turn_left",), "1", "en")
    frames = [lr.Sighting(0.2 * k, 0) for k in range(20)]
    assert lr.followed_moves(script, frames, lr.LiveChecks()) == (False, {})


def test_a_continuous_take_of_one_face_has_no_cut():
    poses = [lr.Pose(0.01 * k, 0.6, 100) for k in range(30)]
    failures, scores = lr.continuity(sightings(poses), lr.LiveChecks())
    assert failures == [] and scores["frames_with_face"] == 30


def test_a_jump_of_the_face_its_size_its_pose_or_its_identity_is_a_cut():
    poses = [lr.Pose(0, 0.6, 100)] * 20
    checks = lr.LiveChecks()
    moved = sightings(poses[:10]) + [
        lr.Sighting(2 + 0.2 * k, 1, DetectedFace((100, 500, 300, 300), FACE), poses[0])
        for k in range(10)
    ]
    assert lr.continuity(moved, checks)[0] == ["cut"]
    # Twice as large between two frames: the eyes' distance and the box (or the box alone,
    # without landmarks).
    grown = sightings(poses[:10]) + [
        lr.Sighting(2 + 0.2 * k, 1, DetectedFace((0, 500, 400, 100), FACE), lr.Pose(0, 0.6, 200))
        for k in range(10)
    ]
    assert lr.continuity(grown, checks)[0] == ["cut"]
    unposed = [replace(s, pose=None) for s in grown]
    assert lr.continuity(unposed, checks)[0] == ["cut"]
    # The detector's box alone jumping (its pyramid scales) while the eyes stay: no cut.
    boxed = sightings(poses[:10]) + [
        lr.Sighting(2 + 0.2 * k, 1, DetectedFace((50, 350, 350, 50), FACE), poses[0])
        for k in range(10)
    ]
    failures, scores = lr.continuity(boxed, checks)
    assert failures == [] and scores["size_step"] == 0
    # … nor the eyes alone (a landmark's wobble) while the box stays.
    wobbled = sightings(poses[:10] + [lr.Pose(0, 0.6, 150)] * 10)
    assert lr.continuity(wobbled, checks)[0] == []
    turned = sightings(poses[:10] + [lr.Pose(0.3, 0.6, 100)] * 10)
    assert lr.continuity(turned, checks)[0] == ["cut"]
    other = np.full(128, 0.05)  # 0.57 away: another photo, or another person
    swapped = sightings(poses[:10]) + [
        lr.Sighting(2 + 0.2 * k, 1, DetectedFace((100, 300, 300, 100), other), poses[0])
        for k in range(10)
    ]
    failures, scores = lr.continuity(swapped, checks)
    assert failures == ["cut"] and scores["identity_step"] == pytest.approx(0.566, abs=1e-3)


def test_frames_without_a_face_or_with_two_fail():
    poses = [lr.Pose(0, 0.6, 100)] * 20
    frames = sightings(poses)
    gap = frames[:5] + [lr.Sighting(f.time, 0) for f in frames[5:12]] + frames[12:]
    assert lr.continuity(gap, lr.LiveChecks())[0] == ["no_face"]
    assert lr.continuity([lr.Sighting(0, 0)], lr.LiveChecks())[0] == ["no_face"]
    crowded = [
        lr.Sighting(f.time, 2, f.face, f.pose) if k in (3, 9) else f for k, f in enumerate(frames)
    ]
    assert lr.continuity(crowded, lr.LiveChecks())[0] == ["several_faces"]
    one_glitch = [
        lr.Sighting(f.time, 2, f.face, f.pose) if k == 3 else f for k, f in enumerate(frames)
    ]
    assert lr.continuity(one_glitch, lr.LiveChecks())[0] == []


def test_templates_are_spread_over_the_take_and_nearest_the_rest_pose():
    poses = [lr.Pose(0.3 if k % 4 else 0.0, 0.6, 100) for k in range(20)]
    frames = [
        lr.Sighting(0.2 * k, 1, DetectedFace((0, 1, 1, 0), np.full(128, k)), pose)
        for k, pose in enumerate(poses)
    ]
    picked = lr.template_faces(frames, lr.LiveChecks(template_faces=5), lr.Pose(0, 0.6, 100))
    assert [int(p[0]) for p in picked] == [0, 4, 8, 12, 16]


def test_every_failure_code_has_a_message_and_the_digit_distance_counts_edits():
    assert set(lr.FAILURE_MESSAGES) >= {
        "no_face", "several_faces", "cut", "moves_not_followed", "code_not_heard",
        "no_speech", "several_voices", "too_short", "undecodable",
    }  # fmt: skip
    assert set(lr.MOVE_PROMPTS) == set(lr.MOVES)
    assert spoken_code.edit_distance("123456", "123456") == 0
    assert spoken_code.edit_distance("123456", "12456") == 1
    assert spoken_code.edit_distance("123456", "923450") == 2
    assert spoken_code.edit_distance("", "123") == 3


def _heard(*words: tuple[str, float]) -> spoken_code.Heard:
    return spoken_code.Heard(
        "".join(d for d, _ in words),
        tuple(spoken_code.HeardDigit(d, t, t + 0.3) for d, t in words),
    )


def test_the_reading_starts_at_its_first_digit_not_at_a_noise_heard_as_one_before_it():
    # A browser recording of "2 8 3 8 3 0" read in time, with a "5" heard in the room noise
    # at the window's edge: the reading starts at the 2 (it failed code_not_in_time before).
    noise_first = _heard(("5", 0.0), ("2", 1.3), ("8", 1.9), ("3", 2.8), ("8", 3.7), ("3", 4.3))
    assert lr.reading_start("283830", noise_first) == noise_first.words[1]
    # Digits that were read count, however early or late: a misheard or missing digit is not
    # passed over, and neither is a whole reading shifted in time.
    misheard = _heard(("9", 0.2), ("8", 0.8), ("3", 1.4), ("8", 2.0), ("3", 2.6), ("0", 3.2))
    assert lr.reading_start("283830", misheard) == misheard.words[0]
    missing_first = _heard(("8", 4.1), ("3", 4.7), ("8", 5.3), ("3", 5.9), ("0", 6.5))
    assert lr.reading_start("283830", missing_first) == missing_first.words[0]
    early = _heard(("2", -0.4), ("8", 0.2), ("3", 0.8), ("8", 1.4), ("3", 2.0), ("0", 2.6))
    assert lr.reading_start("283830", early) == early.words[0]
    # Only an inserted digit after the code: it is no insertion before the reading.
    late_noise = _heard(*((d, 0.6 * k) for k, d in enumerate("2838307")))
    assert lr.reading_start("283830", late_noise) == late_noise.words[0]
    assert lr.reading_start("283830", _heard()) is None


def test_the_digit_dictionaries_spell_every_digit_in_the_models_phones():
    phones = {
        "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH "
        "UH UW V W Y Z ZH"
    }.pop().split()
    for language in spoken_code.LANGUAGES:
        entries = [line.split() for line in spoken_code.dictionary(language).splitlines()]
        assert {e[0][1] for e in entries} == set("0123456789")
        assert all(set(e[1:]) <= set(phones) for e in entries), language
    assert "public <code> = ( d0 | d1" in spoken_code.grammar()


def test_a_step_up_also_compares_the_face_and_voice_with_the_enrolled_ones():
    face, voice = np.zeros(128), np.eye(256)[0]
    report = lr.RecordingReport(True, (), {}, "123456", [face, face + 0.01], voice)
    same = lr.compared_with_enrolled(report, [face + 0.02], voice + 0.01)
    assert same.passed and same.scores["face_distance"] == pytest.approx(0.17, abs=1e-2)
    other = lr.compared_with_enrolled(report, [face + 0.1], np.eye(256)[1])
    assert other.failures == ("face_mismatch", "voice_mismatch")
    assert other.scores["voice_distance"] == pytest.approx(2**0.5, abs=1e-3)
    silent = lr.RecordingReport(False, ("no_speech",), {}, "", [], None)
    assert lr.compared_with_enrolled(silent, [face], voice).failures == (
        "no_speech", "face_mismatch", "voice_mismatch",
    )  # fmt: skip


def test_a_step_up_script_carries_its_statement_after_the_code():
    script = lr.short_script("en", rng=random.Random(3), statement="I consent to face swap.")
    assert [w[0] for w in script.windows()][-2:] == ["code", "statement"]
    assert script.seconds == lr.MOVE_SECONDS + lr.CODE_SECONDS + lr.STATEMENT_SECONDS
    assert lr.short_script("en", rng=random.Random(3)).statement is None


@pytest.mark.parametrize(
    ("speech", "failures"),
    [
        ([(10.0, 12.5)], []),  # read while shown
        ([(19.0, 20.8)], []),  # … up to a second after
        ([(3.0, 9.4)], ["statement_not_read"]),  # only the code
        ([(9.6, 10.1), (12.0, 12.6)], ["statement_not_read"]),  # a word or two
        ([], ["statement_not_read"]),
    ],
)
def test_the_statement_must_be_heard_while_it_is_shown(speech, failures):
    script = lr.Script(("turn_left",), "123456", "en", statement="I consent to face swap.")
    start = lr.MOVE_SECONDS + lr.CODE_SECONDS  # 9.5 s
    assert (start, script.seconds) == (9.5, 19.5)
    found, scores = lr.statement_heard(speech, script, lr.LiveChecks())
    assert found == failures
    assert scores["statement_speech_seconds"] >= 0
    assert lr.statement_heard(
        speech, lr.Script(("turn_left",), "123456", "en"), lr.LiveChecks()
    ) == ([], {})


def test_digits_heard_after_the_code_left_the_screen_count_only_where_they_help():
    def heard(*words: tuple[str, float]) -> spoken_code.Heard:
        return spoken_code.Heard(
            "".join(d for d, _ in words),
            tuple(spoken_code.HeardDigit(d, t, t + 0.3) for d, t in words),
        )

    code = "940283"
    read = [("9", 1.5), ("4", 2.5), ("0", 3.5), ("2", 4.5), ("8", 5.4), ("3", 6.3)]
    # The statement's first words, heard as digits once the code is gone, are not the code's.
    assert lr.code_errors(code, heard(*read, ("0", 7.8), ("4", 8.0)), shown_until=7.5) == 0
    # While the code is on screen every digit counts.
    assert lr.code_errors(code, heard(*read, ("0", 7.0), ("4", 7.2)), shown_until=7.5) == 2
    # A slow reader's last digit, heard just after the code left, still counts for it...
    assert lr.code_errors(code, heard(*read[:5], ("3", 7.8)), shown_until=7.5) == 0
    # ...and a digit missed stays missed, whatever is heard late.
    assert lr.code_errors(code, heard(*read[:5]), shown_until=7.5) == 1
    assert lr.code_errors(code, heard(*read[:4], ("1", 7.9)), shown_until=7.5) == 2
