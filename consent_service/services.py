"""The service objects one app (web or worker) runs with, built once from its Settings."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import InitVar, dataclass
from datetime import timedelta
from functools import cache, cached_property
from pathlib import Path
from typing import Generic, TypeVar

from sqlalchemy import Engine

from consent_service.audit.checkpoints import (
    SignerKey,
    VerifierKey,
    checkpoint_key_path,
    load_signers,
    load_verifiers,
    verifiers_path,
)
from consent_service.biometrics.faces import FaceEmbedder, face_embedder
from consent_service.biometrics.gallery import Rule
from consent_service.biometrics.service import FaceMatching, Galleries, GalleryIndex
from consent_service.biometrics.shards import ChordFanOut, ShardedIndex
from consent_service.biometrics.voice_service import VoiceMatching
from consent_service.biometrics.voices import ResemblyzerVoiceEmbedder, VoiceEmbedder
from consent_service.crypto import Envelope, derive_key
from consent_service.db import make_engine
from consent_service.keyring import Pseudonyms, Purpose, keyring_for
from consent_service.labels import credentials as labels
from consent_service.mail import Mailer, mailer_for
from consent_service.media.limits import VideoLimits
from consent_service.settings import Settings
from consent_service.storage import LocalMediaStore, MediaStore, Shelf, WithOldFolder, store_for
from consent_service.tokens.service import (
    DecisionSigner,
    KeyRing,
    PublicKeySet,
    configured_keys_path,
    load_keyring,
    load_public_keys,
    public_keys_path,
)
from consent_service.webhooks.transport import HttpTransport, WebhookTransport

T = TypeVar("T")


class SigningKeysWithheld(RuntimeError):
    """The web process asked for a signing key: it holds only public keys (README "Keys")."""


class FileBacked(Generic[T]):
    """A value read from a file (or the environment, `path` None), read again once the file
    changes (a rotation replaces it: a new inode, a new mtime), so no restart is needed."""

    def __init__(self, path: Path | None, load: Callable[[], T]) -> None:
        self._path, self._load = path, load
        self._stamp = self._stat()
        self._value = load()

    def _stat(self) -> tuple[int, int] | None:
        try:
            found = self._path.stat() if self._path is not None else None
        except FileNotFoundError:
            return None
        return (found.st_ino, found.st_mtime_ns) if found is not None else None

    def get(self) -> T:
        stamp = self._stat()
        if stamp != self._stamp:
            self._value, self._stamp = self._load(), stamp
        return self._value


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
    # False for the web process (`app.create_web_app`): it loads only the public decision and
    # checkpoint keys, publishes and verifies with them, and cannot reach a private key. True for
    # workers and the CLI, which sign.
    signing: bool = True

    def __post_init__(self, store: MediaStore | None, engine: Engine | None) -> None:
        legacy = self.secrets.get("template_kek")
        # One key per purpose, each version named by its id (docs: README "Keys"); production
        # refuses to start when a purpose has no key.
        self.keyring = keyring_for(self.settings, base64.b64decode(legacy) if legacy else None)
        # The database the database store's shelves use: the app's engine, else one of its own,
        # made once when a shelf first asks.
        self._store_engine = cache(lambda: engine or make_engine(self.settings.sqlalchemy_url))
        self.keyring.check()
        self.envelope = Envelope(self.keyring.keys(Purpose.TEMPLATE_KEK))
        self.audit_key = self.keyring.keys(Purpose.AUDIT_MAC)
        self.pseudonyms = Pseudonyms(lambda: self.keyring.versions(Purpose.PSEUDONYMS))
        # Seals the worker's gallery snapshots (biometrics.gallery): never plaintext on disk.
        # From the template KEK in force at start: after its rotation a worker's next cold
        # start finds the old snapshot unreadable and builds the gallery from the database once.
        primary_kek = self.keyring.primary(Purpose.TEMPLATE_KEK).secret
        self.gallery_snapshot_key = derive_key(primary_kek, "gallery-snapshot")
        # Loaded at start-up: production refuses to start without its keys (a signing process
        # without the private decision keys, the web without their public half).
        settings = self.settings
        self._decision_ring: FileBacked[KeyRing] | None = None
        self._decision_public: FileBacked[PublicKeySet] | None = None
        self._checkpoint_public: FileBacked[list[VerifierKey]] | None = None
        self._checkpoint_signers: FileBacked[list[SignerKey]] | None = None
        if self.signing:
            self._decision_ring = FileBacked(
                configured_keys_path(settings), lambda: load_keyring(settings)
            )
        else:
            self._decision_public = FileBacked(
                public_keys_path(settings), lambda: load_public_keys(settings)
            )
            self._checkpoint_public = FileBacked(
                verifiers_path(settings), lambda: load_verifiers(settings)
            )
        self.media_store: MediaStore = (
            store
            if store is not None
            else store_for(
                self.settings,
                Envelope(self.keyring.keys(Purpose.MEDIA)),
                self._store_engine,
            )
        )

    @cached_property
    def recording_store(self) -> MediaStore:
        """Live enrollment recordings, kept until reviewed: the media store's `recordings`
        shelf (the web seals them, a worker analyses them, an operator's page plays them, so
        they live wherever the uploads do; the media purge, which destroys uploads after a day,
        never lists them), sealed under the keyring's media key like every upload."""
        return self._shelf(Shelf.RECORDINGS, self.settings.recordings_dir)

    @cached_property
    def evidence_store(self) -> MediaStore:
        """Evidence attached to complaints: the media store's `evidence` shelf, kept for the
        retention schedule's period, not the media purge's day."""
        return self._shelf(Shelf.EVIDENCE, self.settings.complaint_evidence_dir)

    def _shelf(self, shelf: Shelf, old_folder: Path) -> MediaStore:
        """The configured store's `shelf`; where that is not the local folder the shelf always
        used, blobs sealed there before stay readable (`WithOldFolder`)."""
        envelope = Envelope(self.keyring.keys(Purpose.MEDIA))
        store = store_for(self.settings, envelope, self._store_engine, shelf)
        if isinstance(store, LocalMediaStore) or not old_folder.is_dir():
            return store
        return WithOldFolder(store, LocalMediaStore(old_folder, envelope))

    @cached_property
    def face_matching(self) -> FaceMatching:
        s = self.settings
        embedder = self.face_embedder or face_embedder(
            s.face_model,
            s.face_detect_max_side,
            s.face_min_size,
            s.face_proposer,
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

    def _gallery_index(self, model_name: str) -> Galleries:
        """The one owner of this process's galleries of `model_name` (the gallery engine): the
        whole gallery (GALLERY_SHARDS 1), this shard of it (a shard worker, GALLERY_SHARD), or
        none, searched by a chord to every shard (a matching worker with GALLERY_SHARDS > 1)."""
        s = self.settings
        if s.gallery_shards > 1 and s.gallery_shard is None:
            return ShardedIndex(ChordFanOut(s.gallery_shards, s.gallery_shard_timeout))
        return GalleryIndex(
            self.envelope,
            model_name,
            snapshot_key=self.gallery_snapshot_key,
            snapshot_dir=s.gallery_dir,
            shard=(s.gallery_shard, s.gallery_shards) if s.gallery_shard is not None else None,
        )

    @property
    def decision_keys(self) -> PublicKeySet:
        """The public decision keys (the JWKS, and what tokens verify with), read again when
        their file changes (`keys rotate decision-signing` adds a key: the JWKS publishes it,
        and it signs once due, with no restart)."""
        if self._decision_public is not None:
            return self._decision_public.get()
        return self._signing_ring().public()

    @property
    def decision_signer(self) -> DecisionSigner:
        """Workers and the CLI only: the web holds no private decision key."""
        return DecisionSigner(
            keys=self._signing_ring(),
            issuer=self.settings.decision_token_issuer,
            ttl=timedelta(seconds=self.settings.decision_token_ttl),
        )

    def _signing_ring(self) -> KeyRing:
        if self._decision_ring is None:
            raise SigningKeysWithheld("the web process signs no decision: a worker does")
        return self._decision_ring.get()

    @property
    def checkpoint_verifiers(self) -> list[VerifierKey]:
        """Every audit checkpoint verifier key, oldest first (the last signs now): what
        `GET /api/v1/audit/checkpoint` publishes, read again when its file changes."""
        if self._checkpoint_public is not None:
            return self._checkpoint_public.get()
        return [signer.verifier for signer in self._signers()]

    @property
    def checkpoint_signer(self) -> SignerKey:
        """The checkpoint key that signs now (workers and the CLI only; production refuses to
        go on without AUDIT_CHECKPOINT_KEY), read again when its file changes, so a rotation
        (`keys rotate checkpoint-signing`) is followed without a restart."""
        return self._signers()[-1]

    def _signers(self) -> list[SignerKey]:
        if not self.signing:
            raise SigningKeysWithheld("the web process signs no checkpoint: a worker does")
        if self._checkpoint_signers is None:  # on first use: a CLI command may never need it
            settings = self.settings
            self._checkpoint_signers = FileBacked(
                checkpoint_key_path(settings), lambda: load_signers(settings)
            )
        return self._checkpoint_signers.get()

    @cached_property
    def label_credentials(self) -> labels.LabelCredentials:
        """The certificate and key that sign labels' C2PA manifests (LABEL_CERT, LABEL_KEY),
        read on first use. Unlike the decision keys the web holds this one, since the provider's
        label endpoint signs files on request: it can say only "this file carries the label of
        decision <digest>", whose status anyone asks this service; it cannot sign a decision."""
        return labels.load(self.settings)

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
