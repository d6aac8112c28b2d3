"""Live voice enrollment's challenge: a random phrase in the page's language that takes 10 to 20
seconds to read, the person's own, used once, expiring, kept apart from face challenges; and the
recording handed to the worker. Speech itself is checked by the worker (end to end)."""

from __future__ import annotations

import random
import secrets
from datetime import timedelta

import pytest

from consent_service.biometrics import liveness, voice_challenge
from consent_service.biometrics.live_models import LiveChallenge
from consent_service.crypto import Envelope
from consent_service.errors import ChallengeRefused, EnrollmentRejected, RecordingTooLarge
from consent_service.storage import LocalMediaStore
from consent_service.vocabulary import Modality

MAX = 1000


@pytest.mark.parametrize(
    ("language", "per_second"),
    [("en", 2.5), ("zh-CN", 4.0)],  # words, characters read aloud per second
)
def test_a_phrase_takes_ten_to_twenty_seconds_to_read_and_varies(language, per_second):
    phrases = {voice_challenge.new_phrase(language) for _ in range(50)}
    assert len(phrases) > 40  # random sentences in a random order
    pool = voice_challenge.SENTENCES[language]
    for phrase in phrases:
        seconds = voice_challenge.phrase_length(phrase, language) / per_second
        assert 10 <= seconds <= 25, (phrase, seconds)
        assert sum(s in phrase for s in pool) >= 2  # several whole sentences of that language


def test_phrases_are_in_the_language_asked():
    rng = random.Random(7)
    english = voice_challenge.new_phrase("en", rng)
    chinese = voice_challenge.new_phrase("zh-CN", rng)
    assert english.isascii() and " " in english
    assert not any(c.isascii() and c.isalpha() for c in chinese) and "。" in chinese
    assert voice_challenge.phrase_length("我们，走了。", "zh-CN") == 4
    with pytest.raises(ValueError, match="no sentences"):
        voice_challenge.new_phrase("fr")


@pytest.fixture
def store(tmp_path):
    return LocalMediaStore(tmp_path, Envelope(secrets.token_bytes(32)))


def test_a_new_voice_challenge_voids_the_unused_voice_one_only(session, make_subject):
    me = make_subject()
    face = liveness.issue_challenge(session, me.id, 300)
    old = voice_challenge.issue_voice_challenge(session, me.id, "en", 300)
    new = voice_challenge.issue_voice_challenge(session, me.id, "zh-CN", 300)
    assert session.get(LiveChallenge, old.id) is None
    assert session.get(LiveChallenge, face.id) is not None  # the face page's challenge stays
    assert (new.modality, new.language, new.steps) == ("voice", "zh-CN", [])
    assert new.phrase and voice_challenge.phrase_length(new.phrase, "zh-CN") >= 52
    # And the face page leaves the voice page's challenge alone.
    liveness.issue_challenge(session, me.id, 300)
    assert session.get(LiveChallenge, new.id) is not None
    assert session.get(LiveChallenge, face.id) is None


def test_a_voice_challenge_is_the_subjects_own_used_once_and_expires(session, make_subject, store):
    me, other = make_subject(), make_subject()
    challenge = voice_challenge.issue_voice_challenge(session, me.id, "en", 300)
    start = voice_challenge.start_live_voice_enrollment

    with pytest.raises(ChallengeRefused, match="not known") as refused:
        start(session, store, other.id, challenge.id, b"sound", MAX)
    assert (refused.value.reason, refused.value.status) == ("unknown", 404)
    with pytest.raises(ChallengeRefused, match="not known"):
        start(session, store, me.id, "0" * 32, b"sound", MAX)
    with pytest.raises(EnrollmentRejected, match="No recording arrived"):
        start(session, store, me.id, challenge.id, b"", MAX)
    with pytest.raises(RecordingTooLarge, match="too large") as large:
        start(session, store, me.id, challenge.id, b"x" * (MAX + 1), MAX)
    assert large.value.status == 413
    assert challenge.used_at is None  # none of that used it up

    enrollment = start(session, store, me.id, challenge.id, b"x" * MAX, MAX)
    assert (enrollment.subject_id, enrollment.modality) == (me.id, Modality.VOICE.value)
    assert [store.get(k) for k in enrollment.media_keys] == [b"x" * MAX]
    assert challenge.enrollment_id == enrollment.id and challenge.used_at is not None
    assert challenge.phrase and challenge.language == "en"  # kept for review
    with pytest.raises(ChallengeRefused, match="already used") as used:
        start(session, store, me.id, challenge.id, b"sound", MAX)
    assert (used.value.reason, used.value.status) == ("used", 422)

    late = voice_challenge.issue_voice_challenge(session, me.id, "en", 300)
    late.expires_at -= timedelta(seconds=301)
    session.flush()
    with pytest.raises(ChallengeRefused, match="expired") as expired:
        start(session, store, me.id, late.id, b"sound", MAX)
    assert (expired.value.reason, expired.value.status) == ("expired", 422)


def test_a_challenge_answers_only_its_own_modality(session, make_subject, store):
    me = make_subject()
    voice = voice_challenge.issue_voice_challenge(session, me.id, "en", 300)
    face = liveness.issue_challenge(session, me.id, 300)
    # A voice challenge has no steps: without this check, no pictures would "answer" it.
    with pytest.raises(ChallengeRefused, match="not known"):
        liveness.start_live_enrollment(session, store, me.id, voice.id, [])
    with pytest.raises(ChallengeRefused, match="not known"):
        voice_challenge.start_live_voice_enrollment(session, store, me.id, face.id, b"s", MAX)
    assert voice.used_at is None and face.used_at is None
