"""The mails of the account itself: verify your address, someone signed up with your address,
reset your password, an invitation to a role. Each is composed now (in the reader's language)
and sent once the unit of work commits (`db.after_commit`); a failed send is logged."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable

from flask_babel import gettext as _
from sqlmodel import Session

from consent_service import db
from consent_service.accounts.models import User
from consent_service.mail import compose, mail_languages
from consent_service.runtime import services

log = logging.getLogger(__name__)


def link(path: str) -> str:
    """An absolute link into the service (mails are read outside any request)."""
    return services().settings.public_url.rstrip("/") + path


def _send_after_commit(session: Session, user: User, render: Callable[[], tuple[str, str]]):
    svc = services()
    message = compose(svc.settings.mail_from, user.email, mail_languages(user.language), render)

    def send() -> None:
        try:
            svc.mailer.send(message)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("account mail to user %s not sent: %s", user.id, exc)

    db.after_commit(session, send)


def _hours(seconds: int) -> int:
    return max(1, seconds // 3600)


def verification(session: Session, user: User, token: str) -> None:
    url = link(f"/verify/{token}")
    hours = _hours(services().settings.email_link_ttl)

    def render() -> tuple[str, str]:
        body = "\n".join(
            [
                _("Open this link, signed in to your account, to verify your e-mail address:"),
                url,
                "",
                _("The link works for %(num)d hours.", num=hours),
                _("If you did not sign up, ignore this mail: nothing happens without the link."),
            ]
        )
        return _("Verify your e-mail address"), body

    _send_after_commit(session, user, render)


def already_registered(session: Session, user: User, token: str) -> None:
    """Someone signed up with an address that has an account: its owner hears, not the visitor."""
    url = link(f"/reset/{token}")
    hours = _hours(services().settings.password_reset_ttl)

    def render() -> tuple[str, str]:
        body = "\n".join(
            [
                _("Someone tried to sign up with your e-mail address; it already has an account."),
                _("If it was you, sign in. If you forgot your password, set a new one here:"),
                url,
                "",
                _("The link works for %(num)d hours.", num=hours),
                _("If it was not you, ignore this mail: your account is unchanged."),
            ]
        )
        return _("Someone signed up with your address"), body

    _send_after_commit(session, user, render)


def password_reset(session: Session, user: User, token: str) -> None:
    url = link(f"/reset/{token}")
    hours = _hours(services().settings.password_reset_ttl)

    def render() -> tuple[str, str]:
        body = "\n".join(
            [
                _("Open this link to choose a new password:"),
                url,
                "",
                _("The link works for %(num)d hours and once only.", num=hours),
                _("Setting a new password signs you out everywhere else."),
                _("If you did not ask for it, ignore this mail: your password is unchanged."),
            ]
        )
        return _("Choose a new password"), body

    _send_after_commit(session, user, render)


def invitation(
    session: Session, user: User, token: str, new_account: bool, provider: str | None = None
) -> None:
    """To be an operator (`provider` None) or staff of `provider` (its name)."""
    url = link(f"/invitation/{token}")
    days = max(1, services().settings.invitation_ttl // 86400)

    def render() -> tuple[str, str]:
        offered = (
            _("an operator of this service")
            if provider is None
            else _("staff of %(provider)s", provider=provider)
        )
        steps = (
            _("Open this link to choose your password and accept:")
            if new_account
            else _("Open this link, signed in to your account, to accept:")
        )
        body = "\n".join(
            [
                _("You are invited to be %(role)s.", role=offered),
                steps,
                url,
                "",
                _("The link works for %(num)d days.", num=days),
                _("If you did not expect this, ignore this mail: nothing changes without you."),
            ]
        )
        return _("You are invited to the Consent Service"), body

    _send_after_commit(session, user, render)
