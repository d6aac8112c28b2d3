"""The service objects one app (web or worker) runs with, built once from its Settings."""

from __future__ import annotations

import base64
from dataclasses import InitVar, dataclass
from datetime import timedelta
from functools import cached_property

from consent_service.biometrics.faces import DlibFaceEmbedder, FaceEmbedder
from consent_service.biometrics.service import FaceMatching, GalleryIndex
from consent_service.biometrics.voice_service import VoiceMatching
from consent_service.biometrics.voices import ResemblyzerVoiceEmbedder, VoiceEmbedder
from consent_service.crypto import Envelope, derive_key
from consent_service.mail import Mailer, mailer_for
from consent_service.media.limits import VideoLimits
from consent_service.settings import Settings
from consent_service.storage import LocalMediaStore, MediaStore
from consent_service.tokens.service import DecisionSigner, load_keyring
from consent_service.webhooks.transport import HttpTransport, WebhookTransport


@dataclass
class Services:
    settings: Settings
    secrets: dict[str, str]
    # Swappable in tests; built lazily so the web process never loads dlib.
    face_embedder: FaceEmbedder | None = None
    voice_embedder: VoiceEmbedder | None = None
    # Where media is kept (`media_store`): the one given (tests), else the local encrypted store.
    store: InitVar[MediaStore | None] = None

    def __post_init__(self, store: MediaStore | None) -> None:
        kek = base64.b64decode(self.secrets["template_kek"])
        self.envelope = Envelope(kek)
        self.audit_key = derive_key(kek, "audit-chain")
        self.pseudonym_key = derive_key(kek, "subject-pseudonyms")
        # Seals the worker's gallery snapshots (biometrics.gallery): never plaintext on disk.
        self.gallery_snapshot_key = derive_key(kek, "gallery-snapshot")
        # Loaded at start-up: production refuses to start without decision keys.
        self.decision_keys = load_keyring(self.settings)
        self.media_store: MediaStore = (
            store
            if store is not None
            else LocalMediaStore(self.settings.media_dir, Envelope(derive_key(kek, "media-store")))
        )

    @cached_property
    def recording_store(self) -> MediaStore:
        """Live enrollment recordings, kept until reviewed (a folder and a key of their own,
        so the media purge, which destroys uploads after a day, never reaches them)."""
        kek = base64.b64decode(self.secrets["template_kek"])
        return LocalMediaStore(
            self.settings.recordings_dir, Envelope(derive_key(kek, "live-recordings"))
        )

    @cached_property
    def face_matching(self) -> FaceMatching:
        s = self.settings
        embedder = self.face_embedder or DlibFaceEmbedder(
            detect_max_side=s.face_detect_max_side, min_size=s.face_min_size
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

    @cached_property
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
