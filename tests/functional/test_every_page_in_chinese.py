"""Every page, read in Chinese by each kind of visitor (someone not signed in, a person, an
operator, a provider's staff), shows no English that the zh-CN catalogue translates, no full
stop of English punctuation after Chinese text, and no run of English words the catalogue does
not know (a string passed through a variable that extraction missed, a setting with no Chinese
value). Checked on the page's visible text and on the attributes a reader meets (placeholders,
titles, labels of buttons)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from babel.messages.pofile import read_po
from sqlmodel import select

from consent_service import db
from consent_service.accounts.models import Subject, User
from consent_service.complaints.models import Complaint
from consent_service.notices.service import attempt_blocked
from consent_service.operators.service import add_operator
from consent_service.portal.service import add_staff
from consent_service.providers.models import Provider
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Outcome
from tests import factories
from tests.functional.test_i18n import PO
from tests.support import (
    GRANT_FORM,
    Person,
    accept_invitation,
    csrf_token,
    invitation_path,
    pass_step_up,
    set_up_two_factor,
    sign_in,
    sign_receipts,
    verified_sign_up,
)

ZH = "zh-CN,zh;q=0.9"
PASSWORD = "a long enough password"
SKIP = ("/api/", "/static/", "/.well-known/", "/language", "/logout")
CJK = "\u3400-\u9fff\uf900-\ufaff"
ENGLISH_STOP = re.compile(rf"[{CJK}][.,;:?!](?:\s|$)")
ENGLISH_RUN = re.compile(r"(?<![A-Za-z])[A-Za-z][a-z']+(?: [A-Za-z][a-z']+){2,}(?![A-Za-z])")
SHOWN_ATTRIBUTES = ("placeholder", "title", "aria-label", "alt")


class _Text(HTMLParser):
    """The text a reader sees: text nodes outside script and style, and shown attributes. An
    element marked `lang="en"` is a deliberate English quotation (a signed record's words, a
    command to type) and is left out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0
        self._english: tuple[str, int] | None = None  # (tag, depth) of an English quotation

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if self._english:
            if tag == self._english[0]:
                self._english = (tag, self._english[1] + 1)
            return
        if (values.get("lang") or "").startswith("en") and tag != "html":
            self._english = (tag, 1)
            return
        if tag in ("script", "style", "template"):
            self._hidden += 1
        self.parts += [values[a] for a in SHOWN_ATTRIBUTES if values.get(a)]
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.parts.append(values["value"])

    def handle_endtag(self, tag):
        if self._english:
            if tag == self._english[0]:
                depth = self._english[1] - 1
                self._english = (tag, depth) if depth else None
            return
        if tag in ("script", "style", "template") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden and not self._english and data.strip():
            self.parts.append(data)


def shown_text(html: str) -> list[str]:
    parser = _Text()
    parser.feed(html)
    return [" ".join(part.split()) for part in parser.parts]


def _catalogue() -> list[re.Pattern[str]]:
    """Each translated English message as a pattern of a whole text (placeholders: anything)."""
    with PO.open("rb") as f:
        catalog = read_po(f)
    patterns = []
    for message in catalog:
        if not message.id or not message.string or message.string == message.id:
            continue  # untranslated (another test fails then) or the same word ("Webhook")
        for english in message.id if isinstance(message.id, tuple) else (message.id,):
            words = " ".join(english.split())
            parts = re.split(r"%\(\w+\)[sd]|%[sd]|\{\w*\}", words)
            if not re.search("[A-Za-z]{2}", "".join(parts)):
                continue  # placeholders and punctuation ("%(a)s: %(b)s") would match anything
            patterns.append(re.compile(".+".join(re.escape(p) for p in parts)))
    return patterns


def untranslated(texts: list[str], catalogue: list[re.Pattern[str]]) -> list[str]:
    """What on a Chinese page is still English: a catalogue message, English punctuation after
    Chinese, or a run of three or more English words."""
    found = []
    for text in texts:
        if any(p.fullmatch(text) for p in catalogue):
            found.append(f"catalogue message: {text!r}")
            continue
        if ENGLISH_STOP.search(text):
            found.append(f"English punctuation: {text!r}")
        found += [f"English words {run!r} in {text!r}" for run in ENGLISH_RUN.findall(text)]
    return found


def test_the_check_finds_what_it_is_for():
    catalogue = [re.compile("Sign in"), re.compile("Hello .+, welcome")]
    assert untranslated(["Sign in"], catalogue) == ["catalogue message: 'Sign in'"]
    assert untranslated(["Hello Wang, welcome"], catalogue)
    assert untranslated(["请登录。", "wang@example.org", "Consent Service"], catalogue) == []
    assert untranslated(["负责运营."], catalogue) == ["English punctuation: '负责运营.'"]
    assert untranslated(["Consent Service operator负责运营"], catalogue) == [
        "English words 'Consent Service operator' in 'Consent Service operator负责运营'"
    ]
    html = (
        '<p>你好</p><script>var a = "Sign in";</script><input placeholder="Sign in">'
        '<p>签名记录：<span lang="en">signed <span>in</span> English</span>。</p>'
    )
    assert shown_text(html) == ["你好", "Sign in", "签名记录：", "。"]


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app()


def _visitor(site) -> Person:
    person = Person(site.client())
    person.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = ZH
    return person


def _signed_up(site, email: str) -> Person:
    return verified_sign_up(_visitor(site), email, PASSWORD)


def _operator(site, email: str) -> Person:
    person = _signed_up(site, email)
    with site.app.app_context(), db.unit_of_work() as s:
        _, invitation = add_operator(s, services().audit_key, email)
    accept_invitation(person, invitation_path(site.app, invitation))
    set_up_two_factor(person)
    return person


def _staff(site, email: str) -> Person:
    with site.app.app_context(), db.unit_of_work() as s:
        acme = s.exec(select(Provider).where(Provider.name == "Acme")).one()
        invitation = add_staff(s, services().audit_key, acme, email, "admin")
    person = _visitor(site)
    accept_invitation(person, invitation_path(site.app, invitation.invitation), PASSWORD)
    sign_in(person, email, PASSWORD, "/portal/")
    set_up_two_factor(person)
    return person


def _pages(app) -> list[str]:
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods
        and not rule.arguments
        and not rule.rule.startswith(SKIP)
        and not rule.rule.endswith((".json", ".yaml", ".ico", ".txt"))
    )


def test_no_page_shows_english_to_a_chinese_reader(site):
    catalogue = _catalogue()
    visitors = {
        "visitor": _visitor(site),
        "person": _signed_up(site, "wang@example.org"),
        "operator": _operator(site, "op@example.org"),
        "staff": _staff(site, "staff@example.org"),
    }
    pages = _pages(site.app)
    assert {"/", "/login", "/signup", "/operator/", "/portal/", "/complaints/new"} <= set(pages)
    problems, read = [], 0
    for who, person in visitors.items():
        for path in pages:
            response = person.client.get(path)
            if response.status_code != 200 or response.mimetype != "text/html":
                continue
            html = response.get_data(as_text=True)
            assert '<html lang="zh-CN">' in html, (who, path)
            read += 1
            problems += [f"{who} {path}: {p}" for p in untranslated(shown_text(html), catalogue)]
    assert read >= 2 * len(visitors) + len(pages)  # each visitor read pages; not only redirects
    assert not problems, "\n".join(problems)


def _read(person: Person, path: str, catalogue) -> list[str]:
    html = person.get(path)
    assert '<html lang="zh-CN">' in html, path
    return [f"{path}: {p}" for p in untranslated(shown_text(html), catalogue)]


def test_pages_about_one_thing_show_no_english_either(site):
    """A grant's receipt, a complaint's status and its operator page, a job in the portal."""
    catalogue = _catalogue()
    person = _signed_up(site, "li@example.org")
    pass_step_up(
        site.app,
        person.post("/grants/new", {**GRANT_FORM, "purpose": "生日视频"}),
    )
    [grant_id] = re.findall(r"/grants/([0-9a-f]{32})/revoke", person.get("/"))
    assert sign_receipts(site.app) >= 1
    page = person.get("/complaints/new")
    filed = person.client.post(
        "/complaints/new",
        data={
            "csrf_token": csrf_token(page),
            "kind": "edited_without_consent",
            "description": "我的脸被用在了一则我从未同意的广告里。",
            "location": "https://ads.example/123",
            "email": "li@example.org",
            "language": "zh-CN",
        },
        content_type="multipart/form-data",
    )
    assert filed.status_code == 302, filed.get_data(as_text=True)
    with site.app.app_context():
        acme_id = db.session().exec(select(Provider.id).where(Provider.name == "Acme")).one()
    refused = person.post("/refusals/new?modality=face", {"provider": acme_id})
    assert refused.status_code == 302, refused.get_data(as_text=True)
    with site.app.app_context(), db.unit_of_work() as s, factories.bound(s):
        complaint_id = s.exec(select(Complaint.id)).first()
        acme = s.get(Provider, acme_id)
        job_id = factories.GateJobFactory(provider=acme, decided=True).id
        # A job the person's grants covered but for its purpose: their ledger row and notice.
        li = s.exec(select(Subject.id).join(User).where(User.email == "li@example.org")).one()
        purposed = factories.GateJobFactory(provider=acme, decided=True, purpose="advertising")
        factories.FindingFactory(
            job=purposed, subject_id=li, outcome="not_covered", uncovered_purpose="advertising"
        )
        attempt_blocked(
            s,
            li,
            Outcome.NOT_COVERED,
            "Acme",
            "face_swap",
            utcnow(),
            purposed.id,
            1,
            purpose={"en": "Advertising and marketing", "zh": "广告与营销"},
        )
    operator, staff = _operator(site, "op2@example.org"), _staff(site, "staff2@example.org")
    problems = [
        *_read(person, "/", catalogue),  # the grant's and the refusal's cards, the notice
        *_read(person, "/activity", catalogue),  # "not covered: purpose ..."
        *_read(person, "/refusals/new?modality=face", catalogue),
        *_read(person, f"/grants/{grant_id}/v1/receipt", catalogue),
        *_read(person, filed.headers["Location"], catalogue),
        *_read(operator, f"/operator/complaints/{complaint_id}", catalogue),
        *_read(staff, f"/portal/jobs/{job_id}", catalogue),
    ]
    assert not problems, "\n".join(problems)
    dashboard, ledger = person.get("/"), person.get("/activity")
    assert "广告与营销" in dashboard and "广告与营销" in ledger  # the purpose, in Chinese
