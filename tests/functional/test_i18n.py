"""Both languages through the real app: Accept-Language picks Chinese, the switch on every page
changes it and sticks to a signed-in account, a grant records the notice language shown; and the
zh-CN catalogue translates every message the templates and views use."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from sqlmodel import select

from consent_service import db
from consent_service.accounts.models import Subject, User
from consent_service.consent.models import ConsentGrant
from consent_service.consent.notice import NOTICE_VERSION, notice_digest
from consent_service.i18n import TRANSLATIONS, compile_catalogs
from tests.support import Person

ROOT = Path(__file__).resolve().parents[2]
PO = TRANSLATIONS / "zh_CN" / "LC_MESSAGES" / "messages.po"
PASSWORD = "a long enough password"
ZH = "zh-CN,zh;q=0.9,en;q=0.5"


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app()


def _browser(site, accept_language: str | None = None) -> Person:
    client = site.client()
    if accept_language:
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = accept_language
    return Person(client)


def _sign_up(site, email: str, accept_language: str | None = ZH) -> Person:
    person = _browser(site, accept_language)
    response = person.post("/signup", {"email": email, "password": PASSWORD})
    assert response.status_code == 302
    return person


def _switch(person: Person, lang: str, page: str = "/login"):
    return person.post("/language", {"lang": lang, "next": page}, form_page=page)


def test_a_chinese_browser_gets_chinese_pages(site):
    anonymous = _browser(site, ZH)
    signup = anonymous.get("/signup")
    assert '<html lang="zh-CN">' in signup
    assert "保护您的人脸" in signup and "创建账户" in signup and "电子邮箱" in signup
    assert "Accept-Language" in anonymous.client.get("/signup").headers["Vary"]
    assert "Protect your face" not in signup
    login = anonymous.get("/login")
    assert "还没有账户？" in login and "登录" in login
    wrong = anonymous.post("/login", {"email": "nobody@example.org", "password": PASSWORD})
    assert "电子邮箱或密码错误。" in wrong.get_data(as_text=True)
    # An error page, outside the API, in Chinese too.
    missing = anonymous.client.get("/no-such-page")
    assert missing.status_code == 404
    page = missing.get_data(as_text=True)
    assert "出错了（404）" in page and "该页面不存在" in page

    person = _sign_up(site, "wang@example.org")
    dashboard = person.get("/")
    assert "我的同意" in dashboard and "仅保护模式" in dashboard and "撤回" not in dashboard
    assert "Your grants" not in dashboard


def test_other_browsers_get_english_and_the_api_stays_english(site):
    for accept in (None, "fr-FR,fr;q=0.9", "en-GB,en;q=0.8"):
        page = _browser(site, accept).get("/signup")
        assert '<html lang="en">' in page and "Protect your face" in page
    api = _browser(site, ZH).client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.mimetype == "application/problem+json"
    assert api.get_json()["title"] == "Not Found"


def test_the_switch_changes_the_language_and_sticks_to_the_account(site):
    person = _sign_up(site, "li@example.org", accept_language="en-US,en;q=0.9")
    assert "Your grants" in person.get("/")
    response = _switch(person, "zh-CN", page="/activity")
    assert response.status_code == 302 and response.headers["Location"] == "/activity"
    assert "所有试图编辑您的记录" in person.get("/activity")
    with site.app.app_context():
        user = db.session().exec(select(User).where(User.email == "li@example.org")).one()
        assert user.language == "zh-CN"

    # Another browser, in English, without the cookie: the account's choice wins once signed in.
    other = _browser(site, "en-US")
    other.post("/login", {"email": "li@example.org", "password": PASSWORD})
    assert "您的授权" in other.get("/")
    # And back to English.
    assert _switch(other, "en", page="/").status_code == 302
    assert "Your grants" in other.get("/")


def test_the_switch_needs_csrf_refuses_unknown_languages_and_open_redirects(site):
    person = _browser(site)
    assert person.client.post("/language", data={"lang": "zh-CN"}).status_code == 400  # no token
    assert _switch(person, "tlh").status_code == 400
    for target in ("https://evil.example/", "//evil.example/x"):
        response = person.post("/language", {"lang": "zh-CN", "next": target}, form_page="/login")
        assert response.status_code == 302 and response.headers["Location"] == "/"
    # The anonymous choice is remembered in a cookie.
    assert '<html lang="zh-CN">' in person.get("/login")


def test_a_grant_under_the_chinese_notice_records_its_language_and_version(site):
    person = _sign_up(site, "zhao@example.org")
    page = person.get("/grants/new?modality=face")
    assert "关于编辑您人脸的单独同意" in page
    for heading in ("处理者与接收方", "处理目的", "存续期限", "如何撤回", "后果说明"):
        assert f"<dt>{heading}</dt>" in page
    assert "人脸属于敏感个人信息" in page and "单独同意" in page
    assert "换脸：把我的脸放进其他图像或视频" in page and 'value="zh-CN"' in page
    scope = {
        "operations": ["face_swap"],
        "roles": ["target"],
        "provider_scope": "all",
        "agree": "y",
        "notice_version": NOTICE_VERSION,
        "notice_language": "zh-CN",
    }
    assert (
        person.post("/grants/new?modality=face", scope, form_page="/grants/new").status_code == 302
    )
    assert "您已作出同意" in person.get("/")
    with site.app.app_context():
        s = db.session()
        user = s.exec(select(User).where(User.email == "zhao@example.org")).one()
        subject = s.exec(select(Subject).where(Subject.user_id == user.id)).one()
        [row] = s.exec(select(ConsentGrant).where(ConsentGrant.subject_id == subject.id)).all()
        assert (row.notice_version, row.language) == (NOTICE_VERSION, "zh-CN")
    assert notice_digest(NOTICE_VERSION, "zh-CN") != notice_digest(NOTICE_VERSION, "en")

    # A form shown in English but posted after switching to Chinese is shown again, not granted.
    _switch(person, "en", page="/")
    stale = person.post(
        "/grants/new?modality=face", {**scope, "notice_language": "zh-CN"}, form_page="/"
    )
    assert stale.status_code == 400 and "Please read the notice in this language" in (
        stale.get_data(as_text=True)
    )


def _catalog():
    with PO.open("rb") as f:
        return read_po(f, locale="zh_CN")


def test_every_message_in_the_catalogue_is_translated():
    untranslated = []
    for message in _catalog():
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(s.strip() for s in strings) or message.fuzzy:
            untranslated.append(message.id)
    assert untranslated == []


def test_every_message_in_the_code_is_in_the_catalogue(tmp_path):
    """Extract with pybabel, as the README says: a new `_()` string without a translation fails."""
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            str(ROOT / "babel.cfg"),
            "-k",
            "_l",
            "-k",
            "lazy_gettext",
            "-o",
            str(pot),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    with pot.open("rb") as f:
        wanted = {m.id for m in read_po(f) if m.id}
    have = {m.id for m in _catalog() if m.id}
    assert sorted(map(str, wanted - have)) == []


def test_the_catalogue_compiles_when_missing_or_stale(tmp_path):
    target = compile_catalogs(target=tmp_path)
    mo = tmp_path / "zh_Hans_CN" / "LC_MESSAGES" / "messages.mo"
    assert mo.stat().st_size > 0
    before = mo.stat().st_mtime_ns
    compile_catalogs(target=tmp_path)  # up to date: left alone
    assert mo.stat().st_mtime_ns == before and target == tmp_path
    # Placeholders survive translation (a broken one would raise at render time).
    for message in _catalog():
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        names = set(re.findall(r"%\((\w+)\)", ids[0]))
        for s in strings:
            assert set(re.findall(r"%\((\w+)\)", s)) == names, message.id
