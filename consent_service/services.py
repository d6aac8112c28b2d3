"""The service objects one app (web or worker) runs with, built once from its Settings."""

from __future__ import annotations

import base64
from dataclasses import InitVar, dataclass
from datetime import timedelta
from functools import cached_property

from sqlalchemy import Engine

from consent_service.biometrics.faces import FaceEmbedder, face_embedder
from consent_service.biometrics.gallery import Rule
from consent_service.biometrics.service import FaceMatching, GalleryIndex
from consent_service.biometrics.voice_service import VoiceMatching
from consent_service.biometrics.voices import ResemblyzerVoiceEmbedder, VoiceEmbedder
from consent_service.crypto import Envelope, derive_key
from consent_service.db import make_engine
from consent_service.keyring import Pseudonyms, Purpose, keyring_for
from consent_service.mail import Mailer, mailer_for
from consent_service.media.limits import VideoLimits
from consent_service.settings import Settings
from consent_service.storage import LocalMediaStore, MediaStore, store_for
from consent_service.tokens.service import (
    DecisionSigner,
    KeyRing,
    configured_keys_path,
    load_keyring,
)
from consent_service.webhooks.transport import HttpTransport, WebhookTransport


@dataclass
class Services:
    settings: Settings
    secrets: dict[str, str]
    # Swappable in tests; built lazily so the web process never loads dlib.
    face_embedder: FaceEmbedder | None = None
    voice_embedder: VoiceEmbedder | None = None
    # Where media is kept (`media_store`): the one given (tests), else the one MEDIA_STORE names
    # (`storage.store_for`); the database store uses `engine` (the app's), else one of its own.
    store: InitVar[MediaStore | None] = None
    engine: InitVar[Engine | None] = None

    def __post_init__(self, store: MediaStore | None, engine: Engine | None) -> None:
        legacy = self.secrets.get("template_kek")
        # One key per purpose, each version named by its id (docs: README "Keys"); production
        # refuses to start when a purpose has no key.
        self.keyring = keyring_for(self.settings, base64.b64decode(legacy) if legacy else None)
        self.keyring.check()
        self.envelope = Envelope(self.keyring.keys(Purpose.TEMPLATE_KEK))
        self.audit_key = self.keyring.keys(Purpose.AUDIT_MAC)
        self.pseudonyms = Pseudonyms(lambda: self.keyring.versions(Purpose.PSEUDONYMS))
        # Seals the worker's gallery snapshots (biometrics.gallery): never plaintext on disk.
        # From the template KEK in force at start: after its rotation a worker's next cold
        # start finds the old snapshot unreadable and builds the gallery from the database once.
        primary_kek = self.keyring.primary(Purpose.TEMPLATE_KEK).secret
        self.gallery_snapshot_key = derive_key(primary_kek, "gallery-snapshot")
        # Loaded at start-up: production refuses to start without decision keys.
        self._decision_keys_path = configured_keys_path(self.settings)
        self._decision_keys = (self._keys_stamp(), load_keyring(self.settings))
        self.media_store: MediaStore = (
            store
            if store is not None
            else store_for(
                self.settings,
                Envelope(self.keyring.keys(Purpose.MEDIA)),
                lambda: engine or make_engine(self.settings.sqlalchemy_url),
            )
        )

    @cached_property
    def recording_store(self) -> MediaStore:
        """Live enrollment recordings, kept until reviewed (a folder and a key of their own,
        so the media purge, which destroys uploads after a day, never reaches them), sealed
        under the keyring's media key like every upload."""
        return LocalMediaStore(
            self.settings.recordings_dir, Envelope(self.keyring.keys(Purpose.MEDIA))
        )

    @cached_property
    def evidence_store(self) -> MediaStore:
        """Evidence attached to complaints, sealed under the keyring's media key like every
        upload, in a folder of its own (kept for the retention schedule's period, not the media
        purge's day)."""
        return LocalMediaStore(
            self.settings.complaint_evidence_dir, Envelope(self.keyring.keys(Purpose.MEDIA))
        )

    @cached_property
    def face_matching(self) -> FaceMatching:
        s = self.settings
        embedder = self.face_embedder or face_embedder(
            s.face_model,
            s.face_detect_max_side,
            s.face_min_size,
            s.face_detect_first_side or None,
        )
        return FaceMatching(
            embedder=embedder,
            gallery=self._gallery_index(embedder.model_name),
            tolerance=s.face_tolerance,
            margin=s.face_margin,
            max_pixels=s.max_image_pixels,
            video=VideoLimits(
                max_seconds=s.video_max_seconds,
                max_pixels=s.video_max_pixels,
                max_frames=s.video_max_frames,
                sample_fps=s.video_sample_fps,
            ),
            track_votes=s.video_track_votes,
            rule=Rule(s.face_template_rule),
        )

    @cached_property
    def voice_matching(self) -> VoiceMatching:
        s = self.settings
        embedder = self.voice_embedder or ResemblyzerVoiceEmbedder()  # torch loads on first use
        return VoiceMatching(
            embedder=embedder,
            gallery=self._gallery_index(embedder.model_name),
            tolerance=s.voice_tolerance,
            margin=s.voice_margin,
            same_speaker=s.voice_same_speaker,
            max_seconds=s.audio_max_seconds,
        )

    def _gallery_index(self, model_name: str) -> GalleryIndex:
        """The one owner of this process's galleries of `model_name` (the gallery engine)."""
        return GalleryIndex(
            self.envelope,
            model_name,
            snapshot_key=self.gallery_snapshot_key,
            snapshot_dir=self.settings.gallery_dir,
        )

    def _keys_stamp(self) -> int | None:
        path = self._decision_keys_path
        try:
            return path.stat().st_mtime_ns if path is not None else None
        except FileNotFoundError:
            return None

    @property
    def decision_keys(self) -> KeyRing:
        """The decision key set, read again when its file changes (`keys rotate
        decision-signing` adds a key: the JWKS publishes it, and it signs once due, with no
        restart)."""
        stamp = self._keys_stamp()
        if stamp != self._decision_keys[0]:
            self._decision_keys = (stamp, load_keyring(self.settings))
        return self._decision_keys[1]

    @property
    def decision_signer(self) -> DecisionSigner:
        return DecisionSigner(
            keys=self.decision_keys,
            issuer=self.settings.decision_token_issuer,
            ttl=timedelta(seconds=self.settings.decision_token_ttl),
        )

    @cached_property
    def mailer(self) -> Mailer:
        return mailer_for(self.settings)

    @cached_property
    def webhook_transport(self) -> WebhookTransport:
        # Private addresses (loopback receivers in tests) only outside production: SSRF guard.
        return HttpTransport(
            timeout=self.settings.webhook_timeout,
            allow_private=not self.settings.is_production,
            deadline=self.settings.webhook_deadline,
        )
