"""The retention schedule: every class of data the service keeps, how long, and the rule that
asks for it, built from the settings. The page, the report and the purges read this one list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from consent_service.errors import N_, Msgid
from consent_service.settings import Settings


@dataclass(frozen=True)
class DataClass:
    """One class of data: `key` names it in the audit log and the CLI; `period` is None for data
    kept while its reason lasts (the person's own choice, the log); `purged` says whether the
    retention purge enforces it (otherwise `enforced_by` names what does)."""

    key: str
    name: Msgid
    kept: Msgid
    reason: Msgid
    period: timedelta | None
    purged: bool = True
    enforced_by: str = "retention.purge"


def schedule(settings: Settings) -> list[DataClass]:
    days = timedelta(days=1)
    return [
        DataClass(
            "jobs",
            N_("Jobs and their findings and decisions"),
            N_("%(days)s days after the job was submitted"),
            N_(
                "The log of gate decisions, linked to consent and to the content, is kept at "
                "least six months (DSP Art. 16; Cybersecurity Law Art. 21(3); LM Art. 9)."
            ),
            settings.retention_jobs_days * days,
        ),
        DataClass(
            "grant_evidence",
            N_("Evidence of a grant (IP address, browser user agent)"),
            N_("%(days)s days after the grant was withdrawn or expired"),
            N_(
                "Consent must be demonstrable (GDPR Art. 7(1)) and processing records kept at "
                "least three years (PIPL Arts. 55–56); then only the grant's scope and dates stay."
            ),
            settings.retention_grant_evidence_days * days,
        ),
        DataClass(
            "webhook_bodies",
            N_("Bodies of webhooks sent to providers"),
            N_("%(days)s days after delivery (or the last attempt)"),
            N_(
                "Kept only to retry and to answer a provider's questions; the minimum necessary "
                "(PIPL Art. 19)."
            ),
            settings.retention_webhook_body_days * days,
        ),
        DataClass(
            "templates",
            N_("Face and voice templates"),
            N_("%(days)s days without interaction; at once when the account is deleted"),
            N_(
                "Biometric data is deleted when its purpose ends (PIPL Art. 47), and within three "
                "years of the person's last interaction (BIPA §15(a))."
            ),
            settings.retention_template_idle_days * days,
        ),
        DataClass(
            "templates_withdrawn",
            N_("Templates of a person who chose to have them destroyed on withdrawal"),
            N_("Until the last grant is withdrawn (checked at every purge run)"),
            N_(
                "Consent withdrawn and the person asked for deletion (PIPL Arts. 15, 47; "
                "BIPA §15(a))."
            ),
            timedelta(0),
        ),
        DataClass(
            "complaint_evidence",
            N_("Evidence attached to complaints (photos, videos, recordings, documents)"),
            N_("%(days)s days after the complaint was resolved"),
            N_(
                "Kept sealed to handle the complaint and answer any dispute about its outcome "
                "(PIPL Art. 50; DSP Art. 12), then destroyed (PIPL Art. 19); the complaint "
                "itself stays."
            ),
            settings.retention_complaint_evidence_days * days,
        ),
        DataClass(
            "finding_faces",
            N_("Sealed faces of people a job could not name (for consent requests)"),
            N_("%(days)s days after the job"),
            N_(
                "Kept sealed only so the person can be asked for consent (DSP Art. 14), then "
                "destroyed (PIPL Art. 19)."
            ),
            timedelta(seconds=settings.consent_request_finding_ttl),
            purged=False,
            enforced_by="consent_requests.expire",
        ),
        DataClass(
            "media",
            N_("Uploaded photos and recordings"),
            N_("%(days)s days after upload"),
            N_("Kept only while the job or enrollment is processed (PIPL Art. 19)."),
            timedelta(seconds=settings.media_retention),
            purged=False,
            enforced_by="media.purge",
        ),
        DataClass(
            "audit",
            N_("Audit log entries"),
            N_("Kept: they hold hashes and references only, never faces, voices or media"),
            N_(
                "A tamper-evident record of consent and decisions (GDPR Art. 7(1); PIPL Art. 55; "
                "DSP Art. 16)."
            ),
            None,
            purged=False,
            enforced_by="",
        ),
    ]


def days_text(period: timedelta) -> str:
    """A period in days as people read it: `183`, `0.5`."""
    days = period.total_seconds() / 86400
    return f"{days:.0f}" if days == int(days) else f"{days:.2g}"
