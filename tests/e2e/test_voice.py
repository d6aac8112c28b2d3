"""Voice gating and voice enrollment end to end: real recorded speech (meeting recordings cut by
their speaker labels), Resemblyzer in a real Celery worker, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from urllib3 import encode_multipart_formdata

from consent_service import db
from consent_service.biometrics.operator_import import import_voice
from consent_service.biometrics.service import template_count, wait_for_enrollment
from consent_service.runtime import services
from consent_service.vocabulary import Modality, Operation
from tests.e2e.conftest import DECISION_TIMEOUT, Api
from tests.speech import silence, speech, wav_bytes
from tests.support import Person, csrf_token, verified_sign_up

pytestmark = pytest.mark.e2e


def _enroll_voice(stack, email: str, recording: bytes):
    with stack.app.app_context():
        with db.unit_of_work() as s:
            enrollment, _ = import_voice(s, services().media_store, email, recording)
        # import_voice registered the enrollment's task: sent when the unit of work ended.
        return wait_for_enrollment(db.engine(), enrollment.id, DECISION_TIMEOUT)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Speaker FEE083 in two different recordings (enrolled from one, gated with the other),
    speaker MEE009, and three seconds of silence, as WAV files."""
    folder = tmp_path_factory.mktemp("speech")
    made = {}
    for name, samples in {
        "fee083-trn06.wav": speech("FEE083", "trn06"),
        "fee083-trn09.wav": speech("FEE083", "trn09"),
        "mee009-dev00.wav": speech("MEE009", "dev00"),
        "fee078-trn05.wav": speech("FEE078", "trn05"),
        "silence.wav": silence(3.0),
    }.items():
        made[name] = folder / name
        made[name].write_bytes(wav_bytes(samples))
    return made


@pytest.fixture(scope="module")
def voice_world(stack, clips):
    carol = _enroll_voice(stack, "carol@example.org", clips["fee083-trn06.wav"].read_bytes())
    assert (carol.status, carol.template_count) == ("completed", 1), carol.error
    stack.grant(carol.subject_id, Operation.VOICE_CLONING)
    _, key = stack.provider("Voice Studio")
    return {"carol": carol, "api": Api(stack.client(), key)}


def test_consented_speaker_is_allowed_and_another_needs_consent(voice_world, clips):
    api = voice_world["api"]
    job = api.gate("voice_cloning", source=[clips["fee083-trn09.wav"]])
    assert (job["decision"], job["reasons"]) == ("allow", ["all_consented"]), job
    assert [f["outcome"] for f in job["findings"]] == ["consented"]

    other = api.gate("voice_cloning", source=[clips["mee009-dev00.wav"]])
    assert other["decision"] == "needs_consent", other
    assert [f["outcome"] for f in other["findings"]] == ["unenrolled"]

    # Carol's grant covers voice cloning only: converting speech into her voice is not covered.
    converted = api.gate("voice_conversion", target=[clips["fee083-trn09.wav"]])
    assert converted["decision"] == "needs_consent", converted
    assert [f["outcome"] for f in converted["findings"]] == ["not_covered"]


def test_silence_is_denied_as_no_voice_found(voice_world, clips):
    job = voice_world["api"].gate("voice_cloning", source=[clips["silence.wav"]])
    assert (job["decision"], job["reasons"]) == ("deny", ["no_voice_found"]), job
    assert job["findings"] == []


def test_an_image_for_a_voice_operation_is_rejected_input(voice_world, photos):
    job = voice_world["api"].gate("voice_editing", target=[photos["obama.jpg"]])
    assert (job["decision"], job["reasons"]) == ("deny", ["rejected_input"]), job
    assert "not a media container" in job["media"][0]["error"]


def test_voice_enrollment_of_silence_is_refused(stack, clips):
    refused = _enroll_voice(stack, "quiet@example.org", clips["silence.wav"].read_bytes())
    assert refused.status == "failed"
    assert refused.error.startswith("No speech was heard in the recording."), refused.error
    assert [p for p in stack.settings.media_dir.glob("*") if p.is_file()] == []


def test_voice_enrollment_in_the_browser(stack, clips):
    person = Person(stack.client())
    verified_sign_up(person, "dana@example.org", "a long enough password")
    assert 'accept="audio/*"' in person.get("/enroll")

    def upload(clip) -> str:
        # Encoded here: the test client spools big uploads to a temporary file it never closes.
        body, content_type = encode_multipart_formdata(
            {
                "csrf_token": csrf_token(person.get("/enroll")),
                "recording": ("me.wav", clip.read_bytes()),
            }
        )
        response = person.client.post("/enroll/voice", data=body, content_type=content_type)
        assert response.status_code == 302, response.get_data(as_text=True)
        deadline = time.monotonic() + DECISION_TIMEOUT
        while "Checking your recording" in (page := person.get(response.headers["Location"])):
            assert time.monotonic() < deadline, "enrollment never finished"
            time.sleep(0.3)
        return page

    assert "No speech was heard in the recording." in upload(clips["silence.wav"])
    assert "a voice template was made from your recording" in upload(clips["fee078-trn05.wav"])
    assert "Your voice is enrolled." in person.get("/enroll")


def test_a_voice_enrolled_by_another_account_is_disputed(stack, voice_world, clips):
    # Carol's voice (enrolled from one recording), heard in another recording, offered by Mallory:
    # it waits on a dispute for an operator, and no template of it is made.
    refused = _enroll_voice(stack, "mallory@example.org", clips["fee083-trn09.wav"].read_bytes())
    assert refused.status == "disputed"
    assert "already enrolled by another account" in refused.error, refused.error
    assert refused.template_count == 0
    with stack.app.app_context():
        assert template_count(db.session(), refused.subject_id, Modality.VOICE) == 0
