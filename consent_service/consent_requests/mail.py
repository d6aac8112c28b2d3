"""Sending mail: SMTP when configured, else `.eml` files in a local outbox folder (the embedded
default), which `consent-service mail outbox` lists."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Protocol

from consent_service.settings import Settings
from consent_service.timeutil import new_id, utcnow

log = logging.getLogger(__name__)


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
    """Writes each message as `<time>-<id>.eml` into a folder (development, the embedded
    default): nothing leaves the machine."""

    def __init__(self, folder: Path, production: bool = False):
        self.folder = folder
        if production:
            log.warning("No SMTP_HOST: mails are written to %s and never sent.", folder)

    def send(self, message: EmailMessage) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{utcnow().strftime('%Y%m%dT%H%M%S')}-{new_id()}.eml"
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
