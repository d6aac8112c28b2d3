"""Domain errors speak two ways: `str(error)` is the English sentence (API, CLI, logs) and
`error.localized()` the reader's language, parameters that are messages translated with it; kept
on a row as message id + parameters, an error is shown later in any language. Each kind has a
title in words and a code, both in the README's problem table."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

from flask_babel import force_locale, gettext
from werkzeug.exceptions import MethodNotAllowed, default_exceptions

import consent_service
from consent_service.api_contract.ratelimit import RateLimited
from consent_service.biometrics.retired_messages import STORED
from consent_service.errors import (
    N_,
    DomainError,
    EnrollmentRejected,
    InvalidRequest,
    MediaRejected,
    Msgid,
    ScopeMissing,
    UnsupportedMediaType,
    stored_message,
)
from consent_service.errors_http import UnreadableForm, http_title

ATTEMPTS = "%(media)s could not be processed after %(num)d attempts."


def test_str_is_the_english_sentence_even_in_a_chinese_request(babel_app):
    error = EnrollmentRejected(ATTEMPTS, media=N_("The photos"), num=3)
    with babel_app.test_request_context(), force_locale("zh_CN"):
        assert str(error) == "The photos could not be processed after 3 attempts."
    assert error.status == 422 and isinstance(error, DomainError)


def test_localized_translates_the_message_and_its_message_parameters(babel_app):
    error = EnrollmentRejected(ATTEMPTS, media=N_("The photos"), num=3)
    with babel_app.test_request_context(), force_locale("zh_CN"):
        assert error.localized() == "照片在尝试 3 次后仍无法处理。"
    with babel_app.test_request_context(), force_locale("en"):
        assert error.localized() == str(error)


def test_numbers_and_free_text_are_kept_as_given(babel_app):
    error = InvalidRequest("Choose a password of at least %(num)d characters.", num=10)
    mail = InvalidRequest(
        "This request was sent to %(email)s; sign in with that address to answer it.",
        email="left",  # a person's text is never looked up as a message, even if it is one
    )
    with babel_app.test_request_context(), force_locale("zh_CN"):
        assert error.localized() == "请设置至少 10 个字符的密码。"
        assert mail.localized() == "此请求已发送至 left；请使用该地址登录后答复。"
    assert str(error) == "Choose a password of at least 10 characters."


def test_a_nested_error_is_translated_inside_its_wrapper(babel_app):
    cause = MediaRejected(
        "The image is only %(width)d×%(height)d pixels: too small for a face.", width=8, height=9
    )
    error = EnrollmentRejected("Photo %(number)d: %(reason)s", number=2, reason=cause)
    assert str(error) == "Photo 2: The image is only 8×9 pixels: too small for a face."
    with babel_app.test_request_context(), force_locale("zh_CN"):
        assert error.localized() == "第 2 张照片：图片只有 8×9 像素：太小，无法识别人脸。"


def test_an_error_kept_as_json_is_shown_in_the_readers_language(babel_app):
    error = EnrollmentRejected(
        "Photo %(number)d: %(reason)s",
        number=2,
        reason=MediaRejected("The file is empty."),
    )
    kept = error.to_json()
    assert kept == {
        "message": "Photo %(number)d: %(reason)s",
        "params": {"number": 2, "reason": {"message": "The file is empty.", "params": {}}},
    }
    text = str(error)
    with babel_app.test_request_context(), force_locale("zh_CN"):
        assert stored_message(text, kept) == "第 2 张照片：文件是空的。"
        # Rows from before have no parameters; text rewritten by code that keeps none wins too.
        assert stored_message(text, None) == text
        assert stored_message("The account was deleted.", kept) == "The account was deleted."
        # Parameters that do not fit the message: the English text, not a crash.
        assert stored_message(text, {"message": "Photo %(number)d: %(reason)s"}) == text


def test_message_parameters_survive_the_round_trip(babel_app):
    error = EnrollmentRejected(
        "%(media)s could not be processed after %(num)d attempts.", media=N_("The photos"), num=3
    )
    again = DomainError.from_json(error.to_json())
    assert isinstance(again.params["media"], Msgid)
    assert str(again) == "The photos could not be processed after 3 attempts."
    with babel_app.test_request_context(), force_locale("zh_CN"):
        assert again.localized() == "照片在尝试 3 次后仍无法处理。"


def test_the_retired_camera_pages_stored_failures_still_read_in_the_readers_language(babel_app):
    turn = (
        "Your head did not turn to the %(step)s as asked, so this could not be checked as a live "
        "enrollment. Try again: turn your whole head (not only your eyes) when asked, and keep "
        "your face in the picture."
    )
    kept = {"message": turn, "params": {"step": {"msgid": "left"}}}  # as such a row holds it
    with babel_app.test_request_context(), force_locale("zh_CN"):
        shown = stored_message(turn % {"step": "left"}, kept)
        assert shown and shown.startswith("您的头部没有按要求向左转动")
        assert all(gettext(m) != m for m in STORED)


# A problem's title: plain words in sentence case ("Invalid request", "API key expired",
# "E-mail address not verified"), never a class name ("InvalidRequest", "ApiKeyExpired").
WORDS = re.compile(r"^(?:[A-Z][a-z'-]*|[A-Z]{2,})(?: (?:[a-z][a-z'-]*|[A-Z]{2,}))*$")


def _every_kind() -> list[type[DomainError]]:
    """Every DomainError subclass in the package (each module imported, so none is missed)."""
    for module in pkgutil.walk_packages(consent_service.__path__, "consent_service."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)
    found, todo = [], [DomainError]
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo.extend(kind.__subclasses__())
    return found


def test_every_problem_kind_has_a_title_in_words_and_is_in_the_readmes_table():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    kinds = _every_kind()
    assert {InvalidRequest, ScopeMissing, RateLimited, UnsupportedMediaType} <= set(kinds)
    codes = [kind.code for kind in kinds]
    assert len(codes) == len(set(codes)), "two kinds share a code"
    for kind in kinds:
        assert WORDS.match(kind.title), (kind, kind.title)
        row = re.compile(rf"^\| `{kind.code}` \| [^|]+ \| {re.escape(kind.title)} \|", re.M)
        assert row.search(readme), f"{kind.code} ({kind.title}) is not in README's problem table"


def test_a_class_named_title_would_fail():
    assert not WORDS.match("InvalidRequest") and not WORDS.match("ApiKeyExpired")
    assert not WORDS.match("Not Found") and WORDS.match("Not found")


def test_http_errors_are_titled_in_the_same_words():
    for exc in [*default_exceptions.values(), UnreadableForm]:
        title = http_title(exc())
        assert WORDS.match(title), (exc, title)
    assert http_title(MethodNotAllowed()) == "Method not allowed"
    assert http_title(UnreadableForm()) == "Unreadable form"
