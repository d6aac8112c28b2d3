"""Decision tokens through the real app: the served JWKS works with stock PyJWT, the verify
endpoint, the token and GB 45438 label on a recorded decision, and the `tokens` commands."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

import jwt
import pytest
from click.testing import CliRunner
from urllib3 import encode_multipart_formdata

from consent_service import db
from consent_service.cli import main
from consent_service.consent import service as consent
from consent_service.gate import service as gate
from consent_service.gate.models import Decision
from consent_service.runtime import services
from consent_service.settings import Settings
from consent_service.timeutil import as_utc, utcnow
from consent_service.tokens import service as tokens
from tests import factories
from tests.support import allow_claims, allow_job


@pytest.fixture(scope="module")
def api(make_api_app):
    return make_api_app()


def _jwks(client) -> dict:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["Cache-Control"].startswith("public")
    return response.get_json()


def _sign(api) -> str:
    with api.app.app_context():
        return services().decision_signer.sign(allow_claims(), utcnow())[0]


def test_stock_pyjwt_verifies_against_the_served_jwks(api):
    token = _sign(api)
    document = _jwks(api.client())
    entry = next(k for k in document["keys"] if k["kid"] == jwt.get_unverified_header(token)["kid"])
    assert (entry["kty"], entry["crv"], entry["alg"]) == ("OKP", "Ed25519", "EdDSA")
    assert "d" not in entry
    key = jwt.PyJWK(entry)
    claims = jwt.decode(token, key, algorithms=["EdDSA"], audience="p1", issuer="consent-service")
    assert claims["sub"] == "j1" and claims["decision"] == "allow"
    # PyJWK's own client path too: a JWK Set built from the same document.
    assert jwt.PyJWKSet.from_dict(document)[entry["kid"]].key_type == "OKP"


def test_verify_endpoint_needs_no_key_and_explains_refusals(api):
    client = api.client()
    token = _sign(api)
    ok = client.post("/api/v1/decisions/verify", json={"token": token})
    assert ok.status_code == 200, ok.get_json()
    body = ok.get_json()
    assert body["valid"] is True and body["claims"]["aud"] == "p1"
    assert body["kid"] == jwt.get_unverified_header(token)["kid"]
    # Signed by our key, but no decision of this service: nothing to say about its status.
    assert (body["expired"], body["status"], body["grants"]) == (False, None, [])

    flipped = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    for payload, reason in (
        ({"token": flipped}, "altered"),
        ({"token": token, "audience": "p2"}, "another audience"),
        ({"token": "eyJhbGciOiJub25lIn0.e30."}, "EdDSA only"),
    ):
        refused = client.post("/api/v1/decisions/verify", json=payload)
        assert refused.status_code == 422
        assert refused.mimetype == "application/problem+json"
        assert reason in refused.get_json()["detail"]
    assert client.post("/api/v1/decisions/verify", json={}).status_code == 422


def test_an_expired_token_is_refused_unless_its_status_is_asked_for(api):
    client = api.client()
    with api.app.app_context():
        base = allow_claims(media=[])
        ttl = api.settings.decision_token_ttl
        token = services().decision_signer.sign(base, utcnow() - timedelta(seconds=ttl + 5))[0]
    refused = client.post("/api/v1/decisions/verify", json={"token": token})
    assert refused.status_code == 422 and "expired" in refused.get_json()["detail"]
    checked = client.post("/api/v1/decisions/verify", json={"token": token, "accept_expired": True})
    assert checked.status_code == 200, checked.get_json()
    assert checked.get_json()["expired"] is True
    # Still every other check: an altered expired token is refused all the same.
    flipped = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    altered = client.post(
        "/api/v1/decisions/verify", json={"token": flipped, "accept_expired": True}
    )
    assert altered.status_code == 422 and "altered" in altered.get_json()["detail"]


def test_the_default_token_lifetime_is_short():
    assert Settings.model_fields["decision_token_ttl"].default == 15 * 60


def test_verify_and_status_are_in_the_openapi_document_as_public(api):
    document = api.client().get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/api/v1/decisions/verify"]["post"]
    assert operation["security"] == []
    assert {"200", "422", "429"} <= set(operation["responses"])
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    verify_result = document["components"]["schemas"][answer.rsplit("/", 1)[1]]
    assert {"status", "grants", "expired"} <= set(verify_result["properties"])
    status = document["paths"]["/api/v1/decisions/{token_ref}/status"]["get"]
    assert status["security"] == []
    assert {"200", "404", "429"} <= set(status["responses"])
    schema = status["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    decision_status = document["components"]["schemas"][schema.rsplit("/", 1)[1]]
    assert decision_status["additionalProperties"] is False
    assert decision_status["properties"]["status"]
    standings = document["components"]["schemas"]["DecisionStanding"]["enum"]
    assert standings == ["valid", "superseded", "consent_withdrawn", "consent_expired"]


def test_a_recorded_decision_carries_its_token_and_label(api):
    """`pipeline.record` signs in the transaction that writes the Decision; the job shows the
    token and, for an allowed job, the AIGC label whose ReservedCode1 is the token's SHA-256."""
    client = api.client()
    body, content_type = encode_multipart_formdata(
        [("operation", "face_swap"), ("source", ("a.jpg", b"not decoded here"))]
    )
    submitted = client.post(
        "/api/v1/jobs", data=body, content_type=content_type, headers=api.auth()
    ).get_json()
    job_id = submitted["id"]
    assert submitted["token"] is None and submitted["label"] is None
    with api.app.app_context(), db.unit_of_work() as s, factories.bound(s):
        subject = factories.SubjectFactory(user=factories.UserFactory(email="t@example.org"))
        subject_id, public_id = subject.id, subject.public_id
    _, grant_id = allow_job(api.app, job_id, subject_id)
    with api.app.app_context():
        stored = db.session().get(Decision, job_id)
        provider_id = gate.get_job(db.session(), _provider(api), job_id).provider_id
    job = client.get(f"/api/v1/jobs/{job_id}", headers=api.auth()).get_json()
    assert job["decision"] == "allow"
    assert job["token"] == stored.token
    claims, _ = tokens.verify_token(
        job["token"], tokens.keys_from_jwks(_jwks(client)), audience=provider_id
    )
    assert claims["sub"] == job_id and claims["jti"] == stored.jti
    assert claims["operation"] == "face_swap" and claims["decision"] == "allow"
    assert claims["media"] == [
        {"position": 0, "role": "source", "sha256": job["media"][0]["sha256"]}
    ]
    assert claims["findings"] == [
        {
            "media": 0,
            "role": "source",
            "outcome": "consented",
            "subject_ref": job["findings"][0]["subject_ref"],
            "grant_id": grant_id,
            "grant_version": 1,
            "assurance": None,  # a subject made here, with nothing enrolled: no level
        }
    ]
    assert claims["assurance_required"] is None
    assert public_id not in job["token"]
    assert job["label"] == {
        "AIGC": {
            "Label": "1",
            "ContentProducer": "Acme",
            "ProduceID": job_id,
            "ReservedCode1": hashlib.sha256(stored.token.encode()).hexdigest(),
            "ContentPropagator": "",
            "PropagateID": "",
            "ReservedCode2": "",
        }
    }

    # Its status: valid, by the verify endpoint and by the public status URL (jti or SHA-256).
    verified = client.post("/api/v1/decisions/verify", json={"token": job["token"]}).get_json()
    assert verified["status"]["status"] == "valid" and verified["status"]["jti"] == stored.jti
    assert verified["grants"] == [
        {
            "grant_id": grant_id,
            "version": 1,
            "current_version": 1,
            "status": "active",
            "since": None,
        }
    ]
    digest = hashlib.sha256(job["token"].encode()).hexdigest()
    for ref in (stored.jti, digest):
        answer = client.get(f"/api/v1/decisions/{ref}/status")
        assert answer.status_code == 200 and answer.get_json()["status"] == "valid"
        assert answer.headers["Cache-Control"].startswith("public")
    # The person revokes: the same token now reads consent_withdrawn, since the revocation.
    with api.app.app_context(), db.unit_of_work() as s:
        revoked = consent.revoke(
            s, services().audit_key, subject_id, grant_id, consent.Evidence("t", "t")
        )
        revoked_at = as_utc(revoked.created_at)
    public = client.get(f"/api/v1/decisions/{stored.jti}/status").get_json()
    assert public["status"] == "consent_withdrawn"
    assert datetime.fromisoformat(public["since"]) == revoked_at
    for private in (job_id, provider_id, grant_id, job["findings"][0]["subject_ref"]):
        assert private not in json.dumps(public)
    verified = client.post("/api/v1/decisions/verify", json={"token": job["token"]}).get_json()
    assert verified["status"]["status"] == "consent_withdrawn"
    assert [(g["grant_id"], g["status"], g["current_version"]) for g in verified["grants"]] == [
        (grant_id, "revoked", 2)
    ]
    assert client.get(f"/api/v1/decisions/{'0' * 32}/status").status_code == 404


def _provider(api):
    from consent_service.providers.service import authenticate_key

    holder = authenticate_key(db.session(), api.key)
    return holder.provider if holder else None


def test_cli_rotate_then_verify_old_and_new_tokens(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSENT_SERVICE_HOME", str(tmp_path))
    first = tokens.load_keyring(Settings())
    old = tokens.DecisionSigner(first, "consent-service", timedelta(days=1))
    old_token, _ = old.sign({"aud": "p", "sub": "j"}, utcnow())
    runner = CliRunner()
    rotated = runner.invoke(main, ["tokens", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    ring = tokens.load_keyring(Settings())
    assert len(ring.keys) == 2 and ring.signer(utcnow()).kid != first.keys[0].kid
    checked = runner.invoke(main, ["tokens", "verify", old_token, "--audience", "p"])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output)["claims"]["sub"] == "j"
    new_signer = tokens.DecisionSigner(ring, "consent-service", timedelta(days=1))
    new_token, _ = new_signer.sign({"aud": "p", "sub": "k"}, utcnow())
    checked = runner.invoke(main, ["tokens", "verify", new_token])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output)["kid"] == ring.keys[1].kid
    altered = old_token[:-3] + ("A" if old_token[-3] != "A" else "B") + old_token[-2:]
    refused = runner.invoke(main, ["tokens", "verify", altered])
    assert refused.exit_code == 1
    wrong = runner.invoke(main, ["tokens", "verify", old_token, "--audience", "q"])
    assert wrong.exit_code == 1 and "another audience" in wrong.output
    stale, _ = new_signer.sign({"aud": "p", "sub": "s"}, utcnow() - timedelta(days=2))
    expired = runner.invoke(main, ["tokens", "verify", stale])
    assert expired.exit_code == 1 and "expired" in expired.output
    accepted = runner.invoke(main, ["tokens", "verify", stale, "--accept-expired"])
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.output)["claims"]["sub"] == "s"


def test_cli_verify_against_a_servers_jwks(api, tmp_path, monkeypatch):
    """`--url`: the keys come from the server, not from local configuration (none here)."""
    import threading

    from werkzeug.serving import make_server

    monkeypatch.setenv("CONSENT_SERVICE_HOME", str(tmp_path))  # an empty home: no local keys
    token = _sign(api)
    server = make_server("127.0.0.1", 0, api.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        runner = CliRunner()
        offline = runner.invoke(main, ["tokens", "verify", token])
        assert offline.exit_code != 0 and "--url" in offline.output
        online = runner.invoke(main, ["tokens", "verify", token, "--url", url, "--audience", "p1"])
        assert online.exit_code == 0, online.output
        assert json.loads(online.output)["claims"]["sub"] == "j1"
        forged = _sign_with_a_stranger_key(api)
        refused = runner.invoke(main, ["tokens", "verify", forged, "--url", url])
        assert refused.exit_code == 1 and "Unknown key id" in refused.output
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _sign_with_a_stranger_key(api) -> str:
    stranger = tokens.KeyRing((tokens.generate_key(),))
    return tokens.DecisionSigner(stranger, "consent-service", timedelta(days=1)).sign(
        {"aud": "p1", "sub": "j1"}, utcnow()
    )[0]
