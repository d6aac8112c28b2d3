"""`consent-service demo` as a newcomer runs it: embedded SQLite database and broker, a real
worker, the HTTP API, real photos."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.e2e


def test_demo_prints_allow_deny_and_needs_consent(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "consent_service.cli", "demo", "--home", str(tmp_path / "demo")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "→ allow (reasons: all_consented" in out
    assert "→ needs_consent (reasons: not_covered" in out
    assert "→ deny (reasons: revoked" in out
    assert "All decisions as expected." in out
    assert "Traceback" not in result.stderr, result.stderr  # the demo ends cleanly
    assert (tmp_path / "demo" / "broker.sqlite").exists()  # the embedded broker carried the jobs
    # It ends with a scrape of its /metrics: the three jobs, as the gate decided them.
    assert 'consent_gate_decisions{decision="needs_consent"} 1.0' in out
    scrape = (tmp_path / "demo" / "metrics.prom").read_text()
    families = {f.name: f for f in text_string_to_metric_families(scrape)}
    decided = {s.labels["decision"]: s.value for s in families["consent_gate_decisions"].samples}
    assert decided == {"allow": 1, "deny": 1, "needs_consent": 1}
    reasons = {
        (s.labels["decision"], s.labels["reason"]): s.value
        for s in families["consent_gate_decision_reasons"].samples
    }
    assert reasons == {
        ("allow", "all_consented"): 1,
        ("needs_consent", "not_covered"): 1,
        ("deny", "revoked"): 1,
    }
    latency = families["consent_gate_decision_latency_seconds"].samples
    assert [s.value for s in latency if s.labels.get("le") == "+Inf"] == [3]
