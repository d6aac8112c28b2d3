"""The daily digest: once a day (beat's `notices.digest`, at NOTICE_DIGEST_HOUR UTC) each account
that has not switched it off gets one mail listing the attempt notices of its subjects not
mailed yet, in the account's language, with a link to each job on the ledger and a one-click
unsubscribe link (also as List-Unsubscribe, RFC 8058).

Delivery is at least once, never silently lost: an account's notices are marked mailed in the
transaction that read them, committed only after the send succeeded; a failed send leaves them
for the next run. The only way to get a digest twice is a crash between a successful send and
that commit (one account's mail, as the unit of work is one account); a redelivered or repeated
task finds the committed notices marked and sends nothing. The other order (mark, commit, then
send) would lose the mail on every failed send instead. Two runs at once do not both mail one
notice: the rows are locked (`FOR UPDATE SKIP LOCKED`) while their mail is sent, and the mail's
Message-ID is made of the notices it carries, so a mail client can drop a copy."""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask_babel import gettext as _
from sqlmodel import Session, col, select

from consent_service.accounts.models import Subject, User
from consent_service.accounts.service import digest_off_link
from consent_service.mail import Mailer, compose, mail_languages
from consent_service.notices.models import SubjectNotice
from consent_service.notices.service import ATTEMPT, text_of
from consent_service.timeutil import utcnow

log = logging.getLogger(__name__)

# How far back a digest looks for notices not mailed yet: a day's digest that failed (or a beat
# that was down) is caught up by the next days', while an account that switches the digest back
# on is not sent what it was told about months ago (those notices stay on its dashboard).
LOOKBACK = timedelta(days=7)
# The paths of the ledger's job view and of the unsubscribe link (web/signin.py), made absolute
# with PUBLIC_URL: mails are read outside any request.
JOB_PATH = "/activity?job="
DIGEST_OFF_PATH = "/account/digest/off/"


def _unmailed(since: datetime) -> tuple:
    """The attempt notices not mailed yet, at most LOOKBACK old (`since`)."""
    return (
        SubjectNotice.kind == ATTEMPT,
        col(SubjectNotice.mailed_at).is_(None),
        col(SubjectNotice.created_at) >= since,
    )


def due(session: Session, now: datetime | None = None) -> list[int]:
    """The accounts with attempt notices to mail: not mailed yet, at most LOOKBACK old, the
    digest on. Each is then mailed in a unit of work of its own (`mail_digest`)."""
    now = now or utcnow()
    query = (
        select(User.id)
        .join(Subject, col(Subject.user_id) == User.id)
        .join(SubjectNotice, col(SubjectNotice.subject_id) == Subject.id)
        .where(col(User.notice_digest).is_(True), *_unmailed(now - LOOKBACK))
        .distinct()
        .order_by(col(User.id))
    )
    return [user_id for user_id in session.exec(query) if user_id is not None]


def mail_digest(
    session: Session,
    mailer: Mailer,
    sender: str,
    user_id: int,
    secret: str,
    base_url: str,
    now: datetime | None = None,
) -> int:
    """Mail one account its digest and mark its notices mailed (the caller commits, after this
    returns: see the module's note). Returns the number of notices mailed; 0 when there is
    nothing to mail, the digest is off, or the send failed (logged, left for the next run)."""
    now = now or utcnow()
    user = session.get(User, user_id)
    if user is None or not user.notice_digest:
        return 0
    rows = list(
        session.exec(
            select(SubjectNotice)
            .join(Subject, col(Subject.id) == SubjectNotice.subject_id)
            .where(Subject.user_id == user_id, *_unmailed(now - LOOKBACK))
            .order_by(col(SubjectNotice.id))
            # A concurrent run skips what this one is sending (PostgreSQL; SQLite runs one
            # writer at a time and has no row locks).
            .with_for_update(skip_locked=True, of=SubjectNotice)
        )
    )
    if not rows:
        return 0
    if user.email.endswith(".invalid"):  # a deleted account keeps no address
        _mark(session, rows)
        return 0
    base = base_url.rstrip("/")
    unsubscribe = base + DIGEST_OFF_PATH + digest_off_link(secret, user)

    def render() -> tuple[str, str]:
        lines = [_("These attempts to edit you were not allowed:"), ""]
        for notice in rows:
            lines.append(f"- {text_of(notice)}")
            job_id = (notice.params or {}).get("job_id")
            if job_id:
                lines.append(f"  {base}{JOB_PATH}{job_id}")
        lines += [
            "",
            _("These notices are also on your dashboard: %(url)s", url=base + "/"),
            _(
                "To stop these daily mails (the notices stay on your dashboard), open: %(url)s",
                url=unsubscribe,
            ),
        ]
        return _("Attempts to edit you that were not allowed"), "\n".join(lines)

    message = compose(sender, user.email, mail_languages(user.language), render)
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    host = urlsplit(base).hostname or "consent-service"
    message["Message-ID"] = f"<digest.{user_id}.{rows[0].id}.{rows[-1].id}@{host}>"
    try:
        mailer.send(message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("notice digest of user %s not mailed: %s", user_id, exc)
        return 0
    _mark(session, rows)
    return len(rows)


def _mark(session: Session, rows: list[SubjectNotice]) -> None:
    mailed = utcnow()
    for notice in rows:
        notice.mailed_at = mailed
    session.flush()
