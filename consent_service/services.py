"""The service objects one app (web or worker) runs with, built once from its Settings."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from functools import cached_property

from flask import current_app

from consent_service.biometrics.faces import DlibFaceEmbedder, FaceEmbedder
from consent_service.biometrics.service import FaceMatching, GalleryIndex
from consent_service.crypto import Envelope, derive_key
from consent_service.settings import Settings
from consent_service.storage import LocalMediaStore, MediaStore


@dataclass
class Services:
    settings: Settings
    secrets: dict[str, str]
    # Swappable in tests; built lazily so the web process never loads dlib.
    face_embedder: FaceEmbedder | None = None
    media_store: MediaStore | None = field(default=None)

    def __post_init__(self) -> None:
        kek = base64.b64decode(self.secrets["template_kek"])
        self.envelope = Envelope(kek)
        self.audit_key = derive_key(kek, "audit-chain")
        self.pseudonym_key = derive_key(kek, "subject-pseudonyms")
        if self.media_store is None:
            self.media_store = LocalMediaStore(
                self.settings.media_dir, Envelope(derive_key(kek, "media-store"))
            )

    @cached_property
    def face_matching(self) -> FaceMatching:
        s = self.settings
        embedder = self.face_embedder or DlibFaceEmbedder(
            detect_max_side=s.face_detect_max_side, min_size=s.face_min_size
        )
        return FaceMatching(
            embedder=embedder,
            gallery=GalleryIndex(self.envelope, embedder.model_name),
            tolerance=s.face_tolerance,
            margin=s.face_margin,
            max_pixels=s.max_image_pixels,
        )


def services() -> Services:
    return current_app.extensions["consent_services"]
