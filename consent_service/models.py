"""Every table, imported in one place for Alembic and for tests that build a schema."""

from consent_service.accounts.models import Subject, User
from consent_service.audit.models import AuditEvent, AuditHead
from consent_service.biometrics.models import BiometricTemplate, Enrollment, GalleryVersion
from consent_service.consent.models import ConsentGrant
from consent_service.gate.models import Decision, Finding, GateJob, MediaItem
from consent_service.providers.models import ApiKey, Provider
from consent_service.webhooks.models import Webhook, WebhookDelivery

__all__ = [
    "ApiKey",
    "AuditEvent",
    "AuditHead",
    "BiometricTemplate",
    "ConsentGrant",
    "Decision",
    "Enrollment",
    "Finding",
    "GalleryVersion",
    "GateJob",
    "MediaItem",
    "Provider",
    "Subject",
    "User",
    "Webhook",
    "WebhookDelivery",
]
