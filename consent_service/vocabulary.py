"""The product's vocabulary from DESIGN.md, shared by models, policy, API and UI."""

from __future__ import annotations

from enum import StrEnum


class Modality(StrEnum):
    FACE = "face"
    VOICE = "voice"


class Operation(StrEnum):
    FACE_SWAP = "face_swap"
    FACE_REENACTMENT = "face_reenactment"
    FACE_ATTRIBUTE_EDIT = "face_attribute_edit"
    FACE_GENERATION = "face_generation"
    VOICE_CLONING = "voice_cloning"
    VOICE_CONVERSION = "voice_conversion"
    VOICE_EDITING = "voice_editing"

    @property
    def modality(self) -> Modality:
        return Modality.VOICE if self.value.startswith("voice_") else Modality.FACE


class Assurance(StrEnum):
    """How sure the service is that a subject's enrolled face and voice are the account's own,
    lowest first: `uploaded` (photos or files, only where the operator allows uploads), `live`
    (a live consent recording passed the machine checks), `reviewed` (an operator watched that
    recording and approved it)."""

    UPLOADED = "uploaded"
    LIVE = "live"
    REVIEWED = "reviewed"

    @property
    def rank(self) -> int:
        return list(Assurance).index(self)

    def meets(self, minimum: Assurance | None) -> bool:
        """At least `minimum` (None asks for nothing)."""
        return minimum is None or self.rank >= minimum.rank


class Role(StrEnum):
    SOURCE = "source"
    TARGET = "target"


class GrantStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"
    REFUSED = "refused"


class ProviderStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"


class StaffRole(StrEnum):
    """What a provider's staff member may do in its portal."""

    ADMIN = "admin"  # reads everything, manages API keys and the webhook
    VIEWER = "viewer"  # reads everything, changes nothing


class Scope(StrEnum):
    """What an API key may do; each /api/v1 operation that needs a key names one
    (`api_contract.operations.api_operation(scope=...)`), and a key lacking it gets a 403.
    `labels` is for the label endpoints (embedding and reading AIGC labels) as they are added."""

    JOBS_WRITE = "jobs:write"
    JOBS_READ = "jobs:read"
    CONSENT_REQUESTS = "consent_requests"
    WEBHOOKS_ADMIN = "webhooks:admin"
    LABELS = "labels"


class JobStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    DECIDED = "decided"
    FAILED = "failed"


class DecisionKind(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    NEEDS_CONSENT = "needs_consent"


class DecisionStanding(StrEnum):
    """Whether a signed decision still stands (its token's status, `gate.status`)."""

    VALID = "valid"
    # A later revision of the job's decision replaced it (a consent request was answered).
    SUPERSEDED = "superseded"
    # A grant an `allow` relied on was revoked (by the person, or by erasing their account).
    CONSENT_WITHDRAWN = "consent_withdrawn"
    # A grant an `allow` relied on reached the end of its period.
    CONSENT_EXPIRED = "consent_expired"


class Outcome(StrEnum):
    """What the gate concluded for one person found in the media."""

    CONSENTED = "consented"
    REFUSED = "refused"
    REVOKED = "revoked"
    EXPIRED = "expired"
    NOT_COVERED = "not_covered"
    PROTECTED = "protected"
    UNENROLLED = "unenrolled"
    AMBIGUOUS = "ambiguous"
    # Matched, not refused, but enrolled with less assurance than the provider requires for the
    # operation (a grant from that account would be worth no more than its enrollment).
    ASSURANCE_TOO_LOW = "assurance_too_low"


class Reason(StrEnum):
    """A decision's reason codes: the outcomes of the people who kept it from `allow`, or why
    the media could not be used, or `all_consented`."""

    ALL_CONSENTED = "all_consented"
    NO_FACE_FOUND = "no_face_found"
    NO_VOICE_FOUND = "no_voice_found"
    REJECTED_INPUT = "rejected_input"
    REFUSED = Outcome.REFUSED.value
    REVOKED = Outcome.REVOKED.value
    EXPIRED = Outcome.EXPIRED.value
    NOT_COVERED = Outcome.NOT_COVERED.value
    PROTECTED = Outcome.PROTECTED.value
    UNENROLLED = Outcome.UNENROLLED.value
    AMBIGUOUS = Outcome.AMBIGUOUS.value
    ASSURANCE_TOO_LOW = Outcome.ASSURANCE_TOO_LOW.value


class ConsentRequestStatus(StrEnum):
    """A consent request: `pending` until the person answers or it expires; then never again."""

    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    EXPIRED = "expired"


class WebhookEvent(StrEnum):
    """The events a provider's webhook may ask for."""

    JOB_DECIDED = "job.decided"
    CONSENT_REVOKED = "consent.revoked"
    CONSENT_REQUEST_ANSWERED = "consent_request.answered"
    COMPLAINT_OPENED = "complaint.opened"
    COMPLAINT_RESOLVED = "complaint.resolved"


class DeliveryStatus(StrEnum):
    """A webhook delivery's state in the outbox."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class EnrollmentStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    # Matches another account: waits for an operator (consent_service/operators).
    DISPUTED = "disputed"


class LivePurpose(StrEnum):
    """What a live consent session is for: enrolling (templates from the recording) or a
    step-up (a short fresh check that the person acting is the enrolled face or voice)."""

    ENROLL = "enroll"
    STEP_UP = "step_up"


class LiveSessionStatus(StrEnum):
    ISSUED = "issued"  # the page shows it; no recording yet
    PENDING = "pending"  # the recording arrived; the worker checks it
    PASSED = "passed"
    FAILED = "failed"


class ReviewStatus(StrEnum):
    """An enrollment recording's review by an operator."""

    AWAITING = "awaiting"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"  # the review window ended first; the recording was destroyed


class StepUpStatus(StrEnum):
    WAITING = "waiting"  # the person has still to pass the live check
    DONE = "done"  # the check passed and the action was carried out
    FAILED = "failed"  # the check failed, or the action could no longer be carried out


class DisputeStatus(StrEnum):
    """An enrollment dispute: open until an operator resolves it (one of the three resolutions)
    or the claimant's account is deleted (withdrawn)."""

    OPEN = "open"
    AWARDED_CLAIMANT = "awarded_claimant"
    KEPT_HOLDER = "kept_holder"
    REJECTED_BOTH = "rejected_both"
    WITHDRAWN = "withdrawn"


class ComplaintKind(StrEnum):
    """What a complaint (`/complaints/new`) is about."""

    EDITED_WITHOUT_CONSENT = "edited_without_consent"
    CONSENT_NOT_HONOURED = "consent_not_honoured"  # edited after a refusal or a withdrawal
    WRONG_PERSON = "wrong_person"  # someone else's consent was used for me, or mine for them
    OTHER = "other"


class ComplaintStatus(StrEnum):
    """A complaint: `received` until an operator acknowledges it, `awaiting_provider` while the
    provider concerned is asked to answer, `resolved` (with an outcome) for good."""

    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    AWAITING_PROVIDER = "awaiting_provider"
    RESOLVED = "resolved"


class ComplaintOutcome(StrEnum):
    """How a complaint ended: `upheld` (the decision or job it names is flagged, the provider is
    told to take the content down), `rejected`, or `withdrawn` by the complainant."""

    UPHELD = "upheld"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
