"""The web process never loads the voice model: torch, Resemblyzer, PyAV and webrtcvad are
imported by workers only, on first use."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "resemblyzer", "av", "webrtcvad")


def test_the_web_app_and_its_voice_pages_import_no_voice_model(tmp_path):
    code = (
        "import sys\n"
        "from consent_service.app import create_app\n"
        "from consent_service.settings import Settings\n"
        "import consent_service.biometrics.views, consent_service.gate.service\n"
        "import consent_service.biometrics.voice_service, consent_service.services\n"
        f"app = create_app(Settings(consent_service_home={str(tmp_path)!r}))\n"
        "from consent_service.runtime import services\n"
        "with app.app_context():\n"
        "    services().voice_matching\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
