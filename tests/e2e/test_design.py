"""Every page in Debian's Chromium as each kind of visitor sees it (someone not signed in, a
person with a grant, an operator, a provider's staff), at a phone's width (390 px) and a
laptop's (1280 px), in English and in Chinese: a screenshot of each goes to
test-artifacts/design/ (review material: look at them), no page is wider than the window, and
axe-core (tests/vendor/axe-core) finds no serious or critical accessibility violation.

One browser per language and one tab, reused: the visitors' sessions are made through the test
client and handed to the browser as cookies (same user agent, so Flask-Login's strong session
protection accepts them)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from sqlmodel import select

from consent_service import db
from consent_service.accounts.models import Subject, User
from consent_service.app import create_app
from consent_service.consent import service as consent
from consent_service.gate.models import GateJob
from consent_service.migrate import upgrade
from consent_service.operators.service import add_operator
from consent_service.portal.service import add_staff
from consent_service.providers.models import Provider
from consent_service.providers.service import create_provider, issue_key
from consent_service.runtime import services
from consent_service.settings import Settings
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Operation, Role
from tests import browser, factories
from tests.support import (
    Person,
    accept_invitation,
    invitation_path,
    serve,
    set_up_two_factor,
    sign_in,
    verified_sign_up,
)

pytestmark = pytest.mark.e2e

browser.require_chromium()

AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"
ARTIFACTS = browser.ARTIFACTS / "design"
PASSWORD = "a long enough password"
USER_AGENT = "consent-service design tour"  # the test client's and the browser's
WIDTHS = (390, 1280)
LANGUAGES = {"en": "en-US", "zh-CN": "zh-CN"}
# Pages not for looking at: the API, files, the machine-readable documents.
SKIP = ("/api/", "/static/", "/bootstrap/", "/.well-known/", "/favicon.ico")

# axe-core's run on the open page: its serious and critical violations, each with the first few
# elements it found.
AXE_RUN = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                   nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
}"""
OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator:
    home = tmp_path_factory.mktemp("design-home")
    settings = Settings(consent_service_home=home, broker_url="memory://")
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    with app.app_context(), db.unit_of_work() as s, factories.bound(s):
        acme, _ = (create_provider(s, name) for name in ("Acme", "Globex"))
        issue_key(s, acme)
        # Some days of jobs, so the portal's usage chart has bars.
        for days_ago, decision in [(0, "allow"), (0, "deny"), (1, "needs_consent"), (3, None)]:
            job = factories.GateJobFactory(
                provider=acme,
                status="decided" if decision else "queued",
                created_at=utcnow() - timedelta(days=days_ago),
            )
            if decision:
                reasons = {"allow": ["all_consented"], "deny": ["refused"]}.get(
                    decision, ["unenrolled"]
                )
                factories.DecisionFactory(job=job, decision=decision, reasons=reasons)
    yield app
    app.extensions["db_engine"].dispose()


def _person(app) -> Person:
    person = Person(app.test_client())
    person.client.environ_base["HTTP_USER_AGENT"] = USER_AGENT
    return person


def _with_a_grant(app, email: str) -> Person:
    person = verified_sign_up(_person(app), email, PASSWORD, display_name="Ada")
    with app.app_context(), db.unit_of_work() as s:
        user = s.exec(select(User).where(User.email == email)).one()
        subject = s.exec(select(Subject).where(Subject.user_id == user.id)).one()
        request = consent.GrantRequest(
            operations=[Operation.FACE_SWAP, Operation.FACE_REENACTMENT],
            roles=[Role.SOURCE, Role.TARGET],
            all_providers=True,
            provider_ids=[],
        )
        evidence = consent.Evidence(actor="test", identity_method="test")
        consent.grant(s, services().audit_key, subject.id, request, evidence)
    return person


def _grant_id(app, email: str) -> str:
    with app.app_context():
        s = db.session()
        user = s.exec(select(User).where(User.email == email)).one()
        subject = s.exec(select(Subject).where(Subject.user_id == user.id)).one()
        return consent.current_grants(s, [subject.id])[0].grant_id


def _a_job_id(app) -> str:
    with app.app_context():
        return db.session().exec(select(GateJob.id).where(GateJob.status == "decided")).first()


def _operator(app, email: str) -> Person:
    person = verified_sign_up(_person(app), email, PASSWORD)
    with app.app_context(), db.unit_of_work() as s:
        _, invitation = add_operator(s, services().audit_key, email)
    accept_invitation(person, invitation_path(app, invitation))
    set_up_two_factor(person)
    return person


def _staff(app, email: str) -> Person:
    with app.app_context(), db.unit_of_work() as s:
        acme = s.exec(select(Provider).where(Provider.name == "Acme")).one()
        invitation = add_staff(s, services().audit_key, acme, email, "admin")
    person = _person(app)
    accept_invitation(person, invitation_path(app, invitation.invitation), PASSWORD)
    sign_in(person, email, PASSWORD, "/portal/")
    set_up_two_factor(person)
    return person


def _pages(app, person: Person | None) -> list[str]:
    """The GET pages without path arguments that this visitor is shown (200, HTML)."""
    client = person.client if person else _person(app).client
    paths = sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods
        and not rule.arguments
        and not rule.rule.startswith(SKIP)
        and not rule.rule.endswith((".json", ".yaml", ".txt"))
    )
    shown = []
    for path in paths:
        response = client.get(path)
        if response.status_code == 200 and response.mimetype == "text/html":
            shown.append(path)
    return shown


def _set_language(app, lang: str) -> None:
    """A signed-in account's own language wins over the browser's: set every account's."""
    with app.app_context(), db.unit_of_work() as s:
        for user in s.exec(select(User)).all():
            user.language = lang


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"


def test_every_page_fits_a_phone_and_a_laptop_and_passes_axe(app, tmp_path):
    visitors: dict[str, Person | None] = {
        "visitor": None,
        "person": _with_a_grant(app, "ada@example.org"),
        "operator": _operator(app, "op@example.org"),
        "staff": _staff(app, "staff@example.org"),
    }
    pages = {who: _pages(app, person) for who, person in visitors.items()}
    # The consoles' own pages are seen by their staff; the rest by the visitor and the person.
    pages["operator"] = [p for p in pages["operator"] if p.startswith("/operator")]
    pages["staff"] = [p for p in pages["staff"] if p.startswith("/portal")]
    # Pages with an argument: a person's grant receipt, a job in the portal.
    pages["person"].append(f"/grants/{_grant_id(app, 'ada@example.org')}/v1/receipt")
    pages["staff"].append(f"/portal/jobs/{_a_job_id(app)}")
    assert {"/login", "/signup", "/complaints/new"} <= set(pages["visitor"])
    assert {"/", "/enroll", "/activity"} <= set(pages["person"])
    assert pages["operator"] and pages["staff"]

    problems: list[str] = []
    seen = 0
    with sync_playwright() as pw:
        for lang, locale in LANGUAGES.items():
            _set_language(app, lang)
            chrome = browser.launch(
                pw,
                tmp_path / f"profile-{lang}",
                locale=locale,
                user_agent=USER_AGENT,
                confirm=False,  # no dialog on a tour; _revoke_asks_first answers its own
            )
            chrome.add_init_script(path=str(AXE))  # not an inline <script>: the CSP holds
            try:
                page = chrome.pages[0] if chrome.pages else chrome.new_page()
                with serve(app) as base_url:
                    for who, person in visitors.items():
                        chrome.clear_cookies()
                        if person is not None:
                            cookie = person.client.get_cookie("session")
                            assert cookie is not None, who
                            chrome.add_cookies(
                                [{"name": "session", "value": cookie.value, "url": base_url}]
                            )
                        for path in pages[who]:
                            for width in WIDTHS:
                                page.set_viewport_size({"width": width, "height": 900})
                                page.goto(base_url + path)
                                where = f"{lang} {width}px {who} {path}"
                                assert page.get_attribute("html", "lang") == lang, where
                                browser.shot(page, "design", f"{lang}-{width}-{who}-{_slug(path)}")
                                wider = page.evaluate(OVERFLOW)
                                if wider > 0:
                                    problems.append(f"{where}: {wider} px wider than the window")
                                for v in page.evaluate(AXE_RUN):
                                    problems.append(
                                        f"{where}: axe {v['impact']} {v['id']} ({v['help']}) "
                                        f"at {v['nodes']}"
                                    )
                                seen += 1
                    if lang == "zh-CN":
                        _revoke_asks_first(page, base_url, visitors["person"])
            finally:
                chrome.close()
    assert seen >= 2 * 2 * 10
    assert not problems, "\n".join(problems)


def _revoke_asks_first(page, base_url: str, person: Person) -> None:
    """Revoke on the dashboard asks first, in the reader's language: Cancel keeps the grant
    active, OK revokes it."""
    page.context.clear_cookies()
    cookie = person.client.get_cookie("session")
    page.context.add_cookies([{"name": "session", "value": cookie.value, "url": base_url}])
    page.goto(base_url + "/")
    button = "[data-grant] form[action$='/revoke'] button[type=submit]"
    asked: list[str] = []

    def answer(ok: bool):
        def reply(dialog) -> None:
            asked.append(dialog.message)
            if ok:
                dialog.accept()
            else:
                dialog.dismiss()

        return reply

    page.once("dialog", answer(False))
    page.click(button)
    page.wait_for_timeout(500)  # a form sent anyway would have reloaded the page by now
    assert asked == ["撤回这项同意？从现在起，它曾允许的每一次编辑都将被拒绝。"]
    assert page.get_attribute("[data-grant] .grant-status", "data-status") == "active"
    page.once("dialog", answer(True))
    page.click(button)
    page.wait_for_selector("[data-grant] .grant-status[data-status='revoked']")
    assert len(asked) == 2


@pytest.fixture(scope="module", autouse=True)
def _fresh_artifacts():
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    yield
