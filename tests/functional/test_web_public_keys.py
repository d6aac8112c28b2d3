"""The web process holds public keys only: built as granian builds it (`create_web_app`) with
production settings and no private key file anywhere, it serves the JWKS, verifies tokens a
worker signed, follows a rotation without a restart, and publishes every checkpoint key so a
witness verifies checkpoints signed before a rotation."""

from __future__ import annotations

import base64
import secrets
import shutil
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consent_service import db
from consent_service.app import create_web_app
from consent_service.audit import service as audit
from consent_service.audit.checkpoints import (
    CheckpointError,
    SignerKey,
    VerifierKey,
    add_checkpoint_key,
    parse_note,
    verifiers_file_for,
)
from consent_service.migrate import upgrade
from consent_service.runtime import services
from consent_service.services import SigningKeysWithheld
from consent_service.settings import InsecureSettings, Settings
from consent_service.timeutil import utcnow
from consent_service.tokens import service as tokens
from tests.support import allow_claims

ORIGIN = "consent.example.org/audit"


class KeyHost:
    """What the operator's key host holds (the workers' side): the private key files, written by
    the commands that write them (each writes its public file beside). The web's host gets a
    copy of the public files alone, in a folder of its own."""

    def __init__(self, folder, web_folder):
        folder.mkdir()
        web_folder.mkdir()
        self.web_folder = web_folder
        self.decisions = folder / "decision-keys.json"
        self.ring = tokens.KeyRing((tokens.generate_key(),))
        tokens.save_keyring(self.decisions, self.ring)
        self.checkpoints = folder / "audit-checkpoint.key"
        self.signers = [add_checkpoint_key(self.checkpoints, ORIGIN)]
        self.publish()

    def publish(self) -> None:
        for public in (
            tokens.public_file_for(self.decisions),
            verifiers_file_for(self.checkpoints),
        ):
            shutil.copyfile(public, self.web_folder / public.name)

    def rotate_decisions(self) -> None:
        self.ring = tokens.rotate(self.ring)
        tokens.save_keyring(self.decisions, self.ring)
        self.publish()

    def rotate_checkpoints(self) -> None:
        self.signers.append(add_checkpoint_key(self.checkpoints, ORIGIN))
        self.publish()

    def sign(self) -> str:
        signer = tokens.DecisionSigner(self.ring, "consent-service", timedelta(minutes=15))
        return signer.sign(allow_claims(), utcnow())[0]


@pytest.fixture
def web(tmp_path):
    host = KeyHost(tmp_path / "keys", tmp_path / "web-keys")
    settings = Settings(
        consent_service_env="production",
        consent_service_home=tmp_path / "home",
        secret_key=secrets.token_urlsafe(32),
        template_kek=base64.b64encode(secrets.token_bytes(32)).decode(),
        broker_url="memory://",
        audit_log_origin=ORIGIN,
        # The paths the workers have too; on the web's host only the public files are there.
        decision_signing_keys=str(host.web_folder / "decision-keys.json"),
        audit_checkpoint_key=str(host.web_folder / "audit-checkpoint.key"),
    )
    settings.home.mkdir()
    upgrade(settings.sqlalchemy_url)
    app = create_web_app(settings)
    yield app, host
    app.extensions["db_engine"].dispose()


def test_the_web_starts_serves_the_jwks_and_verifies_without_a_private_key(web):
    app, host = web
    assert sorted(p.name for p in host.web_folder.iterdir()) == [
        "audit-checkpoint.key.pub",
        "decision-keys.public.json",
    ]
    client = app.test_client()
    served = client.get("/.well-known/jwks.json").get_json()
    assert served == host.ring.jwks()
    assert all("d" not in key for key in served["keys"])
    answer = client.post("/api/v1/decisions/verify", json={"token": host.sign()})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["valid"] is True
    with app.app_context():
        with pytest.raises(SigningKeysWithheld):
            services().decision_signer  # noqa: B018 - the accessor itself refuses
        with pytest.raises(SigningKeysWithheld):
            services().checkpoint_signer  # noqa: B018


def test_the_web_follows_a_rotation_of_the_public_file_without_a_restart(web):
    app, host = web
    client = app.test_client()
    first = client.get("/.well-known/jwks.json").get_json()
    host.rotate_decisions()  # the key host rewrites both files; the web gets the public one
    served = client.get("/.well-known/jwks.json").get_json()
    assert [k["kid"] for k in served["keys"]] == [k.kid for k in host.ring.keys]
    assert len(served["keys"]) == len(first["keys"]) + 1
    answer = client.post("/api/v1/decisions/verify", json={"token": host.sign()})
    assert answer.status_code == 200, answer.get_json()


def test_a_witness_verifies_checkpoints_of_before_a_rotation_from_what_is_published(web):
    app, host = web
    client = app.test_client()
    with app.app_context(), db.unit_of_work() as s:  # as the worker signs them, with its key
        audit.append(s, services().audit_key, "test.entry", "test", {})
        old = audit.make_checkpoint(s, host.signers[-1], utcnow())
        assert old is not None
        old_note = old.note
    host.rotate_checkpoints()
    with app.app_context(), db.unit_of_work() as s:
        audit.append(s, services().audit_key, "test.entry", "test", {})
        assert audit.make_checkpoint(s, host.signers[-1], utcnow()) is not None

    document = client.get("/api/v1/audit/checkpoint").get_json()
    current = VerifierKey.parse(document["verifier_key"])
    assert current.vkey() == host.signers[-1].verifier.vkey()
    parse_note(document["checkpoint"], [current])
    with pytest.raises(CheckpointError):  # the signing key alone does not verify older notes
        parse_note(old_note, [current])
    published = [VerifierKey.parse(text) for text in document["verifier_keys"]]
    assert [k.vkey() for k in published] == [s.verifier.vkey() for s in host.signers]
    assert parse_note(old_note, published).size == 1


def test_a_production_web_without_the_public_files_refuses_to_start_naming_them(tmp_path):
    host = KeyHost(tmp_path / "keys", tmp_path / "web-keys")
    for public in host.web_folder.iterdir():
        public.unlink()
    base = {
        "consent_service_env": "production",
        "consent_service_home": tmp_path / "home",
        "secret_key": secrets.token_urlsafe(32),
        "template_kek": base64.b64encode(secrets.token_bytes(32)).decode(),
        "broker_url": "memory://",
    }
    inline = Settings(**base, decision_signing_keys=host.ring.to_json(indent=None))
    with pytest.raises(InsecureSettings, match="DECISION_PUBLIC_KEYS"):
        create_web_app(inline)
    in_files = Settings(
        **base,
        decision_signing_keys=str(host.web_folder / "decision-keys.json"),
        audit_checkpoint_key=str(host.web_folder / "audit-checkpoint.key"),
    )
    with pytest.raises(tokens.KeyConfigError, match="public keys"):
        create_web_app(in_files)
    # Given inline (as docker-compose.yml does), the public halves are enough.
    verifiers = " ".join(s.verifier.vkey() for s in host.signers)
    given = Settings(
        **base,
        decision_public_keys=host.ring.public().to_json(indent=None),
        audit_checkpoint_public_keys=verifiers,
    )
    app = create_web_app(given)
    with app.app_context():
        assert services().decision_keys.jwks() == host.ring.jwks()
        assert [k.vkey() for k in services().checkpoint_verifiers] == verifiers.split()
    app.extensions["db_engine"].dispose()


def test_a_checkpoint_signed_by_a_stranger_is_not_verified_by_the_published_keys(web):
    app, host = web
    stranger = SignerKey(ORIGIN, Ed25519PrivateKey.generate())
    with app.app_context(), db.unit_of_work() as s:
        audit.append(s, services().audit_key, "test.entry", "test", {})
        row = audit.make_checkpoint(s, stranger, utcnow())
        assert row is not None
        note = row.note
    document = app.test_client().get("/api/v1/audit/checkpoint").get_json()
    published = [VerifierKey.parse(text) for text in document["verifier_keys"]]
    with pytest.raises(CheckpointError):
        parse_note(note, published)
