"""A production worker refuses to start without the keys it signs with, naming each."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys

import pytest

from consent_service.audit.checkpoints import add_checkpoint_key, new_key_text, verifiers_file_for
from consent_service.keys.startup import MissingWorkerKeys, require_worker_keys
from consent_service.settings import Settings
from consent_service.tokens import service as tokens
from consent_service.tokens.service import KeyRing, generate_key


def production(tmp_path, **values) -> Settings:
    return Settings(consent_service_env="production", consent_service_home=tmp_path, **values)


def test_a_production_worker_without_signing_keys_names_both(tmp_path):
    with pytest.raises(MissingWorkerKeys) as caught:
        require_worker_keys(production(tmp_path))
    assert "AUDIT_CHECKPOINT_KEY" in str(caught.value)
    assert "DECISION_SIGNING_KEYS" in str(caught.value)


def test_a_production_worker_without_the_checkpoint_key_names_it(tmp_path):
    decision_keys = KeyRing((generate_key(),)).to_json(indent=None)
    with pytest.raises(MissingWorkerKeys) as caught:
        require_worker_keys(production(tmp_path, decision_signing_keys=decision_keys))
    assert "AUDIT_CHECKPOINT_KEY" in str(caught.value)
    assert "DECISION_SIGNING_KEYS" not in str(caught.value)


def test_a_production_worker_with_both_keys_starts(tmp_path):
    decision_keys = KeyRing((generate_key(),)).to_json(indent=None)
    settings = production(
        tmp_path, decision_signing_keys=decision_keys, audit_checkpoint_key=new_key_text()
    )
    require_worker_keys(settings)
    assert not any(tmp_path.iterdir())  # nothing generated in production


def test_a_gallery_shard_s_worker_starts_with_the_public_keys_only(tmp_path):
    """`workers.celery_app` in production: a shard's worker (GALLERY_SHARD set) signs nothing,
    so it starts with the public keys as the web does; any other worker refuses without the
    private ones."""
    keys = tmp_path / "keys"
    keys.mkdir()
    decisions = keys / "decision-keys.json"
    tokens.save_keyring(decisions, KeyRing((generate_key(),)))
    checkpoints = keys / "audit-checkpoint.key"
    add_checkpoint_key(checkpoints, "consent.example.org/audit")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONSENT_")},
        "CONSENT_SERVICE_ENV": "production",
        "CONSENT_SERVICE_HOME": str(tmp_path / "home"),
        "SECRET_KEY": secrets.token_urlsafe(32),
        "TEMPLATE_KEK": base64.b64encode(secrets.token_bytes(32)).decode(),
        "DECISION_PUBLIC_KEYS": str(tokens.public_file_for(decisions)),
        "AUDIT_CHECKPOINT_PUBLIC_KEYS": str(verifiers_file_for(checkpoints)),
        "GALLERY_SHARDS": "2",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    for name in ("DECISION_SIGNING_KEYS", "AUDIT_CHECKPOINT_KEY", "GALLERY_SHARD", "DATABASE_URL"):
        env.pop(name, None)
    load = [sys.executable, "-c", "import workers.celery_app"]
    shard = subprocess.run(
        load, env={**env, "GALLERY_SHARD": "0"}, capture_output=True, timeout=120
    )
    assert shard.returncode == 0, shard.stderr.decode()[-2000:]
    worker = subprocess.run(load, env=env, capture_output=True, timeout=120)
    assert worker.returncode != 0 and b"signing keys" in worker.stderr
