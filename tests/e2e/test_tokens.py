"""Signed decisions end to end: a job decided by the real worker carries a token that stock
PyJWT verifies against the served JWKS, whose claims match the job and hold no biometrics."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import c2pa
import jwt
import pytest
from click.testing import CliRunner
from sqlmodel import select

from consent_service import db
from consent_service.audit.models import AuditEvent
from consent_service.cli import main
from consent_service.cli_support import AppLoader
from consent_service.gate.models import Decision
from consent_service.labels.provenance import CONSENT_ASSERTION
from consent_service.timeutil import as_utc
from consent_service.vocabulary import Operation
from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def decided(stack, photos, strangers):
    """Alice consents to face swaps; one allowed job of her, one job of a stranger."""
    alice = stack.enroll("alice@example.org", photos["obama.jpg"])
    assert alice.status == "completed", alice.error
    grant = stack.grant(alice.subject_id, Operation.FACE_SWAP)
    provider_id, key = stack.provider("Studio Tokens")
    api = Api(stack.client(), key)
    return {
        "grant": grant,
        "provider_id": provider_id,
        "api": api,
        "allowed": api.gate(source=[photos["obama2.jpg"]]),
        "unknown": api.gate(target=[strangers[0]]),
    }


def _verify_with_stock_pyjwt(client, token: str, audience: str) -> dict:
    jwks = client.get("/.well-known/jwks.json").get_json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    return jwt.decode(token, key, algorithms=["EdDSA"], audience=audience)


def test_an_allowed_job_carries_a_verifiable_token_matching_the_job(stack, decided):
    job, provider_id = decided["allowed"], decided["provider_id"]
    assert job["decision"] == "allow", job
    claims = _verify_with_stock_pyjwt(stack.client(), job["token"], provider_id)
    assert (claims["sub"], claims["aud"], claims["iss"]) == (
        job["id"],
        provider_id,
        "consent-service",
    )
    assert (claims["decision"], claims["operation"]) == ("allow", "face_swap")
    assert claims["reasons"] == job["reasons"]
    assert claims["exp"] - claims["iat"] == stack.settings.decision_token_ttl
    assert [m["sha256"] for m in claims["media"]] == [m["sha256"] for m in job["media"]]
    grant = decided["grant"]
    assert claims["findings"] == [
        {
            "media": 0,
            "role": "source",
            "outcome": "consented",
            "subject_ref": job["findings"][0]["subject_ref"],
            "grant_id": grant.grant_id,
            "grant_version": grant.version,
            # Enrolled from photos by an operator's import: the lowest level.
            "assurance": "uploaded",
        }
    ]
    assert claims["assurance_required"] is None  # the provider asked for no minimum
    # The GB 45438 implicit label ties the output to this job and this token.
    assert job["label"] == {
        "AIGC": {
            "Label": "1",
            "ContentProducer": "Studio Tokens",
            "ProduceID": job["id"],
            "ReservedCode1": hashlib.sha256(job["token"].encode()).hexdigest(),
            "ContentPropagator": "",
            "PropagateID": "",
            "ReservedCode2": "",
        }
    }
    # Written with the decision, and named in its audit entry.
    with stack.app.app_context():
        s = db.session()
        stored = s.get(Decision, job["id"])
        events = s.exec(select(AuditEvent).where(AuditEvent.event_type == "gate.decided")).all()
    assert (stored.token, stored.jti) == (job["token"], claims["jti"])
    assert any(
        e.payload.get("job_id") == job["id"] and e.payload.get("token_jti") == stored.jti
        for e in events
    )


def test_the_token_holds_no_biometrics(decided):
    token = decided["allowed"]["token"]
    payload = jwt.decode(token, options={"verify_signature": False})
    text = json.dumps(payload)
    for word in ("embedding", "distance", "score", "box", "email", "@example.org"):
        assert word not in text

    def floats(value):
        if isinstance(value, float):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from floats(v)
        elif isinstance(value, list):
            for v in value:
                yield from floats(v)

    assert list(floats(payload)) == []
    assert len(token) < 2000  # a 128-float embedding alone would be several kB


def test_a_job_that_is_not_allowed_is_signed_but_has_no_label(stack, decided):
    job = decided["unknown"]
    assert job["decision"] == "needs_consent"
    assert job["label"] is None
    claims = _verify_with_stock_pyjwt(stack.client(), job["token"], decided["provider_id"])
    assert claims["decision"] == "needs_consent"
    assert claims["findings"][0]["outcome"] == "unenrolled"
    assert claims["findings"][0]["subject_ref"] is None


def test_the_verify_endpoint_accepts_the_real_token_and_refuses_it_altered(stack, decided):
    client, token = stack.client(), decided["allowed"]["token"]
    ok = client.post(
        "/api/v1/decisions/verify", json={"token": token, "audience": decided["provider_id"]}
    )
    assert ok.status_code == 200 and ok.get_json()["claims"]["sub"] == decided["allowed"]["id"]
    head, payload, signature = token.split(".")
    forged = json.loads(jwt.utils.base64url_decode(payload))
    forged["decision"] = "allow"
    forged["sub"] = decided["unknown"]["id"]
    altered = ".".join(
        [head, jwt.utils.base64url_encode(json.dumps(forged).encode()).decode(), signature]
    )
    refused = client.post("/api/v1/decisions/verify", json={"token": altered})
    assert refused.status_code == 422 and "altered" in refused.get_json()["detail"]


def test_the_token_status_of_a_revoked_grants_decision(stack, decided, base_url, photos, tmp_path):
    """The Must show: an allow decided by the real worker is `valid`; once the person revokes
    the grant behind it, its token's status is `consent_withdrawn` since the revocation, by the
    public status URL (by jti and by the token's SHA-256), by the verify endpoint, and by
    `consent-service label read` of a photo labelled with `label embed` (read by stock
    c2pa-python too), asking the web process over HTTP. Last in this module: it revokes the
    grant the other tests' allowed job relied on."""
    client, job = stack.client(), decided["allowed"]
    labelled = tmp_path / "labelled.jpg"
    embed = ["label", "embed", str(photos["obama.jpg"]), "--token", job["token"]]
    embedded = _cli(stack, *embed, "-o", str(labelled))
    assert embedded.exit_code == 0, embedded.output
    with c2pa.Reader(str(labelled)) as reader:
        assert reader.get_validation_state() == "Valid"
        consent = next(
            a["data"]
            for a in reader.get_active_manifest()["assertions"]
            if a["label"] == CONSENT_ASSERTION
        )
    assert (consent["decision"], consent["token_sha256"]) == (
        "allow",
        job["label"]["AIGC"]["ReservedCode1"],
    )
    read = _cli(stack, "label", "read", str(labelled), "--service", base_url)
    assert read.exit_code == 0 and "status: valid" in read.output, read.output
    print(f"\n[{stack.backend}] label read before revoking:\n{read.output}")
    jti = jwt.decode(job["token"], options={"verify_signature": False})["jti"]
    digest = job["label"]["AIGC"]["ReservedCode1"]
    assert digest == hashlib.sha256(job["token"].encode()).hexdigest()
    before = client.get(f"/api/v1/decisions/{jti}/status")
    assert before.status_code == 200 and before.get_json()["status"] == "valid"
    assert before.get_json()["since"] is None
    print(f"\n[{stack.backend}] before revoking → {json.dumps(before.get_json())}")

    grant = decided["grant"]
    revoked = stack.revoke(grant.subject_id, grant.grant_id)
    revoked_at = as_utc(revoked.created_at)
    for ref in (jti, digest):
        after = client.get(f"/api/v1/decisions/{ref}/status")
        assert after.status_code == 200
        status = after.get_json()
        assert (status["status"], status["decision"], status["jti"]) == (
            "consent_withdrawn",
            "allow",
            jti,
        )
        assert datetime.fromisoformat(status["since"]) == revoked_at
        text = json.dumps(status)
        for private in (job["id"], decided["provider_id"], grant.grant_id):
            assert private not in text
    print(f"[{stack.backend}] after revoking, GET /api/v1/decisions/{jti}/status → {text}")

    verified = client.post(
        "/api/v1/decisions/verify",
        json={"token": job["token"], "audience": decided["provider_id"], "accept_expired": True},
    ).get_json()
    assert verified["status"]["status"] == "consent_withdrawn"
    assert verified["grants"] == [
        {
            "grant_id": grant.grant_id,
            "version": grant.version,
            "current_version": revoked.version,
            "status": "revoked",
            "since": status["since"],
        }
    ]
    print(f"[{stack.backend}] verify → status {verified['status']}, grants {verified['grants']}")
    read = _cli(stack, "label", "read", str(labelled), "--service", base_url)
    assert read.exit_code == 3 and "status: consent_withdrawn since" in read.output, read.output
    print(f"[{stack.backend}] label read after revoking:\n{read.output}")


def _cli(stack, *args):
    return CliRunner().invoke(main, list(args), obj=AppLoader(lambda: stack.app))
