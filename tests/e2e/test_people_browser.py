"""The people's side in a real browser: Debian's Chromium (headless, driven by Playwright)
against the app served over HTTP on 127.0.0.1 and the real worker. In English and in Chinese (a
zh-CN browser): sign up, enroll real face photos on /enroll (uploads are on in development; the
live consent session has its own browser test, tests/e2e/test_live_session.py), grant, revoke,
the ledger, receipts, export, account deletion. Screenshots of the main pages go to
test-artifacts/people/.

Also: every page's forms carry a CSRF token and every page sends the security headers."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from sqlmodel import select

from consent_service import db
from consent_service.accounts import step_up
from consent_service.accounts.models import Subject, User
from consent_service.audit.models import AuditEvent
from consent_service.audit.service import verify
from consent_service.biometrics.models import BiometricTemplate, Enrollment
from consent_service.consent import service as consent
from consent_service.consent.notice import NOTICE_VERSION
from consent_service.runtime import services
from tests import browser
from tests.e2e.conftest import Api
from tests.support import Person, mailed_path, templates_of, verified_sign_up

pytestmark = pytest.mark.e2e

ARTIFACTS = browser.ARTIFACTS / "people"
TIMEOUT_MS = browser.TIMEOUT_MS
PASSWORD = "a long enough password"
BROWSER_LOCALE = {"en": "en-US", "zh-CN": "zh-CN"}

# What the pages say in each language; the Chinese is that of the zh_CN messages.po.
WORDS = {
    "en": {
        "create_account": "Create account",
        "enrolled": "2 face templates made",
        "notice_title": "Separate consent to edit your face",
        "notice_who": "Who",
        "give_consent": "Give consent",
        "active_v1": "active (v1)",
        "revoked_v2": "revoked (v2)",
        "revoke": "Revoke",
        "revoked_flash": "Consent revoked.",
        "activity": "Every attempt to edit you",
        "allowed": "allowed",
        "blocked": "blocked",
        "export": "Download all your data (JSON)",
        "delete_title": "Delete your account",
        "delete_button": "Delete my account",
        "wrong_password": "The password is not correct; the account was not deleted.",
        "deleted": "Your account is deleted",
        "sign_in_first": "Please sign in to see this page.",
        "wrong_login": "Wrong e-mail address or password.",
    },
    "zh-CN": {
        "create_account": "创建账户",
        "enrolled": "2 个人脸模板",
        "notice_title": "关于编辑您人脸的单独同意",
        "notice_who": "处理者与接收方",
        "give_consent": "作出同意",
        "active_v1": "有效（v1）",
        "revoked_v2": "已撤回（v2）",
        "revoke": "撤回",
        "revoked_flash": "同意已撤回。",
        "activity": "所有试图编辑您的记录",
        "allowed": "已允许",
        "blocked": "已阻止",
        "export": "下载您的全部数据（JSON）",
        "delete_title": "注销您的账户",
        "delete_button": "注销我的账户",
        "wrong_password": "密码不正确，账户未被注销。",
        "deleted": "您的账户已注销",
        "sign_in_first": "请先登录再查看此页面。",
        "wrong_login": "电子邮箱或密码错误。",
    },
}

browser.require_chromium()


def _browser(playwright, profile: Path, lang: str = "en"):
    return browser.launch(playwright, profile, locale=BROWSER_LOCALE[lang])


def _shot(page, name: str, prefix: str) -> None:
    browser.shot(page, "people", f"{prefix}-{name}")


def _says(page, lang: str, *keys: str) -> None:
    """The page is in `lang`: its <html lang> and the words it should show; a page in Chinese
    shows none of their English."""
    assert page.get_attribute("html", "lang") == lang
    text = page.inner_text("body")
    for key in keys:
        assert WORDS[lang][key] in text, (page.url, key, text[:3000])
        if lang != "en":
            assert WORDS["en"][key] not in text, (page.url, key, text[:3000])


def _submit(page, form: str = "main form") -> None:
    """Press the submit button of a form in the page's content (the header has forms too)."""
    page.click(f"{form} button[type=submit]")


def _sign_up(page, base_url: str, email: str, lang: str, prefix: str, settings) -> None:
    page.goto(f"{base_url}/signup")
    _says(page, lang, "create_account")
    page.fill("input[name=email]", email)
    page.fill("input[name=display_name]", "Barack")
    page.fill("input[name=password]", PASSWORD)
    _shot(page, "1-signup", prefix)
    _submit(page)
    # The same answer for any address: check your mail, sign in; the mailed link then verifies.
    page.wait_for_url(f"{base_url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    _submit(page)
    page.wait_for_url(f"{base_url}/")
    page.goto(base_url + mailed_path(settings, email, "/verify/"))
    page.wait_for_url(f"{base_url}/enroll")


PHOTOS = ("obama.jpg", "obama2.jpg")


def _enroll_photos(page, base_url: str, photos: dict[str, Path], prefix: str) -> None:
    """Upload two photos of the face on /enroll and wait for the worker."""
    page.goto(f"{base_url}/enroll")
    assert page.get_attribute("main a#live-session-link", "href") == "/live"
    page.set_input_files("main input[name=photos]", [str(photos[name]) for name in PHOTOS])
    _shot(page, "2-enroll", prefix)
    _submit(page, "main form[enctype='multipart/form-data']:not([action])")
    page.wait_for_url(re.compile(r".*/enrollments/[0-9a-f]{32}$"), timeout=TIMEOUT_MS)
    page.wait_for_selector(".status-completed, .status-failed", timeout=TIMEOUT_MS)


def _check_enrolled(stack, page, lang: str) -> int:
    """Two templates from the two photos, which are gone, at assurance `uploaded`; returns the
    subject id."""
    assert page.is_visible(".status-completed"), page.inner_text("main")
    _says(page, lang, "enrolled")
    enrollment_id = page.url.rsplit("/", 1)[1]
    with stack.app.app_context():
        s = db.session()
        enrollment = s.get(Enrollment, enrollment_id)
        assert enrollment.media_keys == []  # the photos are destroyed
        templates = s.exec(
            select(BiometricTemplate).where(BiometricTemplate.enrollment_id == enrollment_id)
        ).all()
        assert len(templates) == 2
        subject_id = enrollment.subject_id
        assert s.get(Subject, subject_id).assurance == enrollment.assurance == "uploaded"
        s.close()
    assert stack.stored_media() == []
    return subject_id


def _grant_ids(page) -> list[str]:
    return [row.get_attribute("data-grant") for row in page.query_selector_all("[data-grant]")]


def _status(page, grant_id: str) -> tuple[str, str]:
    """(status code, status as shown) of a grant on the dashboard."""
    cell = f"[data-grant='{grant_id}'] .grant-status"
    return page.get_attribute(cell, "data-status"), page.inner_text(cell)


def _grant(app, page, base_url: str, lang: str, operation: str, roles, prefix: str | None) -> str:
    """Give consent with the face form, the notice shown in `lang`; returns the new grant's id."""
    page.goto(f"{base_url}/")
    before = set(_grant_ids(page))
    page.goto(f"{base_url}/grants/new?modality=face")
    _says(page, lang, "notice_title", "notice_who", "give_consent")
    assert page.get_attribute(".notice", "lang") == lang
    assert page.get_attribute("input[name=notice_language]", "value") == lang
    page.check(f"input[name=operations][value={operation}]")
    for role in roles:
        page.check(f"input[name=roles][value={role}]")
    page.check("input[name=provider_scope][value=all]")
    page.check("input[name=agree]")
    if prefix:
        _shot(page, "4-grant", prefix)
    _submit(page, "main form[action*='/grants/new']")
    # The grant waits for the live step-up check (tests/e2e/test_live_session.py runs it in
    # the browser); this test carries it out as the worker does once a check passed.
    page.wait_for_url(re.compile(r".*/live/step-up/[0-9a-f]{32}$"))
    with app.app_context(), db.unit_of_work() as s:
        step_up.carry_out(
            s,
            services().audit_key,
            page.url.rsplit("/", 1)[1],
            {"live_session_id": None, "method": "test-step-up", "scores": {}},
        )
    page.goto(f"{base_url}/")
    (grant_id,) = set(_grant_ids(page)) - before
    assert _status(page, grant_id)[0] == "active"
    return grant_id


def _revoke(page, base_url: str, lang: str, grant_id: str) -> None:
    button = f"[data-grant='{grant_id}'] form[action$='/revoke'] button[type=submit]"
    assert page.inner_text(button) == WORDS[lang]["revoke"]
    page.click(button)
    page.wait_for_url(f"{base_url}/")
    assert _status(page, grant_id) == ("revoked", WORDS[lang]["revoked_v2"])
    assert not page.query_selector(f"[data-grant='{grant_id}'] form[action$='/revoke']")
    _says(page, lang, "revoked_flash", "revoked_v2")


def _activity(page, base_url: str, lang: str, allowed: dict, blocked: dict) -> None:
    """The ledger shows both jobs: the allowed one and the one blocked by the revocation."""
    page.click("header a[href$='/activity']")
    page.wait_for_url(f"{base_url}/activity")
    _says(page, lang, "activity", "allowed", "blocked")
    rows = {
        row.query_selector("td code").inner_text(): row.get_attribute("class")
        for row in page.query_selector_all("main tr.allowed, main tr.blocked")
    }
    assert rows == {allowed["id"][:12]: "allowed", blocked["id"][:12]: "blocked"}


def _download_json(page, link: str) -> tuple[str, dict]:
    """Click a download link; (suggested file name, parsed JSON)."""
    with page.expect_download() as info:
        page.click(link)
    download = info.value
    return download.suggested_filename, json.loads(Path(download.path()).read_text("utf-8"))


def _receipts(page, base_url: str, lang: str, grant_id: str, prefix: str) -> None:
    """Both receipts of the revoked grant, from the dashboard's links to their pages (reloaded
    until the worker has signed them): given, then withdrawn, each naming the notice version and
    the language it was shown in."""
    events = []
    for version in (1, 2):
        page.goto(f"{base_url}/")
        page.click(f"[data-grant='{grant_id}'] a[href$='/v{version}/receipt']")
        for _ in range(120):
            if page.query_selector("article.receipt[data-signed='yes']"):
                break
            page.wait_for_timeout(500)
            page.reload()
        if version == 2:
            _shot(page, "7b-receipt", prefix)
        name, receipt = _download_json(page, f"main a[href$='/v{version}/receipt.json']")
        assert name == f"consent-receipt-{grant_id}-v{version}.json"
        assert (receipt["iso27560"]["record_id"], receipt["grant"]["version"]) == (
            grant_id,
            version,
        )
        notice = receipt["iso27560"]["privacy_notice"]
        assert receipt["language"] == notice["language"] == lang
        assert notice["version"] == NOTICE_VERSION
        events.append((receipt["grant"]["status"], receipt["iso27560"]["events"][0]["event_state"]))
    assert events == [("active", "consent given"), ("revoked", "consent withdrawn")]


BIOMETRIC_KEYS = re.compile(r"embedding|vector|ciphertext|encoding|template_bytes", re.I)


def _biometric_leaks(value, where: str = "") -> list[str]:
    """Anything in exported JSON that could be biometric data: a key naming it, a long run of
    numbers (a face vector has 128), or a long opaque string (an encrypted template)."""
    if isinstance(value, dict):
        return [
            leak
            for key, item in value.items()
            # A signed receipt: its content is the `receipt` beside it, checked as itself.
            if key != "jws"
            for leak in ([f"{where}.{key}"] if BIOMETRIC_KEYS.search(key) else [])
            + _biometric_leaks(item, f"{where}.{key}")
        ]
    if isinstance(value, list):
        if len(value) >= 64 and all(isinstance(v, int | float) for v in value):
            return [f"{where}: {len(value)} numbers"]
        return [
            leak for i, item in enumerate(value) for leak in _biometric_leaks(item, f"{where}[{i}]")
        ]
    if isinstance(value, str) and len(value) > 512:
        return [f"{where}: a {len(value)}-character string"]
    return []


def _export(page, base_url: str, lang: str, prefix: str) -> dict:
    """Download everything held about the person from the dashboard's link."""
    page.goto(f"{base_url}/")
    _says(page, lang, "export")
    _shot(page, "8-account", prefix)
    name, data = _download_json(page, "main a[href$='/account/export.json']")
    assert name == "consent-service-export.json"
    assert _biometric_leaks(data) == []
    return data


def _check_export(data: dict, email: str, lang: str, grants: list[str], jobs: dict) -> None:
    first, second = grants
    assert data["account"]["email"] == email and data["account"]["created_at"]
    assert data["subject"]["display_name"] == "Barack"
    assert data["subject"]["protect_only"] is False
    assert sorted((g["grant_id"], g["version"], g["status"]) for g in data["grants"]) == sorted(
        [(first, 1, "active"), (first, 2, "revoked"), (second, 1, "active")]
    )
    assert {(g["notice_version"], g["language"]) for g in data["grants"]} == {
        (NOTICE_VERSION, lang)
    }
    receipts = [r["receipt"] for r in data["receipts"]]
    assert sorted(
        (r["iso27560"]["record_id"], r["grant"]["version"], r["grant"]["status"]) for r in receipts
    ) == sorted([(first, 1, "active"), (first, 2, "revoked"), (second, 1, "active")])
    assert {r["piiPrincipalId"] for r in receipts} == {data["subject"]["reference"]}
    ledger = {(e["job_id"], e["outcome"], e["decision"], e["grant_id"]) for e in data["ledger"]}
    assert ledger == {
        (jobs["allowed"]["id"], "consented", "allow", first),
        (jobs["blocked"]["id"], "revoked", "deny", first),
    }
    (enrollment,) = data["enrollments"]
    assert (enrollment["modality"], enrollment["status"], enrollment["templates_made"]) == (
        "face",
        "completed",
        2,
    )
    # Which templates exist, never what they hold.
    assert len(data["templates"]) == 2
    for template in data["templates"]:
        assert set(template) == {"id", "modality", "model", "enrollment_id", "created_at"}
        assert template["modality"] == "face" and template["model"].startswith("face_recognition")
    events = [e["event_type"] for e in data["audit_events"]]
    assert events.count("consent.granted") == 2 and events.count("consent.revoked") == 1


def _delete(page, base_url: str, lang: str, prefix: str) -> None:
    """Delete the account from the dashboard's link: a wrong password is refused, the right one
    erases it and signs the person out."""
    page.goto(f"{base_url}/")
    page.click("main a[href$='/account/delete']")
    page.wait_for_url(f"{base_url}/account/delete")
    _says(page, lang, "delete_title", "delete_button")
    _shot(page, "9-delete", prefix)
    page.fill("main input[name=password]", "not my password at all")
    _submit(page)
    page.wait_for_load_state()
    assert page.url == f"{base_url}/account/delete"
    _says(page, lang, "wrong_password")
    page.fill("main input[name=password]", PASSWORD)
    _submit(page)
    page.wait_for_url(f"{base_url}/login")
    _says(page, lang, "deleted")
    _shot(page, "10-deleted", prefix)


def _check_signed_out(page, base_url: str, lang: str, email: str) -> None:
    """No page of the account opens any more, and the old password signs nobody in."""
    page.goto(f"{base_url}/")
    assert page.url.startswith(f"{base_url}/login?next=")
    _says(page, lang, "sign_in_first")
    page.fill("main input[name=email]", email)
    page.fill("main input[name=password]", PASSWORD)
    _submit(page)
    page.wait_for_load_state()
    assert page.url.startswith(f"{base_url}/login")
    _says(page, lang, "wrong_login")


def _check_erased(stack, subject_id: int, email: str, grants: list[str]) -> None:
    """Templates destroyed, every grant revoked (the still active one by the deletion), sign-in
    impossible, and an audit tombstone with counts only."""
    first, second = grants
    with stack.app.app_context():
        s = db.session()
        assert templates_of(s, subject_id) == []
        latest = consent.current_grants(s, [subject_id])
        assert sorted((g.grant_id, g.version, g.status) for g in latest) == sorted(
            [(first, 2, "revoked"), (second, 2, "revoked")]
        )
        subject = s.get(Subject, subject_id)
        user = s.get(User, subject.user_id)
        assert subject.display_name == ""
        assert not user.is_active and user.email.endswith("@deleted.invalid")
        tombstone = s.exec(
            select(AuditEvent).where(
                AuditEvent.event_type == "account.deleted", AuditEvent.subject_id == subject_id
            )
        ).one()
        assert tombstone.payload == {
            "templates_destroyed": 2,
            "modalities": ["face"],
            "grants_revoked": [second],
            "enrollments_cancelled": 0,
        }
        assert email not in json.dumps(tombstone.payload)
        assert verify(s, services().audit_key).ok
        s.close()


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_sign_up_enroll_grant_revoke_export_delete(stack, base_url, photos, tmp_path, lang):
    prefix = f"{stack.backend}-{lang}"
    email = f"barack-{lang.lower()}@example.org"
    _, key = stack.provider(f"Live Studio {lang}")
    api = Api(stack.client(), key)
    with sync_playwright() as pw:
        chrome = _browser(pw, tmp_path / "profile", lang)
        try:
            page = chrome.new_page()
            _sign_up(page, base_url, email, lang, prefix, stack.settings)
            _enroll_photos(page, base_url, photos, prefix)
            _shot(page, "3-enrolled", prefix)
            subject_id = _check_enrolled(stack, page, lang)

            first = _grant(
                stack.app, page, base_url, lang, "face_swap", ["source", "target"], prefix
            )
            assert _status(page, first) == ("active", WORDS[lang]["active_v1"])
            _shot(page, "5-dashboard", prefix)
            allowed = api.gate(source=[photos["obama3.jpg"]])
            assert allowed["decision"] == "allow", allowed

            _revoke(page, base_url, lang, first)
            _shot(page, "6-revoked", prefix)
            blocked = api.gate(source=[photos["obama3.jpg"]])
            assert (blocked["decision"], blocked["findings"][0]["outcome"]) == ("deny", "revoked")

            _activity(page, base_url, lang, allowed, blocked)
            _shot(page, "7-activity", prefix)
            _receipts(page, base_url, lang, first, prefix)

            # A grant still active when the account goes: the deletion revokes it.
            second = _grant(stack.app, page, base_url, lang, "face_reenactment", ["source"], None)
            data = _export(page, base_url, lang, prefix)
            jobs = {"allowed": allowed, "blocked": blocked}
            _check_export(data, email, lang, [first, second], jobs)

            _delete(page, base_url, lang, prefix)
            _check_signed_out(page, base_url, lang, email)
            _check_erased(stack, subject_id, email, [first, second])
        finally:
            chrome.close()


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
    verified_sign_up(person, "pages@example.org", "a long password!")
    paths = _pages(stack)
    assert {"/login", "/signup", "/", "/enroll", "/live"} <= set(paths)
    checked, problems = 0, []
    for client in (anonymous, person.client):
        for path in paths:
            problem = _check_page(client, path)
            problems += [problem] if problem else []
            checked += 1
    assert not problems, problems
    assert checked >= 2 * len(paths)


@pytest.fixture(scope="module", autouse=True)
def _fresh_artifacts():
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    yield
