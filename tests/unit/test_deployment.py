"""docker-compose.yml: web and workers reach the media through the database, not a shared
volume, so they may run on different hosts."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_web_and_workers_share_no_volume():
    services = _services()
    app = ("web", "worker", "webhooks", "beat", "migrate")
    mounted = {name: {v.split(":")[0] for v in services[name].get("volumes", [])} for name in app}
    assert mounted["web"] == set()
    for worker in ("worker", "webhooks", "beat"):
        assert not mounted["web"] & mounted[worker]
    # The only volume of the worker is its own audit checkpoint file's.
    assert mounted["worker"] == {"checkpoints"}


def test_media_wait_in_the_database():
    for name in ("web", "worker", "webhooks", "beat"):
        env = _services()[name]["environment"]
        assert env["MEDIA_STORE"].startswith("${MEDIA_STORE:-database}")
        assert env["DATABASE_URL"].startswith("postgresql")


def test_only_the_signing_processes_get_the_signing_keys():
    services = _services()
    web = services["web"]
    assert web["command"][-1] == "consent_service.app:create_web_app()"
    assert {"DECISION_PUBLIC_KEYS", "AUDIT_CHECKPOINT_PUBLIC_KEYS"} <= set(web["environment"])
    assert not {"DECISION_SIGNING_KEYS", "AUDIT_CHECKPOINT_KEY"} & set(web["environment"])
    for name in ("worker", "webhooks", "beat"):
        env = services[name]["environment"]
        assert {"DECISION_SIGNING_KEYS", "AUDIT_CHECKPOINT_KEY"} <= set(env), name
    assert not {"DECISION_SIGNING_KEYS", "AUDIT_CHECKPOINT_KEY"} & set(
        services["migrate"]["environment"]
    )
