"""The live session page's own script in Debian's Chromium (headless), against the app served
over HTTP with no worker: with Chromium's built-in fake camera and microphone (a test pattern
and a tone), pressing Start shows each move of the server's script in order for MOVE_SECONDS,
then the code, records one clip (video and audio together, WebM), uploads it with the CSRF
header and follows its status. What the worker does with a clip is tested with real clips in
test_live_session.py. Screenshots: test-artifacts/live-session/page-<lang>-*.png."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import sync_playwright

from consent_service import db
from consent_service.app import create_app
from consent_service.biometrics.live_models import LiveSession
from consent_service.migrate import upgrade
from consent_service.runtime import services
from consent_service.settings import Settings
from tests import browser
from tests.support import mailed_path, serve

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"
BROWSER_LOCALE = {"en": "en-US", "zh-CN": "zh-CN"}
WEBM = b"\x1a\x45\xdf\xa3"

browser.require_chromium()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[object, str]]:
    settings = Settings(
        consent_service_home=tmp_path_factory.mktemp("live-page"), broker_url="memory://"
    )
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    with serve(app) as url:
        yield app, url
    app.extensions["db_engine"].dispose()


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_the_page_follows_its_script_records_one_clip_and_sends_it(site, tmp_path, lang):
    app, base_url = site
    email = f"page-{lang.lower()}@example.org"
    with sync_playwright() as pw:
        chrome = browser.launch(pw, tmp_path / "profile", locale=BROWSER_LOCALE[lang])
        try:
            page = chrome.new_page()
            page.goto(f"{base_url}/signup")
            page.fill("input[name=email]", email)
            page.fill("input[name=password]", PASSWORD)
            page.click("main form button[type=submit]")
            page.wait_for_url(f"{base_url}/login")
            page.fill("main input[name=email]", email)
            page.fill("main input[name=password]", PASSWORD)
            page.click("main form button[type=submit]")
            page.wait_for_url(f"{base_url}/")
            page.goto(
                base_url
                + mailed_path(app.extensions["consent_services"].settings, email, "/verify/")
            )
            page.click("#live-session-link")
            page.wait_for_url(f"{base_url}/live")
            assert page.get_attribute("html", "lang") == lang
            moves = page.get_attribute("#live-session", "data-moves").split(",")
            move_seconds = float(page.get_attribute("#live-session", "data-move-seconds"))
            assert page.is_hidden("#live-code")  # the code shows only at its turn
            browser.shot(page, "live-session", f"page-{lang}-1-ready")
            page.click("#live-open")
            page.wait_for_function(
                "() => document.getElementById('live-session').dataset.state === 'open'"
            )
            page.click("#live-start")
            seen: list[str] = []
            started = time.monotonic()
            while page.get_attribute("#live-session", "data-state") in ("recording", "open"):
                step = page.get_attribute("#live-session", "data-step")
                if step and (not seen or seen[-1] != step):
                    seen.append(step)
                    if step == moves[0]:
                        browser.shot(page, "live-session", f"page-{lang}-2-move")
                    if step == "code":
                        assert page.is_visible("#live-code")
                        browser.shot(page, "live-session", f"page-{lang}-3-code")
                assert time.monotonic() - started < 120
                page.wait_for_timeout(50)
            elapsed = time.monotonic() - started
            # Every move in order, then the code; the whole script's length, give or take.
            assert seen == [*moves, "code"], seen
            assert elapsed >= len(moves) * move_seconds
            page.wait_for_function(
                "() => document.getElementById('live-session').dataset.state === 'checking'",
                timeout=browser.TIMEOUT_MS,
            )
            browser.shot(page, "live-session", f"page-{lang}-4-sent")
            session_id = re.search(
                r"/live/([0-9a-f]{32})", page.get_attribute("#live-session", "data-upload-url")
            ).group(1)
        finally:
            chrome.close()
    with app.app_context():
        row = db.session().get(LiveSession, session_id)
        assert row.status == "pending" and row.recording_type.startswith("video/webm")
        clip = services().recording_store.get(row.recording_key)
        db.session().close()
    # One clip, video and audio together: WebM with both tracks' codecs named in it.
    assert clip[:4] == WEBM and row.recording_bytes == len(clip) > 10_000
    assert b"V_VP8" in clip or b"V_VP9" in clip
    assert b"A_OPUS" in clip
