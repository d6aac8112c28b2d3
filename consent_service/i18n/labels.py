"""The words a person reads for DESIGN.md's vocabulary codes (`face_swap`, `revoked`, `deny`…), in
the page's language. The one place those codes get a label: pages use the `label` filter, forms
and mails the mappings; APIs, exports and receipts keep the codes themselves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

from consent_service.vocabulary import (
    Assurance,
    ComplaintKind,
    ComplaintOutcome,
    ComplaintStatus,
    ConsentRequestStatus,
    DecisionKind,
    DecisionStanding,
    DeliveryStatus,
    EnrollmentStatus,
    GrantStatus,
    JobStatus,
    LiveSessionStatus,
    Modality,
    Operation,
    Outcome,
    ProviderStatus,
    ReviewStatus,
    Role,
    StaffRole,
)

# The edit types, short, for tables and sentences ("face swap").
OPERATIONS: dict[Operation, LazyString] = {
    Operation.FACE_SWAP: _l("face swap"),
    Operation.FACE_REENACTMENT: _l("face reenactment"),
    Operation.FACE_ATTRIBUTE_EDIT: _l("face attribute editing"),
    Operation.FACE_GENERATION: _l("face generation"),
    Operation.VOICE_CLONING: _l("voice cloning"),
    Operation.VOICE_CONVERSION: _l("voice conversion"),
    Operation.VOICE_EDITING: _l("voice editing"),
}
# The edit types with what they mean, for the grant form's choices and consent request mails.
OPERATION_DESCRIPTIONS: dict[Operation, LazyString] = {
    Operation.FACE_SWAP: _l("Face swap: put my face into other images or videos"),
    Operation.FACE_REENACTMENT: _l(
        "Face reenactment: animate my face, lip-sync, change expression"
    ),
    Operation.FACE_ATTRIBUTE_EDIT: _l("Face attribute edit: change age, hair, make-up…"),
    Operation.FACE_GENERATION: _l("Face generation: new images in my likeness"),
    Operation.VOICE_CLONING: _l("Voice cloning: synthesise speech in my voice"),
    Operation.VOICE_CONVERSION: _l("Voice conversion: turn someone's speech into my voice"),
    Operation.VOICE_EDITING: _l("Voice editing: edit a recording of me"),
}
ROLES: dict[Role, LazyString] = {Role.SOURCE: _l("source"), Role.TARGET: _l("target")}
ROLE_DESCRIPTIONS: dict[Role, LazyString] = {
    Role.SOURCE: _l("Source: my face or voice is taken and put elsewhere"),
    Role.TARGET: _l("Target: content I appear in is edited"),
}
# Also a modality's name inside a sentence ("the face you enrolled"), in notices and mails.
MODALITIES: dict[Modality, LazyString] = {Modality.FACE: _l("face"), Modality.VOICE: _l("voice")}
DECISIONS: dict[DecisionKind, LazyString] = {
    DecisionKind.ALLOW: _l("allowed"),
    DecisionKind.DENY: _l("denied"),
    DecisionKind.NEEDS_CONSENT: _l("needs consent"),
}
# What the gate concluded about one person; the same codes are a decision's reasons, so the words
# never say "you": a job's reasons can come from someone else found in it.
OUTCOMES: dict[Outcome, LazyString] = {
    Outcome.CONSENTED: _l("consented"),
    Outcome.REFUSED: _l("consent refused"),
    Outcome.REVOKED: _l("consent revoked"),
    Outcome.EXPIRED: _l("consent expired"),
    Outcome.NOT_COVERED: _l("not covered by a grant"),
    Outcome.PROTECTED: _l("protect-only mode"),
    Outcome.UNENROLLED: _l("not enrolled"),
    Outcome.AMBIGUOUS: _l("uncertain match"),
    Outcome.ASSURANCE_TOO_LOW: _l("assurance too low"),
}
# How a subject's enrolled face and voice were shown to be the account's own.
ASSURANCES: dict[Assurance, LazyString] = {
    Assurance.UPLOADED: _l("uploaded (photos or files)"),
    Assurance.LIVE: _l("live (checked by machine)"),
    Assurance.REVIEWED: _l("reviewed (checked by an operator)"),
}
# The other reason codes of a decision (consent/policy.py, gate/pipeline.py).
REASONS: dict[str, LazyString] = {
    "all_consented": _l("everyone consented"),
    "no_face_found": _l("no face found"),
    "no_voice_found": _l("no speech found"),
    "rejected_input": _l("media could not be used"),
}
GRANT_STATUSES: dict[GrantStatus, LazyString] = {
    GrantStatus.ACTIVE: _l("in force"),
    GrantStatus.REVOKED: _l("revoked"),
    GrantStatus.EXPIRED: _l("expired"),
    GrantStatus.REFUSED: _l("refused"),
}
PROVIDER_STATUSES: dict[ProviderStatus, LazyString] = {
    ProviderStatus.PENDING: _l("awaiting approval"),
    ProviderStatus.ACTIVE: _l("active"),
    ProviderStatus.SUSPENDED: _l("suspended"),
}
JOB_STATUSES: dict[JobStatus, LazyString] = {
    JobStatus.QUEUED: _l("queued"),
    JobStatus.PROCESSING: _l("processing"),
    JobStatus.DECIDED: _l("decided"),
    JobStatus.FAILED: _l("failed"),
}
ENROLLMENT_STATUSES: dict[EnrollmentStatus, LazyString] = {
    EnrollmentStatus.PENDING: _l("in progress"),
    EnrollmentStatus.COMPLETED: _l("completed"),
    EnrollmentStatus.FAILED: _l("failed"),
    EnrollmentStatus.DISPUTED: _l("waiting for an operator"),
}
REQUEST_STATUSES: dict[str, LazyString] = {
    ConsentRequestStatus.PENDING: _l("awaiting your answer"),
    ConsentRequestStatus.APPROVED: _l("approved"),
    ConsentRequestStatus.DECLINED: _l("declined"),
    ConsentRequestStatus.EXPIRED: _l("expired"),
}
# Complaints: what one is about, where it stands, how it ended (the public page, the status
# page, the mails).
COMPLAINT_KINDS: dict[str, LazyString] = {
    ComplaintKind.EDITED_WITHOUT_CONSENT: _l("I was edited without my consent"),
    ComplaintKind.CONSENT_NOT_HONOURED: _l("My refusal or withdrawal of consent was not honoured"),
    ComplaintKind.WRONG_PERSON: _l("I was mistaken for someone else (or they for me)"),
    ComplaintKind.OTHER: _l("Something else about how my face or voice is used"),
}
# Whether a decision still stands (its public status; the label check page).
DECISION_STANDINGS: dict[str, LazyString] = {
    DecisionStanding.VALID: _l("still valid"),
    DecisionStanding.SUPERSEDED: _l("superseded by a later decision"),
    DecisionStanding.CONSENT_WITHDRAWN: _l("consent withdrawn"),
    DecisionStanding.CONSENT_EXPIRED: _l("consent expired"),
}
COMPLAINT_STATUSES: dict[str, LazyString] = {
    ComplaintStatus.RECEIVED: _l("received, waiting for an operator"),
    ComplaintStatus.ACKNOWLEDGED: _l("acknowledged, being looked into"),
    ComplaintStatus.AWAITING_PROVIDER: _l("waiting for the provider's answer"),
    ComplaintStatus.RESOLVED: _l("resolved"),
}
COMPLAINT_OUTCOMES: dict[str, LazyString] = {
    ComplaintOutcome.UPHELD: _l("upheld"),
    ComplaintOutcome.REJECTED: _l("not upheld"),
    ComplaintOutcome.WITHDRAWN: _l("withdrawn"),
}
# What a provider's staff member may do, in the portal's header.
STAFF_ROLES: dict[StaffRole, LazyString] = {
    StaffRole.ADMIN: _l("administrator"),
    StaffRole.VIEWER: _l("read-only"),
}
# A webhook delivery's state (the portal's webhook page and a delivery's page).
DELIVERY_STATUSES: dict[str, LazyString] = {
    DeliveryStatus.PENDING: _l("waiting to be sent"),
    DeliveryStatus.DELIVERED: _l("delivered"),
    DeliveryStatus.FAILED: _l("failed"),
}
# A live recording's machine checks, and an operator's review of it (the review pages).
LIVE_SESSION_STATUSES: dict[str, LazyString] = {
    LiveSessionStatus.ISSUED: _l("not recorded yet"),
    LiveSessionStatus.PENDING: _l("being checked"),
    LiveSessionStatus.PASSED: _l("passed"),
    LiveSessionStatus.FAILED: _l("failed"),
}
REVIEW_STATUSES: dict[str, LazyString] = {
    ReviewStatus.AWAITING: _l("awaiting review"),
    ReviewStatus.APPROVED: _l("approved"),
    ReviewStatus.REJECTED: _l("rejected"),
    ReviewStatus.EXPIRED: _l("not reviewed in time"),
}
# complaints/service.py Clock: where an operator stands against a complaint's published limit.
CLOCKS: dict[str, LazyString] = {
    "met": _l("done in time"),
    "late": _l("done late"),
    "due": _l("in time"),
    "overdue": _l("overdue"),
}
# guardians/service.py RELATIONSHIPS: what a guardian declares to be.
RELATIONSHIPS: dict[str, LazyString] = {
    "parent": _l("Parent"),
    "legal_guardian": _l("Legal guardian"),
}

# Codes that mean one thing wherever they appear; statuses share codes ("pending", "expired")
# with different meanings, so they are looked up by kind.
LABELS: dict[Any, LazyString] = {
    "undecided": _l("undecided"),  # the portal's usage: jobs queued, processing or failed
    **OPERATIONS,
    **ROLES,
    **MODALITIES,
    **DECISIONS,
    **OUTCOMES,
    **REASONS,
    **ASSURANCES,
}
KINDS: dict[str, Mapping[Any, LazyString]] = {
    "grant": GRANT_STATUSES,
    "job": JOB_STATUSES,
    "provider": PROVIDER_STATUSES,
    "enrollment": ENROLLMENT_STATUSES,
    "request": REQUEST_STATUSES,
    "relationship": RELATIONSHIPS,
    "staff_role": STAFF_ROLES,
    "delivery": DELIVERY_STATUSES,
    "live": LIVE_SESSION_STATUSES,
    "review": REVIEW_STATUSES,
    "clock": CLOCKS,
    "complaint_kind": COMPLAINT_KINDS,
    "complaint": COMPLAINT_STATUSES,
    "complaint_outcome": COMPLAINT_OUTCOMES,
    "decision_status": DECISION_STANDINGS,
}


def message_id(code: str) -> str:
    """The catalogue's message id of a code's words (their English, untranslated; the code
    itself when it has none): for a message that carries the words as a parameter (`errors.N_`)
    and is translated when it is shown, and is written where no locale applies (a worker)."""
    words = LABELS.get(code)
    # A LazyString keeps the message id it was made with as its first argument.
    return code if words is None else str(words._args[0])


def label(code: object, kind: str | None = None) -> str:
    """The words for a vocabulary code in the current language; `kind` names the status list of
    a status code (`enrollment`, `request`, `grant`, `job`, `complaint`…). Anything unknown (a
    code added later, a provider's name) is returned unchanged, so a page never loses
    information; None is shown as nothing."""
    if not isinstance(code, str):
        return "" if code is None else str(code)
    words = KINDS[kind].get(code) if kind else None
    if words is None:
        words = LABELS.get(code)
    return code if words is None else str(words)
