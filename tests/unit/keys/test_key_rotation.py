"""Rotating each purpose: the template KEK re-wraps every data key in committed batches and
resumes after a crash; media, audit MAC and pseudonyms put new data under the new version and
keep the old readable."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from sqlmodel import Session, select

from consent_service.accounts import twofactor
from consent_service.audit import service as audit
from consent_service.audit.models import AuditEvent
from consent_service.biometrics.models import BiometricTemplate
from consent_service.biometrics.service import open_template, seal_template
from consent_service.crypto import Envelope, StaticKeys, wrapped_key_id
from consent_service.keyring import (
    Keyring,
    KeyringError,
    LocalKeyProvider,
    Purpose,
    key_set_json,
    new_version,
)
from consent_service.keys import rotation
from consent_service.keys.models import KeyRotation
from consent_service.settings import Settings
from consent_service.storage import LocalMediaStore
from consent_service.webhooks import service as webhooks
from consent_service.webhooks.models import Webhook

TEMPLATES = 7


@pytest.fixture
def keyring(tmp_path) -> Keyring:
    """A production-like keyring (nothing generated) holding the keys derived from an old
    TEMPLATE_KEK as v0, as an upgraded installation has."""
    provider = LocalKeyProvider(tmp_path / "keys", {}, create=False)
    return Keyring(provider, template_kek=secrets.token_bytes(32), refresh=0.01)


@pytest.fixture
def uow(engine) -> Iterator[object]:
    @contextmanager
    def unit_of_work() -> Iterator[Session]:
        with Session(engine, expire_on_commit=False) as s:
            yield s
            s.commit()

    return unit_of_work


@pytest.fixture
def sealed_rows(session, factories, keyring) -> dict[str, np.ndarray]:
    """Templates, a TOTP secret and a webhook secret sealed under v0; returns the vectors."""
    envelope = Envelope(keyring.keys(Purpose.TEMPLATE_KEK))
    assert envelope.primary_id == "v0"
    vectors = {}
    subject = factories.SubjectFactory()
    for i in range(TEMPLATES):
        row = factories.BiometricTemplateFactory(subject=subject)
        vectors[row.id] = np.full(128, i / 10.0)
        seal_template(envelope, row, vectors[row.id])
    user = factories.UserFactory()
    twofactor.start_setup(session, envelope, user)
    webhooks.configure(
        session, envelope, factories.ProviderFactory(), "http://127.0.0.1/hook", allow_private=True
    )
    session.commit()
    return vectors


def _rotate(purpose, keyring, tmp_path, uow, **kwargs):
    settings = Settings(consent_service_home=tmp_path)
    return rotation.rotate(purpose, keyring, settings, uow, sleep=lambda _s: None, **kwargs)


def _only_new_key(keyring: Keyring, kid: str) -> Envelope:
    return Envelope(StaticKeys.single(keyring.key(Purpose.TEMPLATE_KEK, kid), kid))


def test_template_kek_rotation_rewraps_every_data_key(keyring, tmp_path, uow, reopen, sealed_rows):
    result = _rotate(Purpose.TEMPLATE_KEK, keyring, tmp_path, uow, batch_size=3)
    assert result.rows == TEMPLATES + 2  # the templates, the TOTP secret, the webhook secret
    assert not result.resumed
    s = reopen()
    new_only = _only_new_key(keyring, result.key_id)  # the old KEK is not needed any more
    for row in s.exec(select(BiometricTemplate)):
        assert row.kek_id == wrapped_key_id(row.wrapped_key) == result.key_id
        np.testing.assert_array_equal(open_template(new_only, row), sealed_rows[row.id])
    webhook = s.exec(select(Webhook)).one()
    assert webhook.secret_kek_id == result.key_id
    assert webhooks.webhook_secret(new_only, webhook).startswith(webhooks.SECRET_PREFIX)
    done = s.exec(select(KeyRotation)).one()
    assert done.finished_at is not None and done.rows_done == TEMPLATES + 2
    # The rotation is in the audit log, which still verifies.
    assert s.exec(select(AuditEvent.event_type)).all() == ["key.rotated"]
    assert audit.verify(s, keyring.keys(Purpose.AUDIT_MAC)).ok


def test_a_crash_mid_rotation_is_resumed_and_nothing_is_done_twice(
    keyring, tmp_path, uow, reopen, sealed_rows
):
    first = _rotate(Purpose.TEMPLATE_KEK, keyring, tmp_path, uow, batch_size=2, max_batches=2)
    assert first.rows == 4  # two batches committed, then the "crash"
    s = reopen()
    assert s.exec(select(KeyRotation)).one().finished_at is None
    kids = {r.kek_id for r in s.exec(select(BiometricTemplate))}
    assert kids == {"v0", first.key_id}  # half way: both versions open meanwhile
    envelope = Envelope(keyring.keys(Purpose.TEMPLATE_KEK))
    for row in s.exec(select(BiometricTemplate)):
        np.testing.assert_array_equal(open_template(envelope, row), sealed_rows[row.id])
    s.close()

    second = _rotate(Purpose.TEMPLATE_KEK, keyring, tmp_path, uow, batch_size=2)
    assert second.resumed and second.key_id == first.key_id  # no third version
    assert second.rows == TEMPLATES + 2
    s = reopen()
    assert {r.kek_id for r in s.exec(select(BiometricTemplate))} == {first.key_id}
    assert [v.kid for v in keyring.versions(Purpose.TEMPLATE_KEK)] == ["v0", first.key_id]
    new_only = _only_new_key(keyring, first.key_id)
    for row in s.exec(select(BiometricTemplate)):
        np.testing.assert_array_equal(open_template(new_only, row), sealed_rows[row.id])


def test_a_batch_that_fails_is_rolled_back_whole_and_redone(
    keyring, tmp_path, engine, reopen, sealed_rows
):
    calls = {"n": 0}

    @contextmanager
    def failing_second_batch() -> Iterator[Session]:
        calls["n"] += 1
        with Session(engine, expire_on_commit=False) as s:
            yield s
            if calls["n"] == 3:  # 1: start, 2: first batch, 3: second batch
                raise RuntimeError("killed")
            s.commit()

    with pytest.raises(RuntimeError):
        _rotate(Purpose.TEMPLATE_KEK, keyring, tmp_path, failing_second_batch, batch_size=3)
    s = reopen()
    assert s.exec(select(KeyRotation)).one().rows_done == 3
    moved = [r for r in s.exec(select(BiometricTemplate)) if r.kek_id != "v0"]
    assert len(moved) == 3
    s.close()

    @contextmanager
    def uow() -> Iterator[Session]:
        with Session(engine, expire_on_commit=False) as s:
            yield s
            s.commit()

    result = _rotate(Purpose.TEMPLATE_KEK, keyring, tmp_path, uow, batch_size=3)
    assert result.resumed and result.rows == TEMPLATES + 2


def test_audit_verify_across_a_mac_rotation(keyring, tmp_path, uow, reopen):
    with uow() as s:
        for n in range(3):
            audit.append(s, keyring.keys(Purpose.AUDIT_MAC), "before", "test", {"n": n})
    result = _rotate(Purpose.AUDIT_MAC, keyring, tmp_path, uow)
    with uow() as s:
        audit.append(s, keyring.keys(Purpose.AUDIT_MAC), "after", "test")
    s = reopen()
    events = s.exec(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [e.mac_key_id for e in events] == ["v0", "v0", "v0", result.key_id, result.key_id]
    assert audit.verify(s, keyring.keys(Purpose.AUDIT_MAC)).ok
    # Each entry is checked with its own key: one moved to another key id no longer verifies.
    events[1].mac_key_id = result.key_id
    s.add(events[1])
    s.flush()
    report = audit.verify(s, keyring.keys(Purpose.AUDIT_MAC))
    assert not report.ok and report.first_bad_seq == 2
    # Without the old key, the old entries cannot be checked: verify says so.
    s.rollback()
    new_only = StaticKeys.single(keyring.key(Purpose.AUDIT_MAC, result.key_id), result.key_id)
    report = audit.verify(s, new_only)
    assert not report.ok and "unknown MAC key" in (report.problem or "")


def test_media_rotation_puts_new_media_under_the_new_key_and_old_stays_readable(
    keyring, tmp_path, uow
):
    store = LocalMediaStore(tmp_path / "media", Envelope(keyring.keys(Purpose.MEDIA)))
    old = store.put(b"old photo")
    result = _rotate(Purpose.MEDIA, keyring, tmp_path, uow)
    new = store.put(b"new photo")

    def kid_of(key: str) -> str:
        blob = (tmp_path / "media" / key).read_bytes()
        return wrapped_key_id(blob[2 : 2 + int.from_bytes(blob[:2], "big")])

    assert (kid_of(old), kid_of(new)) == ("v0", result.key_id)
    assert (store.get(old), store.get(new)) == (b"old photo", b"new photo")


def test_env_given_keys_are_not_rotated_here(tmp_path, uow):
    provider = LocalKeyProvider(
        tmp_path / "keys", {Purpose.MEDIA: key_set_json([new_version()])}, create=False
    )
    with pytest.raises(KeyringError):
        _rotate(Purpose.MEDIA, Keyring(provider), tmp_path, uow)
