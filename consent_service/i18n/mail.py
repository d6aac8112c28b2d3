"""Mail in its reader's language: every text is rendered under that locale (force_locale, inside
the app context every request and Celery task runs in). Someone whose language is unknown (an
address without an account) gets one mail carrying Chinese, then English, each complete."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from email.message import EmailMessage

from flask import has_app_context
from flask_babel import force_locale

from consent_service.i18n import LOCALES, locale_name

BOTH = ("zh-CN", "en")
_RULE = "\n" + "-" * 60 + "\n\n"


def mail_languages(language: str | None) -> tuple[str, ...]:
    """The languages (BCP 47 tags) of a mail to someone whose stored language is `language`
    (an account's `User.language`; None when there is no account or it has none)."""
    name = locale_name(language)
    return (LOCALES[name],) if name else BOTH


def compose(
    sender: str,
    to: str,
    languages: Sequence[str],
    render: Callable[[], tuple[str, str]],
) -> EmailMessage:
    """One mail in `languages`, in that order: `render()` returns (subject, body) and is called
    once per language under that locale. Several languages share one subject ("中文 / English")
    and follow each other in the body; `Content-Language` names them all."""
    if not has_app_context():  # without one, Flask-Babel silently renders English
        raise RuntimeError("Mail is rendered inside an app context.")
    parts = []
    for tag in languages:
        with force_locale(locale_name(tag)):
            subject, body = render()
        parts.append((str(subject), str(body).rstrip("\n") + "\n"))
    message = EmailMessage()
    message["From"], message["To"] = sender, to
    message["Subject"] = " / ".join(subject for subject, _ in parts)
    message.set_content(_RULE.join(body for _, body in parts))
    # After set_content, which drops every Content-* header set before it.
    message["Content-Language"] = ", ".join(languages)
    return message
