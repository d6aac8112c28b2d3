"""GET /metrics on a real app: the Prometheus text format (parsed by prometheus_client's own
parser), open in development, a bearer token in production (404 until one is set), and the
request id echoed and logged as JSON in production."""

from __future__ import annotations

import base64
import io
import json
import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from consent_service import db
from consent_service.app import create_web_app
from consent_service.audit.checkpoints import SignerKey
from consent_service.gate.service import Upload, submit_job
from consent_service.migrate import upgrade
from consent_service.observability import logs
from consent_service.providers.models import Provider
from consent_service.runtime import services
from consent_service.settings import InsecureSettings, Settings
from consent_service.tokens import service as tokens
from consent_service.vocabulary import Operation, Role

TOKEN = secrets.token_urlsafe(24)


def _families(body: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(body)}


def test_development_serves_every_family_to_anyone(make_api_app):
    api = make_api_app()
    picture = io.BytesIO()
    Image.new("RGB", (64, 64)).save(picture, "PNG")
    with api.app.app_context(), db.unit_of_work() as s:
        provider = s.exec(select(Provider)).first()
        upload = Upload(Role.SOURCE, "a.png", picture.getvalue())
        submit_job(s, services().media_store, provider, Operation.FACE_SWAP, [upload])
    answer = api.client().get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    families = _families(answer.get_data(as_text=True))
    assert {
        "consent_gate_jobs",
        "consent_gate_decisions",
        "consent_gate_decision_reasons",
        "consent_gate_decision_latency_seconds",
        "consent_queue_depth",
        "consent_gallery_templates",
        "consent_gallery_subjects",
        "consent_gallery_version",
        "consent_gallery_snapshot_lag",
        "consent_webhook_deliveries",
        "consent_webhook_failed_attempts",
    } <= set(families)
    queued = [s for s in families["consent_gate_jobs"].samples if s.labels == {"status": "queued"}]
    assert [s.value for s in queued] == [1.0]
    assert families["consent_gate_decision_latency_seconds"].type == "histogram"
    openmetrics = api.client().get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    body = openmetrics.get_data(as_text=True)
    assert body.endswith("# EOF\n")
    assert "# TYPE consent_gate_decision_latency_seconds gaugehistogram" in body


def test_a_token_when_set_is_required_and_compared_whole(make_api_app):
    client = make_api_app(metrics_token=TOKEN).client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics").headers["WWW-Authenticate"].startswith("Bearer")
    for wrong in (f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN, "Bearer ünïcode"):
        assert client.get("/metrics", headers={"Authorization": wrong}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # An empty METRICS_TOKEN is no token: open in development, as without one.
    assert make_api_app(metrics_token="").client().get("/metrics").status_code == 200


@pytest.fixture
def production(tmp_path):
    """`production(**settings)`: the web server's app (public keys only), production settings."""
    apps = []
    ring = tokens.KeyRing((tokens.generate_key(),))
    verifier = SignerKey("consent.example.org/audit", Ed25519PrivateKey.generate()).verifier

    def make(**overrides):
        home = tmp_path / f"home{len(apps)}"
        settings = Settings(
            consent_service_env="production",
            consent_service_home=home,
            secret_key=secrets.token_urlsafe(32),
            template_kek=base64.b64encode(secrets.token_bytes(32)).decode(),
            broker_url="memory://",
            decision_public_keys=ring.public().to_json(indent=None),
            audit_checkpoint_public_keys=verifier.vkey(),
            **overrides,
        )
        home.mkdir()
        upgrade(settings.sqlalchemy_url)
        app = create_web_app(settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["db_engine"].dispose()
    logs.configure(Settings(consent_service_home=tmp_path))  # the JSON handler removed


def test_production_hides_metrics_until_a_token_is_chosen(production):
    assert production().test_client().get("/metrics").status_code == 404
    client = production(metrics_token=TOKEN).test_client()
    assert client.get("/metrics").status_code == 401
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and "consent_gate_jobs" in _families(
        answer.get_data(as_text=True)
    )


def test_production_refuses_a_placeholder_token(production):
    with pytest.raises(InsecureSettings, match="METRICS_TOKEN"):
        production(metrics_token="change-me")


def test_production_logs_each_request_as_json_with_its_id(production, capsys):
    client = production(metrics_token=TOKEN).test_client()
    capsys.readouterr()
    answer = client.get("/metrics", headers={"X-Request-ID": "req-42"})
    assert answer.headers["X-Request-ID"] == "req-42"
    made = client.get("/metrics", headers={"X-Request-ID": 'bad id {"x"}'}).headers["X-Request-ID"]
    assert len(made) == 32 and made != 'bad id {"x"}'
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    requests = [line for line in lines if line["logger"] == "consent_service.requests"]
    assert [(r["request_id"], r["route"], r["status"]) for r in requests] == [
        ("req-42", "/metrics", 401),
        (made, "/metrics", 401),
    ]
    assert {"timestamp", "level", "message", "duration_ms", "endpoint"} <= set(requests[0])
