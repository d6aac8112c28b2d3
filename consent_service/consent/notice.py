"""The separate-consent notice shown before every grant: versioned, so each grant records which
words the person read (PIPL Arts 17, 30; DSP Art 14)."""

from __future__ import annotations

import hashlib
import json

from consent_service.vocabulary import Modality

NOTICE_VERSION = "2026-11-1"
NOTICE_LANGUAGE = "en"

# (heading, text) pairs: who, what, why, how long, how to withdraw, consequences.
_SECTIONS: dict[Modality, tuple[tuple[str, str], ...]] = {}


def _sections(what: str, data: str) -> tuple[tuple[str, str], ...]:
    return (
        (
            "Who",
            "The AI media providers you choose below (or all providers, if you choose that) "
            f"may {what}. {{controller}} runs this registry and checks every planned edit "
            "before it happens.",
        ),
        (
            "What",
            f"Only the edit types and roles you tick. Consent Service keeps encrypted {data} "
            "templates to recognise you in the media providers submit, and tells them only "
            "whether an edit is allowed — never your biometric data or your identity.",
        ),
        ("Why", "For the purpose you write below, and for nothing else."),
        (
            "How long",
            "From the start date until the end date you set, or until you revoke it if you "
            "set none.",
        ),
        (
            "How to withdraw",
            "One click on “Revoke” on your dashboard. It takes effect for every check after "
            "that moment; edits already made under it stay lawful.",
        ),
        (
            "Consequences",
            f"Your {data} is sensitive personal information: an edit can put your likeness or "
            "voice where you never were. Refusing or revoking costs you nothing; without "
            "consent every such edit of you is stopped or needs your consent first.",
        ),
    )


_SECTIONS[Modality.FACE] = _sections("edit images or videos that show your face", "face")
_SECTIONS[Modality.VOICE] = _sections("clone, convert or edit recordings of your voice", "voice")


def notice(modality: Modality, controller: str) -> list[tuple[str, str]]:
    """The notice for one modality, as (heading, text) pairs."""
    return [(h, t.replace("{controller}", controller)) for h, t in _SECTIONS[modality]]


def notice_digest(version: str = NOTICE_VERSION, language: str = NOTICE_LANGUAGE) -> str | None:
    """SHA-256 of the notice text of this version and language (None for another version):
    lets a receipt prove which words were shown."""
    if version != NOTICE_VERSION or language != NOTICE_LANGUAGE:
        return None
    body = {m.value: _SECTIONS[m] for m in Modality}
    raw = json.dumps(body, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(raw).hexdigest()
