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
from consent_service.biometrics.models import Enrollment
from consent_service.biometrics.service import keep_error
from consent_service.consent.models import ConsentGrant
from consent_service.consent.notice import NOTICE_VERSION, notice_digest
from consent_service.errors import EnrollmentRejected, MediaRejected
from consent_service.i18n import TRANSLATIONS, compile_catalogs
from consent_service.mail import read_outbox
from tests.support import Person, pass_step_up, verified_sign_up

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
    return verified_sign_up(_browser(site, accept_language), email, PASSWORD)


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
    # No grant yet, so no Revoke button ("撤回" itself also names the withdrawal choice).
    assert (
        "我的同意" in dashboard and "仅保护模式" in dashboard and "撤回</button>" not in dashboard
    )
    assert "在我撤回最后一项授权时销毁我的模板" in dashboard
    assert "Your grants" not in dashboard


def test_other_browsers_get_english_and_the_api_stays_english(site):
    for accept in (None, "fr-FR,fr;q=0.9", "en-GB,en;q=0.8"):
        page = _browser(site, accept).get("/signup")
        assert '<html lang="en">' in page and "Protect your face" in page
    api = _browser(site, ZH).client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.mimetype == "application/problem+json"
    assert api.get_json()["title"] == "Not found" and api.get_json()["code"] == "NotFound"


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
    pass_step_up(site.app, person.post("/grants/new?modality=face", scope, form_page="/grants/new"))
    assert "换脸" in person.get("/")
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


def _subject_id(site, email: str) -> int:
    with site.app.app_context():
        s = db.session()
        user = s.exec(select(User).where(User.email == email)).one()
        return s.exec(select(Subject).where(Subject.user_id == user.id)).one().id


def test_a_refused_action_is_told_in_the_readers_language(site):
    """Domain errors raised in English by the services reach a Chinese page in Chinese."""
    person = _sign_up(site, "sun@example.org")
    # The service refuses an upload without photos: a flashed message.
    page = person.post("/enroll", {}, form_page="/enroll").get_data(as_text=True)
    assert "请上传 1 至 5 张您的人脸照片。" in page
    assert "Upload between" not in page
    # A child aged 14 is refused by the guardians service, its number kept.
    child = {
        "display_name": "Lei",
        "date_of_birth": "2000-01-01",
        "relationship": "parent",
        "declaration": "y",
    }
    page = person.post("/children", child, form_page="/children").get_data(as_text=True)
    assert "只有未满 14 周岁的儿童由监护人管理" in page
    # An error page raised from the domain (a grant that is not there).
    missing = person.post("/grants/no-such-grant/revoke", {}, form_page="/")
    assert missing.status_code == 404 and "没有这项授权。" in missing.get_data(as_text=True)
    # The API says the same in English, whatever the browser's language.
    api = _browser(site, ZH).client.get("/api/v1/jobs/no-such-job", headers=site.auth())
    assert api.status_code == 404 and api.get_json()["detail"] == "No such job."


def test_a_failed_enrollment_is_shown_in_the_readers_language(site):
    """The worker keeps why an enrollment failed in English and as message id + parameters;
    the pages say it in the reader's language, rows from before as they were written."""
    person = _sign_up(site, "zhou@example.org")
    subject_id = _subject_id(site, "zhou@example.org")
    cause = MediaRejected(
        "The file is not an image we can read (JPEG, PNG, WebP, BMP, GIF or TIFF)."
    )
    with site.app.app_context(), db.unit_of_work() as s:
        failed = Enrollment(subject_id=subject_id, modality="face", status="failed")
        keep_error(
            failed, EnrollmentRejected("Photo %(number)d: %(reason)s", number=2, reason=cause)
        )
        old = Enrollment(
            subject_id=subject_id, modality="face", status="failed", error="Written before."
        )
        s.add_all([failed, old])
        s.flush()
        failed_id, old_id, english = failed.id, old.id, failed.error
    assert english == (
        "Photo 2: The file is not an image we can read (JPEG, PNG, WebP, BMP, GIF or TIFF)."
    )
    chinese = "第 2 张照片：该文件不是我们能读取的图片（JPEG、PNG、WebP、BMP、GIF 或 TIFF）。"
    page = person.get(f"/enrollments/{failed_id}")
    assert chinese in page and "not an image" not in page
    assert chinese in person.get("/enroll")  # the recent enrollments table
    assert "Written before." in person.get(f"/enrollments/{old_id}")
    # The same row, read in English.
    _switch(person, "en", page="/")
    assert english in person.get(f"/enrollments/{failed_id}")


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


def _readme_keywords() -> list[str]:
    """The `-k` keywords of the README's extraction command, so the test extracts as it says."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = readme[readme.index("pybabel extract") :].split("\npybabel update", 1)[0]
    return re.findall(r"-k (\S+)", command)


def test_every_message_in_the_code_is_in_the_catalogue(tmp_path):
    """Extract with pybabel, as the README says: a new `_()` string, or a new domain error's
    message, without a translation fails."""
    keywords = _readme_keywords()
    assert {"_l", "N_", "InvalidRequest", "EnrollmentRejected", "ChallengeRefused:2"} <= set(
        keywords
    )
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            str(ROOT / "babel.cfg"),
            *(arg for k in keywords for arg in ("-k", k)),
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
    # Errors people see are extracted: raised with a literal message, marked with N_, and the
    # second argument of ChallengeRefused.
    for message in (
        "Choose a password of at least %(num)d characters.",
        "Turn your head to your left, then back",
        "This session expired. %(again)s",
    ):
        assert message in wanted, message
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


def test_a_consent_request_mail_is_in_the_recipients_language(site):
    """The account's language (the one signed up in) picks the mail's; an address without an
    account gets one mail in Chinese and English, each complete."""
    _sign_up(site, "chen@example.org")  # a Chinese browser
    _sign_up(site, "emma@example.org", accept_language="en-GB,en;q=0.9")
    api = site.client()
    for n, email in enumerate(("chen@example.org", "emma@example.org", "nobody@example.org")):
        ask = {
            "email": email,
            "operation": "voice_cloning",
            "roles": ["source"],
            "purpose": "An audiobook",
            "valid_until": "2031-01-01T00:00:00Z",
        }
        headers = {**site.auth(), "Idempotency-Key": f"mail-language-{n}"}
        response = api.post("/api/v1/consent-requests", json=ask, headers=headers)
        assert response.status_code == 202, response.get_json()
    mails = {  # the consent requests' mails, not the sign-ups' verification links
        m["to"]: m
        for m in read_outbox(site.settings.mail_outbox_dir)
        if "/verify/" not in m["body"]
    }
    zh, en, both = (
        mails[a] for a in ("chen@example.org", "emma@example.org", "nobody@example.org")
    )

    assert zh["language"] == "zh-CN"
    assert zh["subject"] == "Acme 请求您同意编辑您的声音"
    for text in (
        "Acme 请求您同意对您的声音进行以下编辑：",
        "声音克隆：用我的声音合成语音 (voice_cloning)",
        "您的角色：\n  来源：我的人脸或声音被提取并用于别处",
        "目的：An audiobook",
        "截止：2031-01-01",
        "请登录或注册，然后选择同意或拒绝：",
        "本请求于 ",
        "如果您不作任何操作，则不会授予任何同意。",
    ):
        assert text in zh["body"], text
    assert "asks for your consent" not in zh["body"]
    assert re.search(r"http://\S+/requests/\w+\?k=\S+", zh["body"])

    assert en["language"] == "en"
    assert en["subject"] == "Acme asks for your consent to edit your voice"
    for text in (
        "Acme asks for your consent to this edit of your voice:",
        "Voice cloning: synthesise speech in my voice (voice_cloning)",
        "Your role:\n  Source: my face or voice is taken and put elsewhere",
        "Why: An audiobook",
        "Until: 2031-01-01",
        "This request expires on ",
        "If you do nothing, nothing is granted.",
    ):
        assert text in en["body"], text
    assert "请求" not in en["body"]

    assert both["language"] == "zh-CN, en"
    assert both["subject"] == (
        "Acme 请求您同意编辑您的声音 / Acme asks for your consent to edit your voice"
    )
    body = both["body"]
    assert body.index("如果您不作任何操作") < body.index("Acme asks for your consent")
    assert body.count("/requests/") == 2 and "If you do nothing, nothing is granted." in body
