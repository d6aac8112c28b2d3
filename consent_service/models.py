"""Every table, imported in one place for Alembic and for tests that build a schema."""

from consent_service.accounts.models import Guardianship, Invitation, StepUp, Subject, User
from consent_service.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from consent_service.biometrics.live_models import LiveChallenge, LiveSession
from consent_service.biometrics.models import (
    BiometricTemplate,
    Enrollment,
    EnrollmentDispute,
    GalleryVersion,
    TemplateChange,
)
from consent_service.complaints.models import Complaint
from consent_service.consent.models import ConsentGrant, Purpose
from consent_service.consent_requests.models import ConsentRequest
from consent_service.gate.models import (
    Decision,
    DecisionRevision,
    Finding,
    FindingFace,
    GateJob,
    MediaItem,
)
from consent_service.keys.models import KeyRotation
from consent_service.notices.models import SubjectNotice
from consent_service.operators.models import WorkerHeartbeat
from consent_service.portal.models import ProviderStaff
from consent_service.providers.models import ApiKey, AssuranceMinimum, Provider
from consent_service.rights.models import ConsentReceipt
from consent_service.storage import MediaBlob
from consent_service.webhooks.models import Webhook, WebhookDelivery

__all__ = [
    "ApiKey",
    "AssuranceMinimum",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditHead",
    "BiometricTemplate",
    "Complaint",
    "ConsentGrant",
    "ConsentReceipt",
    "ConsentRequest",
    "KeyRotation",
    "Decision",
    "DecisionRevision",
    "Enrollment",
    "EnrollmentDispute",
    "Finding",
    "FindingFace",
    "GalleryVersion",
    "GateJob",
    "Guardianship",
    "Invitation",
    "MediaBlob",
    "LiveChallenge",
    "LiveSession",
    "MediaItem",
    "Provider",
    "ProviderStaff",
    "Purpose",
    "Subject",
    "StepUp",
    "SubjectNotice",
    "TemplateChange",
    "User",
    "Webhook",
    "WebhookDelivery",
    "WorkerHeartbeat",
]
