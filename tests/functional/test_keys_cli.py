"""`consent-service keys rotate <purpose>` through the real CLI and app: the JWKS publishes the
old and the new decision key during the overlap, checkpoints signed before a rotation keep
verifying, and the audit log verifies across every rotation."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from click.testing import CliRunner

from consent_service.audit.checkpoints import VerifierKey, parse_note
from consent_service.cli import main
from consent_service.keyring import SYMMETRIC
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from consent_service.tokens.service import keys_from_jwks, verify_token

REFRESH = 0.2


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app(keyring_refresh_interval=REFRESH)


def run(site, *args: str):
    env = {
        "CONSENT_SERVICE_HOME": str(site.settings.home),
        "BROKER_URL": "memory://",
        "KEYRING_REFRESH_INTERVAL": str(REFRESH),
    }
    return CliRunner().invoke(main, list(args), env=env)


def _token(site, when: datetime | None = None) -> str:
    with site.app.app_context():
        return services().decision_signer.sign({"aud": "p1", "sub": "j1"}, when or utcnow())[0]


def test_decision_key_rotation_publishes_both_keys_and_old_tokens_keep_verifying(site):
    client = site.client()
    before = client.get("/.well-known/jwks.json").get_json()
    started = utcnow()
    old_token = _token(site, started)

    result = run(site, "keys", "rotate", "decision-signing")
    assert result.exit_code == 0, result.output
    jwks = client.get("/.well-known/jwks.json").get_json()  # no restart: the file is re-read
    kids = [k["kid"] for k in jwks["keys"]]
    assert len(kids) == len(before["keys"]) + 1
    assert kids[:-1] == [k["kid"] for k in before["keys"]]
    published = keys_from_jwks(jwks)
    _, kid = verify_token(old_token, published, audience="p1")
    assert kid == kids[0]
    # The new key is published at once and signs only once every process has read it (two
    # refresh periods and a second after the rotation): until then the old key signs.
    stored = json.loads((site.settings.home / "decision-keys.json").read_text())["keys"][-1]
    due = stored["nbf"]
    assert due >= started.timestamp() + 2 * REFRESH + 1  # rounded up to whole seconds
    assert verify_token(_token(site, started), published, audience="p1")[1] == kids[0]
    time.sleep(max(0.0, due - time.time()) + 0.1)
    assert verify_token(_token(site), published, audience="p1")[1] == kids[-1]


def test_checkpoints_signed_before_a_rotation_keep_verifying(site):
    assert run(site, "operators", "add", "first@example.org").exit_code == 0
    first = run(site, "audit", "checkpoint", "--force")
    assert first.exit_code == 0, first.output
    result = run(site, "keys", "rotate", "checkpoint-signing")
    assert result.exit_code == 0, result.output
    keys = run(site, "audit", "public-key").output.split()
    assert len(keys) == 2
    second = run(site, "audit", "checkpoint", "--force")
    assert second.exit_code == 0, second.output
    old_key, new_key = (VerifierKey.parse(k) for k in keys)
    parse_note(first.output, [old_key])
    parse_note(second.output, [new_key])  # signed by the new key
    verified = run(site, "audit", "verify")
    assert verified.exit_code == 0, verified.output


def test_every_symmetric_purpose_rotates_and_the_log_still_verifies(site):
    for purpose in SYMMETRIC:
        result = run(site, "keys", "rotate", purpose.value)
        assert result.exit_code == 0, (purpose, result.output)
        assert f"{purpose.value}: now " in result.output
    listed = run(site, "keys", "list")
    assert listed.exit_code == 0, listed.output
    for purpose in SYMMETRIC:
        line = next(x for x in listed.output.splitlines() if x.startswith(purpose.value))
        assert line.count(",") >= 1  # two versions at least: the first and the rotated one
    verified = run(site, "audit", "verify")
    assert verified.exit_code == 0, verified.output


def test_rotating_again_while_a_kek_rotation_is_unfinished_resumes_it(site):
    # A finished rotation leaves nothing open: the next one adds a version.
    first = run(site, "keys", "rotate", "template-kek")
    second = run(site, "keys", "rotate", "template-kek")
    assert first.exit_code == second.exit_code == 0
    assert "resumed" not in second.output
    assert (
        first.output.split("now ")[1].split(";")[0] != second.output.split("now ")[1].split(";")[0]
    )
