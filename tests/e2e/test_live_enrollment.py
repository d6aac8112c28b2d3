"""Live face enrollment in a real browser: Debian's Chromium (headless, driven by Playwright) with
a fake webcam playing a clip made from real face photos, against the app served over HTTP on
127.0.0.1 and the real worker. Screenshots of the main pages go to test-artifacts/.

Also: every page's forms carry a CSRF token and every page sends the security headers."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from sqlmodel import select

from consent_service import db
from consent_service.biometrics.live_models import LiveChallenge
from consent_service.biometrics.models import BiometricTemplate, Enrollment
from tests import browser, camera
from tests.support import Person, csrf_token

pytestmark = pytest.mark.e2e

ARTIFACTS = browser.ARTIFACTS / "live-enrollment"
TIMEOUT_MS = browser.TIMEOUT_MS

browser.require_chromium()


@pytest.fixture(scope="module")
def base_url(stack) -> Iterator[str]:
    with browser.serve(stack.app) as url:
        yield url


@pytest.fixture(scope="module")
def clips(photos, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("camera")
    pose = camera.poses(photos)
    return {
        # Loops through every pose: the test captures each step when its pose is on camera.
        "turning": camera.write_y4m(
            out / "turning.y4m", [(p, pose[p]) for p in ("front", "left", "right")]
        ),
        "still": camera.write_y4m(out / "still.y4m", [("front", pose["front"])]),
    }


def _browser(playwright, clip: Path, profile: Path):
    return browser.launch(playwright, profile, video=clip)


def _shot(page, name: str, backend: str) -> None:
    browser.shot(page, "live-enrollment", f"{backend}-{name}")


def _sign_up(page, base_url: str, email: str, backend: str) -> None:
    page.goto(f"{base_url}/signup")
    page.fill("input[name=email]", email)
    page.fill("input[name=display_name]", "Barack")
    page.fill("input[name=password]", "a long enough password")
    _shot(page, "1-signup", backend)
    page.click("button[type=submit] >> text=Create account")
    page.wait_for_url(f"{base_url}/enroll")


def _enroll_live(page, base_url: str, backend: str, turns: bool = True) -> list[str]:
    """Follow the challenge with the fake camera, pressing Capture at each step when the camera
    shows the pose asked (or, without `turns`, looking straight ahead); returns the steps."""
    page.click("text=Enroll live with your camera")
    page.wait_for_url(f"{base_url}/enroll/live")
    steps = page.get_attribute("#live-enroll", "data-steps").split(",")
    assert steps[0] == "front" and sorted(steps[1:]) == ["left", "right"]
    page.click("#live-start")
    page.wait_for_function("() => document.getElementById('live-video').videoWidth > 0")
    _shot(page, "2-live-camera", backend)
    video = page.query_selector("#live-video")
    for step in steps:
        assert page.get_attribute("#live-instruction", "data-step") == step
        deadline = time.monotonic() + 30
        pose = step if turns else "front"
        while not page.evaluate(camera.CAPTURE_WHEN, [video, pose]):
            assert time.monotonic() < deadline, f"the camera never showed the {pose} pose"
            page.wait_for_timeout(40)
    page.wait_for_url(re.compile(r".*/enrollments/[0-9a-f]{32}$"), timeout=TIMEOUT_MS)
    page.wait_for_selector(".status-completed, .status-failed", timeout=TIMEOUT_MS)
    return steps


def test_sign_up_enroll_live_grant_revoke(stack, base_url, clips, tmp_path):
    backend = stack.backend
    with sync_playwright() as pw:
        chrome = _browser(pw, clips["turning"], tmp_path / "profile")
        try:
            page = chrome.new_page()
            _sign_up(page, base_url, "barack@example.org", backend)
            steps = _enroll_live(page, base_url, backend)
            _shot(page, "3-enrolled", backend)
            assert page.is_visible(".status-completed"), page.inner_text("main")
            assert re.search(r"\b3 face template", page.inner_text("main"))

            enrollment_id = page.url.rsplit("/", 1)[1]
            with stack.app.app_context():
                s = db.session()
                enrollment = s.get(Enrollment, enrollment_id)
                assert enrollment.media_keys == []  # the camera pictures are destroyed
                templates = s.exec(
                    select(BiometricTemplate).where(
                        BiometricTemplate.enrollment_id == enrollment_id
                    )
                ).all()
                assert len(templates) == 3
                challenge = s.exec(
                    select(LiveChallenge).where(LiveChallenge.enrollment_id == enrollment_id)
                ).one()
                assert challenge.steps == steps and challenge.used_at is not None
                s.close()
            assert not [f for f in stack.settings.media_dir.rglob("*") if f.is_file()]

            page.goto(f"{base_url}/grants/new?modality=face")
            page.check("input[name=operations][value=face_swap]")
            page.check("input[name=roles][value=source]")
            page.check("input[name=roles][value=target]")
            page.check("input[name=provider_scope][value=all]")
            page.check("input[name=agree]")
            _shot(page, "4-grant", backend)
            page.click("button[type=submit] >> text=Give consent")
            page.wait_for_url(f"{base_url}/")
            assert "active (v1)" in page.inner_text("main")
            _shot(page, "5-dashboard", backend)

            page.click("button[type=submit] >> text=Revoke")
            page.wait_for_url(f"{base_url}/")
            assert "revoked (v2)" in page.inner_text("main")
            _shot(page, "6-revoked", backend)
        finally:
            chrome.close()


def test_a_head_that_does_not_turn_fails_the_challenge(stack, base_url, clips, tmp_path):
    with sync_playwright() as pw:
        chrome = _browser(pw, clips["still"], tmp_path / "profile")
        try:
            page = chrome.new_page()
            _sign_up(page, base_url, "still@example.org", stack.backend + "-still")
            steps = _enroll_live(page, base_url, stack.backend + "-still", turns=False)
            _shot(page, "3-refused", stack.backend + "-still")
            text = page.inner_text("main")
            assert page.is_visible(".status-failed"), text
            assert f"Your head did not turn to the {steps[1]} as asked" in text
            with stack.app.app_context():
                s = db.session()
                row = s.get(Enrollment, page.url.rsplit("/", 1)[1])
                assert row.template_count == 0 and row.media_keys == []
                s.close()

            # The challenge was used up: sending pictures again for it is refused.
            challenge_id = None
            with stack.app.app_context():
                s = db.session()
                challenge_id = s.exec(
                    select(LiveChallenge.id).where(LiveChallenge.enrollment_id == row.id)
                ).one()
                s.close()
            page.goto(f"{base_url}/enroll/live")
            token = page.get_attribute("#live-enroll", "data-csrf")
            replay = page.request.post(
                f"{base_url}/enroll/live/{challenge_id}",
                headers={"X-CSRFToken": token},
                multipart={
                    f"frames{i}": {"name": "x.jpg", "mimeType": "image/jpeg", "buffer": b"x"}
                    for i in range(3)
                },
            )
            assert replay.status == 422 and "already used" in replay.json()["error"]
        finally:
            chrome.close()


def test_photo_upload_only_where_the_operator_allows_it(stack):
    person = Person(stack.client())
    person.post("/signup", {"email": "nophotos@example.org", "password": "a long password!"})
    assert "Enroll live with your camera" in person.get("/enroll")
    stack.settings.allow_photo_enrollment = False
    try:
        page = person.get("/enroll")
        assert 'type="file"' not in page.split("<h2>Your voice</h2>")[0]
        token = csrf_token(page)
        refused = person.client.post("/enroll", data={"csrf_token": token})
        assert refused.status_code == 403
    finally:
        stack.settings.allow_photo_enrollment = None


def _pages(stack) -> list[str]:
    """Every GET page of the app without path arguments (no API, no downloads)."""
    skip = ("/api/", "/static/", "/.well-known/")
    return sorted(
        rule.rule
        for rule in stack.app.url_map.iter_rules()
        if "GET" in rule.methods
        and not rule.arguments
        and not rule.rule.startswith(skip)
        and not rule.rule.endswith((".json", ".yaml"))
    )


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def _check_page(client, path: str) -> str | None:
    """None if the page is fine (or not a page for this visitor), else what is wrong."""
    response = client.get(path)
    if response.status_code != 200 or response.mimetype != "text/html":
        return None
    csp = response.headers.get("Content-Security-Policy", "")
    for directive in ("script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"):
        if directive not in csp:
            return f"{path}: CSP lacks {directive!r}"
    for name, value in SECURITY_HEADERS.items():
        if response.headers.get(name) != value:
            return f"{path}: {name} is {response.headers.get(name)!r}"
    html = response.get_data(as_text=True)
    if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html):
        return f"{path}: inline script"
    for form in re.findall(r"<form\b[^>]*>.*?</form>", html, flags=re.S | re.I):
        method = re.search(r'method="(\w+)"', form)
        if method and method.group(1).lower() == "post" and 'name="csrf_token"' not in form:
            return f"{path}: a POST form without a CSRF token: {form[:200]}"
    return None


def test_every_page_has_csrf_tokens_and_security_headers(stack):
    anonymous = stack.client()
    person = Person(stack.client())
    person.post("/signup", {"email": "pages@example.org", "password": "a long password!"})
    paths = _pages(stack)
    assert {"/login", "/signup", "/", "/enroll", "/enroll/live"} <= set(paths)
    checked, problems = 0, []
    for client in (anonymous, person.client):
        for path in paths:
            problem = _check_page(client, path)
            problems += [problem] if problem else []
            checked += 1
    assert not problems, problems
    assert checked >= 2 * len(paths)
    # The live page issues a fresh challenge each time and voids the one it showed before.
    first = re.search(r"/enroll/live/([0-9a-f]{32})", person.get("/enroll/live")).group(1)
    assert _check_page(person.client, "/enroll/live") is None
    with stack.app.app_context():
        s = db.session()
        assert s.get(LiveChallenge, first) is None
        s.close()


@pytest.fixture(scope="module", autouse=True)
def _fresh_artifacts():
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    yield
