"""What people are told about their enrollments and about the attempts to edit them that were
not allowed, as message keys with parameters, so that each reader gets it in their own language:
on the dashboard in the page's, by mail in their account's. Enrollment notices are mailed one by
one once committed (`mail_notices`, the `notices.mail` task); attempt notices (kind `attempt`,
`attempt_blocked`) only in the daily digest (notices/digest.py).
A notice also keeps its English text (`SubjectNotice.message`), which rows from before the keys
show as they are."""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime
from functools import partial

from flask_babel import lazy_gettext as _l
from sqlmodel import Session, col, select

from consent_service.accounts.models import Subject, User
from consent_service.errors import N_, EnrollmentRejected, Named
from consent_service.i18n.labels import message_id
from consent_service.mail import Mailer, compose, mail_languages
from consent_service.notices.models import SubjectNotice
from consent_service.timeutil import as_utc, utcnow
from consent_service.vocabulary import Outcome

log = logging.getLogger(__name__)

TEXTS = {
    "dispute.opened.claimant": N_(
        "The %(modality)s you enrolled matches another account. An operator will review it; "
        "until then it protects nobody and is not used."
    ),
    "dispute.opened.holder": N_(
        "Another account tried to enroll a %(modality)s that matches yours. An operator will "
        "review it; your enrollment stays as it is meanwhile."
    ),
    "dispute.resolved.awarded_claimant.claimant": N_(
        "An operator resolved the dispute about your %(modality)s: it is now enrolled on your "
        "account."
    ),
    "dispute.resolved.awarded_claimant.holder": N_(
        "An operator resolved the dispute about your %(modality)s: it was awarded to the other "
        "account and your %(modality)s templates were removed. Re-enroll to be protected again."
    ),
    "dispute.resolved.kept_holder.claimant": N_(
        "An operator resolved the dispute about your %(modality)s: it stays with the account "
        "that enrolled it first. What you submitted was destroyed."
    ),
    "dispute.resolved.kept_holder.holder": N_(
        "An operator resolved the dispute about your %(modality)s: it stays enrolled on your "
        "account."
    ),
    "dispute.resolved.rejected_both.claimant": N_(
        "An operator resolved the dispute about your %(modality)s: neither account keeps it. "
        "What you submitted was destroyed."
    ),
    "dispute.resolved.rejected_both.holder": N_(
        "An operator resolved the dispute about your %(modality)s: neither account keeps it, "
        "and your %(modality)s templates were removed."
    ),
    "review.approved": N_(
        "An operator watched your live enrollment recording and confirmed it: your assurance "
        "level is now reviewed. The recording was destroyed."
    ),
    "review.rejected": N_(
        "An operator watched your live enrollment recording and could not confirm that it "
        "shows you enrolling yourself (%(reason)s). The face and voice templates made from it "
        "were removed and the recording was destroyed. Enroll again with a live session, alone, "
        "facing the camera in good light."
    ),
    # An attempt to edit the person that was not allowed because of them, one key per outcome
    # (ATTEMPT_KEYS); told on the dashboard and in the daily digest.
    "attempt.protected": N_(
        "On %(time)s, %(provider)s asked to edit media showing you (%(operation)s). You are "
        "protect-only, so the edit was denied."
    ),
    "attempt.refused": N_(
        "On %(time)s, %(provider)s asked to edit media showing you (%(operation)s). You refused "
        "this edit, so it was denied."
    ),
    "attempt.revoked": N_(
        "On %(time)s, %(provider)s asked to edit media showing you (%(operation)s). You revoked "
        "your consent to it, so it was denied."
    ),
    "attempt.expired": N_(
        "On %(time)s, %(provider)s asked to edit media showing you (%(operation)s). Your consent "
        "to it has expired, so it was not allowed."
    ),
    "attempt.not_covered": N_(
        "On %(time)s, %(provider)s asked to edit media showing you (%(operation)s). None of your "
        "grants covers it, so it was not allowed without your consent."
    ),
    "attempt.not_covered_purpose": N_(
        "On %(time)s, %(provider)s asked to edit media showing you (%(operation)s) for "
        "%(purpose)s. None of your grants covers that purpose, so it was not allowed."
    ),
    "attempt.assurance_too_low": N_(
        "On %(time)s, %(provider)s asked to edit media showing you (%(operation)s). This "
        "provider requires your enrollment to be checked more strictly than it was, so it was "
        "not allowed."
    ),
}
ATTEMPT = "attempt"  # the kind of the notices the daily digest mails (none mailed one by one)
# The outcomes a person is told about, most telling first: a person found several times in one
# job (two faces, two roles) is told once, with the first of their outcomes in this order.
ATTEMPT_OUTCOMES = (
    Outcome.PROTECTED,
    Outcome.REFUSED,
    Outcome.REVOKED,
    Outcome.EXPIRED,
    Outcome.ASSURANCE_TOO_LOW,
    Outcome.NOT_COVERED,
)
ATTEMPT_KEYS = {outcome: f"attempt.{outcome.value}" for outcome in ATTEMPT_OUTCOMES}
# The mail's subject, by the notice's kind.
SUBJECTS = {
    "review.approved": _l("About your enrollment: an operator confirmed it"),
    "review.rejected": _l("About your enrollment: an operator could not confirm it"),
    "dispute.opened": _l("About your enrollment: it matches another account"),
    "dispute.resolved": _l("About your enrollment: an operator decided"),
}
ABOUT_ENROLLMENT = _l("About your enrollment")
ALSO_ON_DASHBOARD = _l("This notice is also on your dashboard.")


def as_error(key: str, params: dict) -> EnrollmentRejected:
    """The notice as a translatable message (the modality named in the reader's language too);
    also an enrollment's error (`biometrics.service.keep_error`), so the enrollment page says it
    in its reader's language."""
    values = {k: _word(k, v) for k, v in params.items()}
    return EnrollmentRejected(TEXTS[key], **values)


def _word(name: str, value: object) -> object:
    """A parameter's value; the words of a modality or an edit type ("face swap") as a message,
    translated with the notice; a purpose ({"en", "zh"} labels) in the reader's language."""
    if name in ("modality", "operation"):
        return N_(message_id(str(value)))
    if name == "purpose" and isinstance(value, dict):
        return Named(str(value.get("en", "")), str(value.get("zh", "")))
    return value


def english(key: str, params: dict) -> str:
    """The English text, kept on the row for the audit and for readers of old rows."""
    return str(as_error(key, params))


def text_of(notice: SubjectNotice) -> str:
    """A notice in the current locale; a row without a known key shows its stored text."""
    if notice.message_key not in TEXTS:
        return notice.message
    try:
        return as_error(notice.message_key, notice.params or {}).localized()
    except (KeyError, TypeError, ValueError):  # parameters that do not fit the text
        return notice.message


def subject_of(notice: SubjectNotice) -> str:
    return str(SUBJECTS.get(notice.kind, ABOUT_ENROLLMENT))


def _mail_text(notice: SubjectNotice) -> tuple[str, str]:
    """A notice's mail (subject, body), rendered by `compose` in each of the reader's languages."""
    return subject_of(notice), f"{text_of(notice)}\n\n{ALSO_ON_DASHBOARD}\n"


def new_notice(
    subject_id: int, kind: str, key: str, **params: str | dict[str, str]
) -> SubjectNotice:
    if key not in TEXTS:
        raise ValueError(f"Unknown notice {key!r}.")
    return SubjectNotice(
        subject_id=subject_id,
        kind=kind,
        message_key=key,
        params=params,
        message=english(key, params)[:2000],
    )


def notify(
    session: Session, subject_id: int, kind: str, key: str, **params: str | dict[str, str]
) -> None:
    """Tell a person something (`key` of TEXTS with its parameters): on their
    dashboard, and by mail once committed (mail_notices), each in the reader's language."""
    session.add(new_notice(subject_id, kind, key, **params))


def attempt_blocked(
    session: Session,
    subject_id: int,
    outcome: Outcome,
    provider: str,
    operation: str,
    when: datetime,
    job_id: str,
    revision: int,
    purpose: dict[str, str] | None = None,
) -> None:
    """Tell a person that `provider`'s job `job_id` (decision revision `revision`) was not
    allowed to edit them, because of them (`outcome`, one of ATTEMPT_OUTCOMES): on their
    dashboard now, by mail in the day's digest. `purpose` ({"en", "zh"} labels) with
    not_covered: the job's purpose, when it alone kept their grants from covering it."""
    key = ATTEMPT_KEYS[outcome]
    extra: dict[str, str | dict[str, str]] = {}
    if purpose is not None and outcome is Outcome.NOT_COVERED:
        key, extra = "attempt.not_covered_purpose", {"purpose": purpose}
    notify(
        session,
        subject_id,
        ATTEMPT,
        key,
        time=as_utc(when).strftime("%Y-%m-%d %H:%M UTC"),
        provider=provider,
        operation=operation,
        job_id=job_id,
        revision=str(revision),
        **extra,
    )


def mail_notices(session: Session, mailer: Mailer, sender: str, limit: int = 100) -> int:
    """After the commit that wrote them: mail the notices not mailed yet to their person's
    address, in the account's language (both languages when it has none), marking each one sent
    (the caller commits). A failed send is logged and left for the next call; the notice is on
    the dashboard either way. Attempt notices are left to the daily digest. Runs inside an app
    context (a request or a Celery task)."""
    sent = 0
    rows = session.exec(
        select(SubjectNotice)
        .where(col(SubjectNotice.mailed_at).is_(None), SubjectNotice.kind != ATTEMPT)
        .order_by(col(SubjectNotice.id))
        .limit(limit)
    ).all()
    for notice in rows:
        subject = session.get(Subject, notice.subject_id)
        user = session.get(User, subject.user_id) if subject else None
        address = user.email if user else None
        if not address or address.endswith(".invalid"):  # deleted accounts keep no address
            notice.mailed_at = utcnow()
            continue
        message = compose(
            sender,
            address,
            mail_languages(user.language if user else None),
            partial(_mail_text, notice),
        )
        try:
            mailer.send(message)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("notice %s not mailed: %s", notice.id, exc)
            continue
        notice.mailed_at = utcnow()
        sent += 1
    session.flush()
    return sent
