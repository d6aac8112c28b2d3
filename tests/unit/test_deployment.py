"""docker-compose.yml and deploy/Caddyfile, checked in CI: Caddy (TLS) is the only way in, the
web trusts exactly that one proxy, every long-running service has a health check, mail goes to
an SMTP service, no secret has a default, and web and workers reach the media through the
database, not a shared volume, so they may run on different hosts.

The structure is read from the YAML itself; Debian's `docker-compose` validates the file
(`docker-compose config`) and `caddy` the Caddyfile (`make test` installs both; without them
those two tests fail, never skip)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
# The settings compose refuses to run without (`${NAME:?...}`).
REQUIRED = (
    "AUDIT_CHECKPOINT_KEY",
    "AUDIT_CHECKPOINT_PUBLIC_KEYS",
    "DECISION_PUBLIC_KEYS",
    "DECISION_SIGNING_KEYS",
    "POSTGRES_PASSWORD",
    "SECRET_KEY",
    "TEMPLATE_KEK",
)
APP = ("web", "worker", "webhooks", "beat", "migrate")
ONE_SHOT = {"migrate", "minio-bucket"}  # waited for by service_completed_successfully


def _services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _compose_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED}
    return {**env, **{name: "x" for name in REQUIRED}}


def test_every_pulled_image_names_a_version():
    """A `latest` (or untagged) image changes under a deployment without a commit: each pulled
    image names its release line (the web and workers run the image built from this tree)."""
    for name, service in _services().items():
        image = service.get("image", "")
        if "build" in service or not image:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {image}"


def test_every_long_running_service_has_a_health_check():
    services = _services()
    assert {"caddy", "web", "worker", "webhooks", "beat", "postgres", "redis", "mailpit"} <= set(
        services
    )
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
            continue
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no health check"
        assert service.get("restart") == "unless-stopped", name


def test_the_workers_answer_a_ping_to_their_own_node_and_the_web_its_health_endpoint():
    services = _services()
    for name in ("worker", "webhooks"):
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert "inspect ping" in probe and "celery@$$HOSTNAME" in probe, name
    assert "http://127.0.0.1:8000/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "celerybeat-schedule" in " ".join(services["beat"]["healthcheck"]["test"])
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]


def test_caddy_is_the_only_way_in_and_the_web_trusts_exactly_it():
    services = _services()
    caddy, web = services["caddy"], services["web"]
    assert sorted(caddy["ports"]) == ["443:443", "80:80"]
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert caddy["environment"]["UPSTREAM"] == "web:8000"
    assert caddy["environment"]["CADDY_TLS"] == "${CADDY_TLS:-internal}"  # a local certificate
    assert caddy["depends_on"]["web"] == {"condition": "service_healthy"}
    assert "ports" not in web and web["expose"] == ["8000"]
    assert web["environment"]["PROXY_HOPS"] == 1
    for name in APP:
        assert "PROXY_HOPS" not in services[name]["environment"] or name == "web"
    # Nothing else is reachable from outside the host; Mailpit's pages from the host alone.
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"caddy", "mailpit"}
    assert all(p.startswith("127.0.0.1:") for p in services["mailpit"]["ports"])


def test_production_settings_with_no_secret_defaults():
    services = _services()
    for name in APP:
        env = services[name]["environment"]
        assert env["CONSENT_SERVICE_ENV"] == "production"
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")
        assert env["TEMPLATE_KEK"].startswith("${TEMPLATE_KEK:?")
        assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"]
        assert env["PUBLIC_URL"].startswith("${PUBLIC_URL:-https://")
    postgres = services["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_mail_goes_to_the_smtp_service():
    services = _services()
    for name in APP:
        env = services[name]["environment"]
        assert env["SMTP_HOST"] == "${SMTP_HOST:-mailpit}"
        assert env["SMTP_PORT"] == "${SMTP_PORT:-1025}"
        assert env["SMTP_STARTTLS"] == "${SMTP_STARTTLS:-false}"  # Mailpit speaks plain SMTP
    assert services["migrate"]["depends_on"]["mailpit"] == {"condition": "service_healthy"}


def test_minio_serves_the_s3_media_store_on_request():
    services = _services()
    assert services["minio"]["profiles"] == ["s3"]
    assert services["minio-bucket"]["profiles"] == ["s3"]
    env = services["web"]["environment"]
    assert env["MEDIA_S3_ENDPOINT_URL"] == "${MEDIA_S3_ENDPOINT_URL-http://minio:9000}"
    assert env["MEDIA_S3_BUCKET"] in services["minio-bucket"]["command"][-1]


def test_the_caddyfile_proxies_to_the_web_with_a_local_certificate_by_default():
    text = CADDYFILE.read_text()
    assert "{$SITE_ADDRESS:localhost}" in text
    assert "tls {$CADDY_TLS:internal}" in text
    assert "reverse_proxy {$UPSTREAM:web:8000}" in text
    assert "skip_install_trust" in text
    assert not re.search(r"^\s*encode\b", text, re.M)  # BREACH: no compression of pages


def _installed(command: str) -> str:
    """The tool's path; `make test` installs it (Debian's package of the same name), so a
    missing one fails here rather than skipping the check unseen."""
    path = shutil.which(command)
    assert path, f"{command} is not installed: apt-get install {command} (make test does)"
    return path


def test_caddy_reads_the_caddyfile():
    _installed("caddy")
    adapted = subprocess.run(
        ["caddy", "adapt", "--config", str(CADDYFILE)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "SITE_ADDRESS": "consent.example.org", "CADDY_TLS": "ops@example.org"},
    )
    config = json.loads(adapted.stdout)
    server = next(iter(config["apps"]["http"]["servers"].values()))
    assert server["routes"][0]["match"] == [{"host": ["consent.example.org"]}]
    assert "web:8000" in adapted.stdout
    policy = config["apps"]["tls"]["automation"]["policies"][0]
    assert {i["module"] for i in policy["issuers"]} >= {"acme"}  # a public name: ACME


def test_docker_compose_accepts_the_file_and_refuses_it_without_a_secret():
    _installed("docker-compose")
    command = ["docker-compose", "-f", str(COMPOSE)]
    ok = subprocess.run(
        [*command, "--profile", "s3", "config", "-q"], env=_compose_env(), capture_output=True
    )
    assert ok.returncode == 0, ok.stderr.decode()
    env = _compose_env()
    del env["SECRET_KEY"]
    refused = subprocess.run([*command, "config", "-q"], env=env, capture_output=True)
    assert refused.returncode != 0
    assert b"set SECRET_KEY" in refused.stderr


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
    assert web["command"][-1] == "consent_service.app:create_web_app"
    assert {"DECISION_PUBLIC_KEYS", "AUDIT_CHECKPOINT_PUBLIC_KEYS"} <= set(web["environment"])
    assert not {"DECISION_SIGNING_KEYS", "AUDIT_CHECKPOINT_KEY"} & set(web["environment"])
    for name in ("worker", "webhooks", "beat"):
        env = services[name]["environment"]
        assert {"DECISION_SIGNING_KEYS", "AUDIT_CHECKPOINT_KEY"} <= set(env), name
    for name in ("gallery-shard-0", "gallery-shard-1"):  # they decrypt templates, sign nothing
        env = services[name]["environment"]
        assert {"TEMPLATE_KEK", "DECISION_PUBLIC_KEYS", "AUDIT_CHECKPOINT_PUBLIC_KEYS"} <= set(env)
        assert not {"DECISION_SIGNING_KEYS", "AUDIT_CHECKPOINT_KEY"} & set(env), name
        assert env["SECRET_KEY"] == "", name  # no session or signed link is made there
    assert not {"DECISION_SIGNING_KEYS", "AUDIT_CHECKPOINT_KEY"} & set(
        services["migrate"]["environment"]
    )


def test_the_web_runs_the_command_the_tests_and_benches_run():
    """docker-compose's and the Dockerfile's web command is `processes.web_command` (what the
    HTTPS stack test and bench/api_load.py start), so what they measure is what is deployed."""
    from consent_service.processes import web_command

    expected = ["granian", *web_command("0.0.0.0", 8000, 4)[3:]]  # noqa: S104 - in its container
    assert _services()["web"]["command"] == expected
    dockerfile = (ROOT / "Dockerfile").read_text()
    [cmd] = [line for line in dockerfile.splitlines() if line.startswith("CMD ")]
    assert json.loads(cmd[4:]) == expected


def test_the_gallery_shards_run_on_request_each_pinging_its_own_node():
    """`--profile shards`: a worker per shard of GALLERY_SHARDS=2, each health check addressed
    to the node name `processes.shard_worker_command` gives it."""
    from consent_service.processes import shard_worker_command

    services = _services()
    assert services["worker"]["environment"]["GALLERY_SHARDS"] == "${GALLERY_SHARDS:-1}"
    for k in (0, 1):
        shard = services[f"gallery-shard-{k}"]
        assert shard["profiles"] == ["shards"]
        assert shard["command"] == ["consent-service", "worker", "--shard", str(k)]
        assert shard["environment"]["GALLERY_SHARDS"] == "${GALLERY_SHARDS:-2}"
        argv = shard_worker_command(k)
        node = argv[argv.index("--hostname") + 1].replace("%h", "$$HOSTNAME")
        probe = " ".join(shard["healthcheck"]["test"])
        assert "inspect ping" in probe and f"-d {node}" in probe
