"""Audit checkpoints through the real app and CLI: signed and published, proofs a witness can
check with nothing but the RFC 9162 algorithms, and `audit verify --against` catching an emptied log
that the chain and head alone no longer betray."""

from __future__ import annotations

import base64
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import delete

from consent_service import db
from consent_service.audit import merkle
from consent_service.audit import service as audit
from consent_service.audit.checkpoints import VerifierKey, parse_note
from consent_service.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from consent_service.cli import main
from consent_service.runtime import services
from consent_service.timeutil import utcnow


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app()


def run(site, *args: str):
    env = {"CONSENT_SERVICE_HOME": str(site.settings.home), "BROKER_URL": "memory://"}
    return CliRunner().invoke(main, list(args), env=env)


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def test_checkpoints_proofs_and_verify_against(site, tmp_path):
    client = site.client()
    assert client.get("/api/v1/audit/checkpoint").status_code == 404
    assert run(site, "operators", "add", "first@example.org").exit_code == 0  # audited

    first = run(site, "audit", "checkpoint")
    assert first.exit_code == 0, first.output
    assert run(site, "audit", "checkpoint").output.startswith("the log has not grown")
    vkey = run(site, "audit", "public-key").output.strip()
    key = VerifierKey.parse(vkey)
    old = parse_note(first.output, [key])
    assert old.size >= 1
    kept = site.settings.home / "audit-checkpoints.log"
    assert kept.read_text() == first.output

    assert run(site, "operators", "add", "boss@example.org").exit_code == 0  # more entries
    assert run(site, "audit", "checkpoint").exit_code == 0
    answer = client.get(f"/api/v1/audit/checkpoint?from={old.size}&entry=1")
    assert answer.status_code == 200, answer.text
    document = answer.get_json()
    new = parse_note(document["checkpoint"], [key])
    assert document["verifier_key"] == vkey
    assert (document["size"], b64(document["root"])) == (new.size, new.root)
    assert new.size > old.size and new.timestamp >= old.timestamp
    proof = document["consistency"]
    assert (proof["first"], proof["second"]) == (old.size, new.size)
    merkle.verify_consistency(
        old.size, new.size, old.root, new.root, [b64(p) for p in proof["proof"]]
    )
    inclusion = document["inclusion"]
    with site.app.app_context():
        entry_one = db.session().get(AuditEvent, 1)
        assert audit.entry_leaf(entry_one) == b64(inclusion["leaf_hash"])
    merkle.verify_inclusion(
        b64(inclusion["leaf_hash"]), 0, new.size, [b64(p) for p in inclusion["proof"]], new.root
    )
    too_far = client.get(f"/api/v1/audit/checkpoint?from={new.size + 1}")
    assert too_far.status_code == 422
    assert client.get("/api/v1/audit/checkpoint?from=-1").status_code == 422

    # Witnesses: the first note in a file of its own, the endpoint's answer, a decision token
    # carrying the head it was recorded under.
    note_file = tmp_path / "witness.note"
    note_file.write_text(first.output)
    answer_file = tmp_path / "answer.json"
    answer_file.write_text(json.dumps(document))
    with site.app.app_context():
        claim = audit.checkpoint_claim(db.session())
        token, _ = services().decision_signer.sign(
            {"aud": "p1", "sub": "j1", "audit_checkpoint": claim}, utcnow()
        )
    token_file = tmp_path / "token.jwt"
    token_file.write_text(token)
    witnesses = [f"--against={p}" for p in (note_file, answer_file, token_file)]
    intact = run(site, "audit", "verify", *witnesses)
    assert intact.exit_code == 0, intact.output
    assert "intact" in intact.output

    # A database writer holding nothing empties the log: every entry, the head and every
    # checkpoint row. The chain alone reports "intact, 0 entries".
    with site.app.app_context(), db.unit_of_work() as s:
        s.execute(delete(AuditEvent))
        s.execute(delete(AuditHead))
        s.execute(delete(AuditCheckpoint))
    with site.app.app_context():
        assert audit.verify(db.session(), services().audit_key) == audit.ChainReport(True, 0)
    kept.unlink()  # even without the instance's own file, each witness catches it
    for witness in witnesses:
        cut = run(site, "audit", "verify", witness)
        assert cut.exit_code == 1, (witness, cut.output)
        assert "entries were removed" in cut.output


def test_verify_refuses_a_checkpoint_signed_by_another_key(site, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from consent_service.audit.checkpoints import Checkpoint, SignerKey

    stranger = SignerKey(site.settings.audit_origin, Ed25519PrivateKey.generate())
    forged = tmp_path / "forged.note"
    forged.write_text(Checkpoint(stranger.name, 1, merkle.EMPTY_ROOT, 1).sign(stranger))
    result = run(site, "audit", "verify", f"--against={forged}")
    assert result.exit_code == 1
    assert "not signed by a known checkpoint key" in result.output
