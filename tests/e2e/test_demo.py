"""`consent-service demo` as a newcomer runs it: embedded SQLite database and broker, a real
worker, the HTTP API, real photos."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
