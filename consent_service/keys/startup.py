"""What a worker checks before it takes any task: it signs decisions and checkpoints, so it
refuses to start without those keys (production generates nothing)."""

from __future__ import annotations

from consent_service.audit.checkpoints import CheckpointKeyError, load_signer
from consent_service.settings import InsecureSettings, Settings
from consent_service.timeutil import utcnow
from consent_service.tokens.service import KeyConfigError, load_keyring


class MissingWorkerKeys(RuntimeError):
    """A worker without the signing keys it needs; the message names each one and its setting."""


def require_worker_keys(settings: Settings) -> None:
    problems = []
    try:
        load_signer(settings)
    except (InsecureSettings, CheckpointKeyError) as exc:
        problems.append(f"audit checkpoint signing (AUDIT_CHECKPOINT_KEY): {exc}")
    try:
        load_keyring(settings).signer(utcnow())
    except (InsecureSettings, KeyConfigError) as exc:
        problems.append(f"decision signing (DECISION_SIGNING_KEYS): {exc}")
    if problems:
        raise MissingWorkerKeys(
            "the worker cannot start without its signing keys:\n  - " + "\n  - ".join(problems)
        )
