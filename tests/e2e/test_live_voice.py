"""Live voice enrollment in a real browser: Debian's Chromium (headless, driven by Playwright)
whose fake microphone plays real recorded speech (or silence) from a WAV file, recording with
MediaRecorder on the page, against the app served over HTTP on 127.0.0.1 and the real worker
(webrtcvad and Resemblyzer). Screenshots go to test-artifacts/live-voice/."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from sqlmodel import select

from consent_service import db
from consent_service.biometrics.live_models import LiveChallenge
from consent_service.biometrics.models import BiometricTemplate, Enrollment
from tests import browser
from tests.e2e.conftest import Api
from tests.speech import silence, speech, wav_bytes
from tests.support import mailed_path

pytestmark = pytest.mark.e2e

ARTIFACTS = browser.ARTIFACTS / "live-voice"
TIMEOUT_MS = browser.TIMEOUT_MS
# How long the test reads before pressing Stop: past the page's minimum (6 s), within the
# 10 to 20 s the phrase takes.
READ_SECONDS = 12

browser.require_chromium()


@pytest.fixture(scope="module")
def microphones(tmp_path_factory) -> dict[str, Path]:
    """What the fake microphone plays (Chromium loops the file): speaker FEE083 talking alone
    in one meeting recording, or silence; and the same speaker in another recording, for a
    provider's job. 16-bit PCM WAV, 16 kHz mono: Chromium converts it to the capture's rate."""
    folder = tmp_path_factory.mktemp("microphone")
    made = {}
    for name, samples in {
        "speech": speech("FEE083", "trn06", max_seconds=20.0),
        "silence": silence(20.0),
        "later": speech("FEE083", "trn09"),
    }.items():
        made[name] = folder / f"{name}.wav"
        made[name].write_bytes(wav_bytes(samples))
    return made


def _shot(page, name: str) -> None:
    browser.shot(page, "live-voice", name)


def _sign_up(page, base_url: str, email: str, settings) -> None:
    page.goto(f"{base_url}/signup")
    page.fill("input[name=email]", email)
    page.fill("input[name=display_name]", "Fay")
    page.fill("input[name=password]", "a long enough password")
    page.click("button[type=submit] >> text=Create account")
    # Check your mail, sign in, open the mailed link: then the enrollment page.
    page.wait_for_url(f"{base_url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "a long enough password")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base_url}/")
    page.goto(base_url + mailed_path(settings, email, "/verify/"))
    page.wait_for_url(f"{base_url}/enroll")


def _record(page, base_url: str, name: str) -> tuple[str, str]:
    """From /enroll: open the recording page, read for READ_SECONDS, press Stop, and wait for the
    worker's verdict. Returns the phrase shown and the type of the recording sent."""
    page.click("text=Enroll your voice with your microphone")
    page.wait_for_url(f"{base_url}/enroll/voice/live")
    phrase = page.inner_text("#voice-phrase")
    assert page.get_attribute("#voice-phrase", "lang") == "en" and len(phrase.split()) >= 30
    assert page.is_disabled("#voice-stop")
    page.click("#voice-start")
    page.wait_for_selector("#voice-meter.recording", timeout=TIMEOUT_MS)
    # Stop is refused before the minimum: the button stays disabled until then.
    assert page.is_disabled("#voice-stop")
    page.wait_for_function(
        f"() => Number(document.getElementById('voice-meter').dataset.seconds) >= {READ_SECONDS}",
        timeout=TIMEOUT_MS,
    )
    assert page.is_enabled("#voice-stop")
    assert re.fullmatch(r"0:1\d", page.inner_text("#voice-elapsed"))
    _shot(page, f"{name}-1-recording")
    recorded = page.get_attribute("#live-voice", "data-mime-type")
    with page.expect_response(lambda r: "/enroll/voice/live/" in r.url) as sent:
        page.click("#voice-stop")
    assert sent.value.status == 202, sent.value.text()
    assert sent.value.request.headers["content-type"].startswith("multipart/form-data")
    page.wait_for_url(re.compile(r".*/enrollments/[0-9a-f]{32}$"), timeout=TIMEOUT_MS)
    page.wait_for_selector(".status-completed, .status-failed", timeout=TIMEOUT_MS)
    return phrase, recorded


def _enrollment(stack, page) -> tuple[Enrollment, list[BiometricTemplate], LiveChallenge]:
    enrollment_id = page.url.rsplit("/", 1)[1]
    with stack.app.app_context():
        s = db.session()
        enrollment = s.get(Enrollment, enrollment_id)
        templates = s.exec(
            select(BiometricTemplate).where(BiometricTemplate.enrollment_id == enrollment_id)
        ).all()
        challenge = s.exec(
            select(LiveChallenge).where(LiveChallenge.enrollment_id == enrollment_id)
        ).one()
        s.close()
    return enrollment, list(templates), challenge


def test_reading_the_phrase_enrolls_the_voice_and_deletes_the_recording(
    stack, base_url, microphones, tmp_path
):
    with sync_playwright() as pw:
        chrome = browser.launch(pw, tmp_path / "profile", audio=microphones["speech"])
        try:
            page = chrome.new_page()
            _sign_up(page, base_url, "fay@example.org", stack.settings)
            phrase, recorded = _record(page, base_url, f"{stack.backend}-speech")
            # Chromium records Opus in WebM, the first format the page asks for.
            assert recorded == "audio/webm;codecs=opus"
            _shot(page, f"{stack.backend}-speech-2-enrolled")
            text = page.inner_text("main")
            assert page.is_visible(".status-completed"), text
            assert "a voice template was made from your recording" in text

            enrollment, templates, challenge = _enrollment(stack, page)
            assert enrollment.media_keys == []  # the recording is destroyed
            assert [(t.modality, t.model) for t in templates] == [("voice", "resemblyzer/v1")]
            assert challenge.used_at is not None and challenge.modality == "voice"
            assert (challenge.phrase, challenge.language) == (phrase, "en")
            assert stack.stored_media() == []

            page.goto(f"{base_url}/enroll")
            assert "Your voice is enrolled." in page.inner_text("main")
        finally:
            chrome.close()

    # The template from the browser's recording is this speaker's: another recording of her, in
    # a provider's job, is found to be her (she has given no consent yet: not covered).
    _, key = stack.provider("Voice Studio")
    job = Api(stack.client(), key).gate("voice_cloning", source=[microphones["later"]])
    assert job["decision"] == "needs_consent", job
    assert [f["outcome"] for f in job["findings"]] == ["not_covered"], job


def test_a_silent_microphone_fails_with_no_speech_heard(stack, base_url, microphones, tmp_path):
    with sync_playwright() as pw:
        chrome = browser.launch(pw, tmp_path / "profile", audio=microphones["silence"])
        try:
            page = chrome.new_page()
            _sign_up(page, base_url, "mute@example.org", stack.settings)
            _record(page, base_url, f"{stack.backend}-silence")
            _shot(page, f"{stack.backend}-silence-2-refused")
            text = page.inner_text("main")
            assert page.is_visible(".status-failed"), text
            assert "No speech was heard in the recording." in text
            enrollment, templates, challenge = _enrollment(stack, page)
            assert enrollment.media_keys == [] and templates == []
            assert challenge.used_at is not None  # a failed enrollment used it up too
            assert stack.stored_media() == []
        finally:
            chrome.close()


@pytest.fixture(scope="module", autouse=True)
def _fresh_artifacts():
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    yield
