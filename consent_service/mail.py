"""Mail: how it leaves (SMTP when configured, else `.eml` files in a local outbox folder, the
embedded default, which `consent-service mail outbox` lists) and how it is written (in its
reader's language: every text is rendered under that locale, force_locale, inside the app context
every request and Celery task runs in). Someone whose language is unknown (an address without an
account) gets one mail carrying Chinese, then English, each complete."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Protocol

from flask import has_app_context
from flask_babel import force_locale

from consent_service.i18n import LOCALES, locale_name
from consent_service.settings import Settings
from consent_service.timeutil import new_id, utcnow

log = logging.getLogger(__name__)
BOTH = ("zh-CN", "en")
_RULE = "\n" + "-" * 60 + "\n\n"


class Mailer(Protocol):
    """Sends one message; raises OSError (or smtplib.SMTPException) when it cannot."""

    def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    def __init__(self, settings: Settings):
        self.settings = settings

    def send(self, message: EmailMessage) -> None:
        s = self.settings
        with smtplib.SMTP(s.smtp_host or "", s.smtp_port, timeout=10) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password or "")
            smtp.send_message(message)


class OutboxMailer:
    """Writes each message as `<time to the microsecond>-<id>.eml` into a folder (development,
    the embedded default): nothing leaves the machine. The names sort in the order the mails
    were written (`read_outbox` relies on it), also within one second."""

    def __init__(self, folder: Path, production: bool = False):
        self.folder = folder
        if production:
            log.warning("No SMTP_HOST: mails are written to %s and never sent.", folder)

    def send(self, message: EmailMessage) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{utcnow().strftime('%Y%m%dT%H%M%S.%f')}-{new_id()}.eml"
        (self.folder / name).write_bytes(bytes(message))


def mailer_for(settings: Settings) -> Mailer:
    if settings.smtp_host:
        return SmtpMailer(settings)
    return OutboxMailer(settings.mail_outbox_dir, settings.is_production)


def read_outbox(folder: Path) -> list[dict]:
    """The outbox's mails, oldest first: file, date, to, subject, language (Content-Language),
    body (text part)."""
    mails = []
    for path in sorted(folder.glob("*.eml")) if folder.is_dir() else []:
        msg = BytesParser(policy=default_policy).parsebytes(path.read_bytes())
        body = msg.get_body(preferencelist=("plain",))
        mails.append(
            {
                "file": str(path),
                "date": msg["Date"],
                "to": msg["To"],
                "subject": msg["Subject"],
                "language": msg["Content-Language"],
                "body": body.get_content() if body is not None else "",
            }
        )
    return mails


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
