"""A production worker refuses to start without the keys it signs with, naming each."""

from __future__ import annotations

import pytest

from consent_service.audit.checkpoints import new_key_text
from consent_service.keys.startup import MissingWorkerKeys, require_worker_keys
from consent_service.settings import Settings
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
