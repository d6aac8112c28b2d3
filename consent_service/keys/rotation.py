"""`keys rotate <purpose>` step by step, each step its own unit of work: add the new version,
let every running process see it, then (template KEK) re-wrap batch after batch; the audit log
records each rotation. The CLI and bench/key_rotation.py run these functions."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta

from sqlmodel import Session

from consent_service.audit import service as audit
from consent_service.audit.checkpoints import add_checkpoint_key, checkpoint_key_path
from consent_service.crypto import Envelope
from consent_service.keyring import Keyring, Purpose
from consent_service.keys import service
from consent_service.keys.service import RotationResult
from consent_service.settings import Settings
from consent_service.timeutil import as_utc, utcnow
from consent_service.tokens import service as tokens

UnitOfWork = Callable[[], AbstractContextManager[Session]]


class RotationRefused(RuntimeError):
    """A key this service cannot rotate as configured (given inline in the environment)."""


def rotate(
    purpose: Purpose,
    keyring: Keyring,
    settings: Settings,
    unit_of_work: UnitOfWork,
    batch_size: int = 500,
    sleep: Callable[[float], None] = time.sleep,
    max_batches: int | None = None,
) -> RotationResult:
    """Rotate one purpose's key (see the module's docstring). `max_batches` stops a template
    KEK re-wrap early, as a crash would (tests); running `rotate` again resumes it."""
    started = time.monotonic()
    if purpose is Purpose.TEMPLATE_KEK:
        return _rotate_kek(keyring, unit_of_work, batch_size, sleep, max_batches, started)
    if purpose is Purpose.DECISION_SIGNING:
        kid = _rotate_decision_keys(settings, keyring.refresh)
    elif purpose is Purpose.CHECKPOINT_SIGNING:
        kid = _rotate_checkpoint_key(settings)
    else:
        kid = keyring.rotate(purpose).kid
    with unit_of_work() as s:
        rotation = service.start_rotation(s, purpose, kid)
        service.finish_rotation(s, rotation)
        _audited(s, keyring, purpose, kid, 0)
    return RotationResult(purpose, kid, 0, time.monotonic() - started, resumed=False)


def _audited(s: Session, keyring: Keyring, purpose: Purpose, kid: str, rows: int) -> None:
    audit.append(
        s,
        keyring.keys(Purpose.AUDIT_MAC),
        "key.rotated",
        "cli",
        {"purpose": purpose.value, "key_id": kid, "rows": rows},
    )


def _rotate_kek(
    keyring: Keyring,
    unit_of_work: UnitOfWork,
    batch_size: int,
    sleep: Callable[[float], None],
    max_batches: int | None,
    started: float,
) -> RotationResult:
    with unit_of_work() as s:
        rotation = service.open_rotation(s, Purpose.TEMPLATE_KEK)
        resumed = rotation is not None
        if rotation is None:
            kid = keyring.rotate(Purpose.TEMPLATE_KEK).kid
            rotation = service.start_rotation(s, Purpose.TEMPLATE_KEK, kid)
        rotation_id, since = rotation.id, as_utc(rotation.started_at)
    assert rotation_id is not None  # flushed
    # Every process reads the key sets again within `refresh` seconds: after that nothing new
    # is sealed under an older version, so the batches below leave none behind.
    settled = since + timedelta(seconds=2 * keyring.refresh + 1)
    wait = (settled - utcnow()).total_seconds()
    if wait > 0:
        sleep(wait)
    envelope = Envelope(keyring.keys(Purpose.TEMPLATE_KEK))
    batches = 0
    while max_batches is None or batches < max_batches:
        with unit_of_work() as s:
            moved = service.rewrap_batch(s, envelope, rotation_id, batch_size)
        batches += 1
        if not moved:
            break
    else:
        return _result(unit_of_work, rotation_id, started, resumed)
    with unit_of_work() as s:
        row = s.get(service.KeyRotation, rotation_id)
        assert row is not None
        service.finish_rotation(s, row)
        _audited(s, keyring, Purpose.TEMPLATE_KEK, row.key_id, row.rows_done)
    return _result(unit_of_work, rotation_id, started, resumed)


def _result(
    unit_of_work: UnitOfWork, rotation_id: int, started: float, resumed: bool
) -> RotationResult:
    with unit_of_work() as s:
        row = s.get(service.KeyRotation, rotation_id)
        assert row is not None
        return RotationResult(
            Purpose.TEMPLATE_KEK, row.key_id, row.rows_done, time.monotonic() - started, resumed
        )


def _rotate_decision_keys(settings: Settings, refresh: float) -> str:
    """A new Ed25519 decision key, published at once and signing once every process has read
    the key file again (`refresh`, doubled): the JWKS lists old and new during the overlap."""
    path = tokens.configured_keys_path(settings)
    if path is None:
        raise RotationRefused(
            "DECISION_SIGNING_KEYS holds the keys inline: `consent-service tokens rotate` prints "
            "the new set to put there"
        )
    ring = tokens.rotate(tokens.load_keyring(settings), activate_in=2 * refresh + 1)
    tokens.save_keyring(path, ring)
    return ring.keys[-1].kid


def _rotate_checkpoint_key(settings: Settings) -> str:
    """A new checkpoint key appended to the key file: it signs from the next checkpoint on; the
    older ones stay, so checkpoints they signed keep verifying."""
    path = checkpoint_key_path(settings)
    if path is None:
        raise RotationRefused(
            "AUDIT_CHECKPOINT_KEY holds the key inline: name a key file there to rotate it"
        )
    if not path.exists():
        raise RotationRefused(f"no checkpoint key file at {path} yet")
    return add_checkpoint_key(path, settings.audit_origin).verifier.key_id.hex()
