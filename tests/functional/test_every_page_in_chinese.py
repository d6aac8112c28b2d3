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
from consent_service.operators.service import add_operator
from consent_service.portal.service import add_staff
from consent_service.providers.models import Provider
from consent_service.runtime import services
from tests.functional.test_i18n import PO
from tests.support import (
    Person,
    accept_invitation,
    invitation_path,
    set_up_two_factor,
    sign_in,
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
    """The text a reader sees: text nodes outside script and style, and shown attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "template"):
            self._hidden += 1
        values = dict(attrs)
        self.parts += [values[a] for a in SHOWN_ATTRIBUTES if values.get(a)]
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.parts.append(values["value"])

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden and data.strip():
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
    html = '<p>你好</p><script>var a = "Sign in";</script><input placeholder="Sign in">'
    assert shown_text(html) == ["你好", "Sign in"]


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app()


def _visitor(site) -> Person:
    person = Person(site.client())
    person.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = ZH
    return person


def _signed_up(site, email: str) -> Person:
    return verified_sign_up(_visitor(site), email, PASSWORD)


def _operator(site) -> Person:
    person = _signed_up(site, "op@example.org")
    with site.app.app_context(), db.unit_of_work() as s:
        _, invitation = add_operator(s, services().audit_key, "op@example.org")
    accept_invitation(person, invitation_path(site.app, invitation))
    set_up_two_factor(person)
    return person


def _staff(site) -> Person:
    with site.app.app_context(), db.unit_of_work() as s:
        acme = s.exec(select(Provider).where(Provider.name == "Acme")).one()
        invitation = add_staff(s, services().audit_key, acme, "staff@example.org", "admin")
    person = _visitor(site)
    accept_invitation(person, invitation_path(site.app, invitation.invitation), PASSWORD)
    sign_in(person, "staff@example.org", PASSWORD, "/portal/")
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
        "operator": _operator(site),
        "staff": _staff(site),
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
