"""Every page in Debian's Chromium as each kind of visitor sees it (someone not signed in, a
person with a grant, an operator, a provider's staff), at a phone's width (390 px) and a
laptop's (1280 px), in English and in Chinese: a screenshot of each goes to
test-artifacts/design/ (review material: look at them), no page is wider than the window, and
axe-core (tests/vendor/axe-core) finds no serious or critical accessibility violation.

Which pages: every GET route of the app that answers HTML. Those without path arguments are
found by asking each visitor's client for them (200 and text/html); those with arguments are
opened on rows made here, as the pages' own tests make them:
- the visitor: the API's documentation (/api/v1/docs: the one HTML page under /api/), a
  consent request's sign-in page (/requests/<id>), a complaint's status page
  (/complaints/<reference>?k=…), a password-reset link's form (/reset/<token>), the digest
  mail's unsubscribe page (/account/digest/off/<token>), a new staff member's invitation
  (/invitation/<token>);
- "signing-in": the second-factor step of a sign-in (/login/code), a visitor of its own whose
  half-done sign-in is made afresh for each language (it lasts five minutes);
- the person (who also manages a child): the answer page of a consent request
  (/requests/<id>), an enrollment's status (/enrollments/<id>), a grant's receipt, the live
  check a grant waits for (/live/step-up/<id>), deleting a managed child
  (/children/<id>/delete);
- the operator: an enrollment dispute, a live recording to review, a complaint
  (/operator/disputes|reviews|complaints/<id>);
- the staff: a job and a webhook delivery (/portal/jobs/<id>, /portal/webhook/deliveries/<id>).
Deliberately not toured: SKIP (the JSON API, static files, machine-readable documents) and
NOT_PAGES, endpoint by endpoint with the reason (redirects such as /verify/<token>, JSON and
text answers, the sealed recording and evidence behind the console). The test fails first if
a GET route outside SKIP is neither toured nor in NOT_PAGES, so a new page is not missed.
Answers to a POST (a form's errors, the label check's result, recovery codes) are states of
the pages above, checked by their functional tests.

One browser per language and one tab, reused: the visitors' sessions are made through the test
client and handed to the browser as cookies (same user agent, so Flask-Login's strong session
protection accepts them)."""

from __future__ import annotations

import io
import re
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import sync_playwright
from sqlmodel import select

from consent_service import db
from consent_service.accounts.models import Subject, User
from consent_service.accounts.service import digest_off_link, reset_link, subject_of
from consent_service.app import create_app
from consent_service.biometrics.disputes import open_dispute
from consent_service.biometrics.live_models import LiveSession
from consent_service.complaints.models import Complaint
from consent_service.consent import service as consent
from consent_service.gate.models import GateJob
from consent_service.guardians.service import add_child
from consent_service.migrate import upgrade
from consent_service.operators.service import add_operator
from consent_service.portal.service import add_staff
from consent_service.providers.models import Provider
from consent_service.providers.service import create_provider, issue_key
from consent_service.runtime import services
from consent_service.settings import Settings
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Operation, Role
from consent_service.webhooks import service as webhooks
from tests import browser, factories
from tests.support import (
    GRANT_FORM,
    Person,
    accept_invitation,
    csrf_token,
    invitation_path,
    serve,
    set_up_two_factor,
    sign_in,
    step_up_of,
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
# Not pages: the API (but for its HTML documentation, toured), files, machine-readable documents.
SKIP = ("/api/", "/static/", "/bootstrap/", "/.well-known/", "/favicon.ico")
API_DOCS = "/api/v1/docs"
# The GET routes outside SKIP that answer no page of their own, by endpoint.
NOT_PAGES = {
    "accounts.verify": "opens the mailed link, then redirects (or shows the error page)",
    "live_enrollment.retired_live_pages": "old addresses of the live page: a redirect",
    "live_enrollment.live_session_status": "the live page's JSON poll",
    "operators.review_recording": "the sealed recording itself (video)",
    "operators.complaint_evidence": "the sealed evidence itself (a file)",
    "probes.healthz": "the load balancer's probe (JSON)",
    "observability.metrics": "Prometheus' text format",
    "rights.export": "the account's export (JSON)",
    "rights.receipt": "a grant's receipt as JSON",
    "rights.receipt_jws": "a grant's receipt as a signed JWS",
}

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
# The bytes of a complaint's evidence and of a live recording: the pages name them, never show
# them (the operator opens them on routes of their own).
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
WEBM = b"\x1a\x45\xdf\xa3" + b"recording" * 10


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator:
    home = tmp_path_factory.mktemp("design-home")
    # The live check a grant waits for is opened by both languages' tours: it must outlast them.
    settings = Settings(consent_service_home=home, broker_url="memory://", step_up_ttl=3600)
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
        return consent.current_grants(s, [_subject_of(s, email).id])[0].grant_id


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


def _half_signed_in(app, email: str) -> Person:
    """Someone who gave the password of an account with two-factor sign-in on and is asked for
    the code (the step lasts five minutes: made afresh for each language)."""
    person = _person(app)
    response = sign_in(person, email, PASSWORD)
    assert response.headers["Location"] == "/login/code", response.headers.get("Location")
    return person


# --- rows for the pages with a path argument, made as their own tests make them -------------
def _acme(s) -> Provider:
    return s.exec(select(Provider).where(Provider.name == "Acme")).one()


def _subject_of(s, email: str) -> Subject:
    """The account's own subject (not a child it manages)."""
    return subject_of(s, s.exec(select(User).where(User.email == email)).one())


def _consent_request(app, email: str) -> str:
    """Acme asks the person, by e-mail, for a face swap (tests/functional/test_portal.py)."""
    with app.app_context(), db.unit_of_work() as s, factories.bound(s):
        return factories.ConsentRequestFactory(
            provider=_acme(s),
            email=email,
            purpose="A trailer for the school play, shown on our website for a year",
            message="We would like to use the scene from rehearsal.",
        ).id


def _complaint(app) -> tuple[str, str]:
    """Someone files a complaint naming one of Acme's jobs through the public form
    (tests/functional/test_complaint_pages.py). Returns (status page path, complaint id)."""
    client = _person(app).client
    form = client.get("/complaints/new").get_data(as_text=True)
    response = client.post(
        "/complaints/new",
        data={
            "csrf_token": csrf_token(form),
            "kind": "edited_without_consent",
            "description": "My face was put into an advert I never agreed to.",
            "location": "https://ads.example/campaigns/2026/winter-sale/video-123456789",
            "email": "ann@example.org",
            "language": "en",
            "named": _a_job_id(app),
            "evidence": (io.BytesIO(PNG), "shot.png"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.status_code
    status_path = response.headers["Location"]
    reference = status_path.split("/")[-1].split("?")[0]
    with app.app_context():
        complaint = db.session().exec(select(Complaint).where(Complaint.reference == reference))
        return status_path, complaint.one().id


def _dispute(app, holder_email: str) -> str:
    """A newcomer enrolled the face the person enrolled first: held in a dispute
    (tests/functional/test_operator_console.py)."""
    with app.app_context(), db.unit_of_work() as s, factories.bound(s):
        svc = services()
        holder = _subject_of(s, holder_email)
        factories.BiometricTemplateFactory(
            subject_id=holder.id,
            model="face_recognition/dlib-resnet-v1",
            sealed=(svc.envelope, np.ones(128)),
        )
        claimant = factories.SubjectFactory(
            user=factories.UserFactory(email="claimant@example.org")
        )
        enrollment = factories.EnrollmentFactory(subject_id=claimant.id, status="disputed")
        return open_dispute(
            s,
            svc.envelope,
            svc.audit_key,
            enrollment_id=enrollment.id,
            modality="face",
            model="face_recognition/dlib-resnet-v1",
            claimant_subject_id=claimant.id,
            holder_subject_id=holder.id,
            vectors=[np.zeros(128)],
        ).id


def _recording_to_review(app, person: Person) -> str:
    """The person's live enrollment recording, sent through the page and passed by the worker:
    the row as `live_session.record` leaves it (tests/functional/test_live_session_pages.py)."""
    html = person.get("/live")
    url = re.search(r'data-upload-url="([^"]+)"', html).group(1)
    token = re.search(r'data-csrf="([^"]+)"', html).group(1)
    sent = person.client.post(
        url,
        data={"recording": (io.BytesIO(WEBM), "session.webm")},
        headers={"X-CSRFToken": token},
        content_type="multipart/form-data",
    )
    assert sent.status_code == 202, sent.status_code
    session_id = url.rsplit("/", 1)[1]
    with app.app_context(), db.unit_of_work() as s:
        row = s.get(LiveSession, session_id)
        row.status, row.review_status = "passed", "awaiting"
        row.scores = {"code_match": 1.0, "pose_order": 0.92, "one_face": 1.0}
        row.heard = " ".join(row.code)
        row.finished_at = row.keep_until = utcnow()
        s.add(row)
    return session_id


def _enrollment(app, email: str) -> str:
    with app.app_context(), db.unit_of_work() as s, factories.bound(s):
        subject = _subject_of(s, email)
        return factories.EnrollmentFactory(
            subject_id=subject.id, status="completed", template_count=3
        ).id


def _child(app, email: str) -> int:
    """The person manages a child's consent as their parent (tests/functional/
    test_guardian_pages.py)."""
    with app.app_context(), db.unit_of_work() as s:
        guardian = s.exec(select(User).where(User.email == email)).one()
        child = add_child(
            s, services().audit_key, guardian, "Mei", date(2019, 5, 1), "parent", True
        )
        return child.id


def _delivery(app) -> str:
    """Acme's webhook, and a delivery its endpoint answered 503 (tests/functional/
    test_portal.py)."""
    with app.app_context(), db.unit_of_work() as s:
        acme = _acme(s)
        webhooks.configure(
            s, services().envelope, acme, "http://127.0.0.1:9/acme-hook", allow_private=True
        )
        job_id = s.exec(select(GateJob.id).where(GateJob.provider_id == acme.id)).first()
        delivery = webhooks.enqueue(
            s, acme.id, webhooks.JOB_DECIDED, {"job_id": job_id}, job_id=job_id
        )
        delivery.attempts, delivery.last_status_code = 1, 503
        delivery.last_error = "Service Unavailable"
        return delivery.id


def _reset_path(app, email: str) -> str:
    with app.app_context():
        user = db.session().exec(select(User).where(User.email == email)).one()
        return f"/reset/{reset_link(app.config['SECRET_KEY'], user)}"


def _digest_off_path(app, email: str) -> str:
    """The digest mail's unsubscribe link (its GET only asks)."""
    with app.app_context():
        user = db.session().exec(select(User).where(User.email == email)).one()
        return f"/account/digest/off/{digest_off_link(app.config['SECRET_KEY'], user)}"


def _newcomer_invitation(app) -> str:
    """Acme invites someone without an account: the link's page asks for a first password."""
    with app.app_context(), db.unit_of_work() as s:
        added = add_staff(s, services().audit_key, _acme(s), "newcomer@example.org", "viewer")
        return invitation_path(app, added.invitation)


def _pages_with_arguments(app, visitors: dict) -> dict[str, list[str]]:
    """Each visitor's pages that show one row (made here)."""
    ada = "ada@example.org"
    request_id = _consent_request(app, ada)
    status_path, complaint_id = _complaint(app)
    step_up = step_up_of(visitors["person"].post("/grants/new", GRANT_FORM))
    return {
        "visitor": [
            API_DOCS,
            f"/requests/{request_id}",
            status_path,
            _reset_path(app, ada),
            _digest_off_path(app, ada),
            _newcomer_invitation(app),
        ],
        "person": [
            f"/requests/{request_id}",
            f"/enrollments/{_enrollment(app, ada)}",
            f"/grants/{_grant_id(app, ada)}/v1/receipt",
            f"/live/step-up/{step_up}",
            f"/children/{_child(app, ada)}/delete",
        ],
        "operator": [
            f"/operator/disputes/{_dispute(app, ada)}",
            f"/operator/reviews/{_recording_to_review(app, visitors['person'])}",
            f"/operator/complaints/{complaint_id}",
        ],
        "staff": [
            f"/portal/jobs/{_a_job_id(app)}",
            f"/portal/webhook/deliveries/{_delivery(app)}",
        ],
        "signing-in": ["/login/code"],
    }


def _untoured(app, pages: dict[str, list[str]]) -> list[str]:
    """The GET routes that are neither toured nor named in NOT_PAGES (nor under SKIP)."""
    adapter = app.url_map.bind("localhost")
    toured = {
        adapter.match(path.split("?")[0], method="GET")[0]
        for paths in pages.values()
        for path in paths
    }
    routes = {
        rule.endpoint: rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods and not rule.rule.startswith(SKIP)
    }
    assert set(NOT_PAGES) <= set(routes), set(NOT_PAGES) - set(routes)  # no stale names
    return sorted(
        f"{endpoint} {rule}"
        for endpoint, rule in routes.items()
        if endpoint not in toured and endpoint not in NOT_PAGES
    )


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


def _slug(app, path: str) -> str:
    """A screenshot's name: the page's route (`/operator/complaints/<complaint_id>`), not its
    path, so one page has the same name on every run."""
    rule, _ = app.url_map.bind("localhost").match(path.split("?")[0], return_rule=True)
    return re.sub(r"[^a-z0-9]+", "-", rule.rule.lower()).strip("-") or "home"


def test_every_page_fits_a_phone_and_a_laptop_and_passes_axe(app, tmp_path):
    started = time.monotonic()
    visitors: dict[str, Person | Callable[[], Person] | None] = {
        "visitor": None,
        "person": _with_a_grant(app, "ada@example.org"),
        "operator": _operator(app, "op@example.org"),
        "staff": _staff(app, "staff@example.org"),
        "signing-in": lambda: _half_signed_in(app, "op@example.org"),
    }
    # The rows first, so the lists and queues of the pages without arguments show them too.
    with_arguments = _pages_with_arguments(app, visitors)
    pages = {
        who: _pages(app, person) if not callable(person) else [] for who, person in visitors.items()
    }
    # The consoles' own pages are seen by their staff; the rest by the visitor and the person.
    pages["operator"] = [p for p in pages["operator"] if p.startswith("/operator")]
    pages["staff"] = [p for p in pages["staff"] if p.startswith("/portal")]
    for who, paths in with_arguments.items():
        pages[who] += paths
    assert {"/login", "/signup", "/complaints/new"} <= set(pages["visitor"])
    assert {"/", "/enroll", "/activity", "/children"} <= set(pages["person"])
    assert pages["operator"] and pages["staff"]
    assert not _untoured(app, pages), "pages neither toured nor in NOT_PAGES"

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
                        if callable(person):
                            person = person()
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
                                name = f"{lang}-{width}-{who}-{_slug(app, path)}"
                                browser.shot(page, "design", name)
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
    assert seen == 2 * 2 * sum(len(paths) for paths in pages.values())
    print(f"{seen} screenshots of {seen // 4} pages in {time.monotonic() - started:.0f} s")
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
