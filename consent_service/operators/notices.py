"""What people are told about their enrollments, as message keys with parameters, so that each
reader gets it in their own language: on the dashboard in the page's, by mail in their account's.
A notice also keeps its English text (`SubjectNotice.message`), which rows from before the keys
show as they are."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from consent_service.errors import N_, EnrollmentRejected
from consent_service.operators.models import SubjectNotice

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
}
# The mail's subject, by the notice's kind.
SUBJECTS = {
    "dispute.opened": _l("About your enrollment: it matches another account"),
    "dispute.resolved": _l("About your enrollment: an operator decided"),
}
ABOUT_ENROLLMENT = _l("About your enrollment")
ALSO_ON_DASHBOARD = _l("This notice is also on your dashboard.")


def as_error(key: str, params: dict) -> EnrollmentRejected:
    """The notice as a translatable message (the modality named in the reader's language too);
    also an enrollment's error (`biometrics.service.keep_error`), so the enrollment page says it
    in its reader's language."""
    values = {k: N_(v) if k == "modality" else v for k, v in params.items()}
    return EnrollmentRejected(TEXTS[key], **values)


def english(key: str, params: dict) -> str:
    """The English text, kept on the row for the audit and for readers of old rows."""
    return str(as_error(key, params))


def text_of(notice: SubjectNotice) -> str:
    """A notice in the current locale; a row without a known key shows its stored text."""
    if notice.message_key not in TEXTS:
        return notice.message
    try:
        return as_error(notice.message_key, notice.params or {}).localized()  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):  # parameters that do not fit the text
        return notice.message


def subject_of(notice: SubjectNotice) -> str:
    return str(SUBJECTS.get(notice.kind, ABOUT_ENROLLMENT))


def new_notice(subject_id: int, kind: str, key: str, **params: str) -> SubjectNotice:
    if key not in TEXTS:
        raise ValueError(f"Unknown notice {key!r}.")
    return SubjectNotice(
        subject_id=subject_id,
        kind=kind,
        message_key=key,
        params=params,
        message=english(key, params)[:2000],
    )
