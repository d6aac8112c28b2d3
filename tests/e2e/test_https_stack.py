"""The deployment's stack brought up natively and driven through HTTPS: granian serving
`create_web_app()` with production settings (real secrets made here, PROXY_HOPS=1, public keys
only), Debian's caddy in front of it with deploy/Caddyfile (the file docker-compose mounts) and
its local certificate, and Chromium signing up, signing in and asking to grant through it.

What it shows: the Secure session cookie works over HTTPS (the finding: production's Secure
cookies failed over compose's plain HTTP), HSTS is sent, the page is a secure context (the
camera and microphone need one), plain HTTP is sent to HTTPS, and the app holds the person to
the address Caddy saw them at (a grant's evidence), not Caddy's own address nor an
X-Forwarded-For the browser made up.

Chromium reaches Caddy over IPv6 (::1) and Caddy reaches granian over IPv4 (127.0.0.1), so
the client's and the proxy's addresses differ on one machine."""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy import create_engine
from sqlmodel import Session

from consent_service.accounts.models import StepUp
from consent_service.audit.checkpoints import add_checkpoint_key, verifiers_file_for
from consent_service.migrate import upgrade
from consent_service.processes import web_command
from consent_service.tokens import service as tokens
from tests import browser
from tests.support import mailed_path

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CADDYFILE = ROOT / "deploy" / "Caddyfile"
PASSWORD = "a long enough password"
SPOOFED = "198.51.100.77"  # what the browser claims in its own X-Forwarded-For
START_TIMEOUT = 60

browser.require_chromium()


def _free_port() -> int:
    with socket.socket(socket.AF_INET6) as s:  # free on ::1 and, dual-stack, on IPv4 too
        s.bind(("::", 0))
        return s.getsockname()[1]


@dataclass
class HttpsStack:
    base_url: str  # https://[::1]:<port>, through Caddy
    http_url: str  # Caddy's plain HTTP port
    home: Path
    database_url: str
    root_ca: Path  # Caddy's local CA, which signed the site's certificate
    logs: Path
    web_env: dict[str, str]  # the web server's environment

    def tail(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.logs.glob("*.log"))
        )


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - our own command line
            command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )


def _wait_for(url: str, process: subprocess.Popen, context: ssl.SSLContext | None, logs) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"{process.args[0]} exited with {process.returncode}:\n{logs()}")
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as answer:  # noqa: S310
                if answer.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer within {START_TIMEOUT} s:\n{logs()}")
        time.sleep(0.3)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _web(port: int) -> list[str]:
    """docker-compose.yml's web command (granian), on one worker process."""
    return web_command("127.0.0.1", port, 1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[HttpsStack]:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.fail(
            "Debian's caddy is not installed (apt-get install caddy): the HTTPS stack test "
            "runs the deployment's Caddyfile with it"
        )
    tmp = tmp_path_factory.mktemp("https-stack")
    home, keys, logs = tmp / "home", tmp / "keys", tmp / "logs"
    for folder in (home, keys, logs):
        folder.mkdir()
    web_port, https_port, http_port, admin_port = (_free_port() for _ in range(4))
    base_url = f"https://[::1]:{https_port}"
    # The worker's keys, made as an operator makes them; the web gets the public halves only.
    decisions = keys / "decision-keys.json"
    tokens.save_keyring(decisions, tokens.KeyRing((tokens.generate_key(),)))
    checkpoints = keys / "audit-checkpoint.key"
    add_checkpoint_key(checkpoints, f"[::1]:{https_port}/audit")
    database_url = f"sqlite:///{home / 'consent.sqlite'}"
    upgrade(database_url)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSENT_", "SMTP_"))}
    web_env = {
        **base_env,
        "CONSENT_SERVICE_ENV": "production",
        "CONSENT_SERVICE_HOME": str(home),
        "DATABASE_URL": database_url,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "TEMPLATE_KEK": base64.b64encode(secrets.token_bytes(32)).decode(),
        "DECISION_PUBLIC_KEYS": str(tokens.public_file_for(decisions)),
        "AUDIT_CHECKPOINT_PUBLIC_KEYS": str(verifiers_file_for(checkpoints)),
        "PUBLIC_URL": base_url,
        "PROXY_HOPS": "1",
    }
    for name in ("DECISION_SIGNING_KEYS", "AUDIT_CHECKPOINT_KEY", "BROKER_URL", "PROXY_HOPS"):
        base_env.pop(name, None)
    web = _start(_web(web_port), web_env, logs / "web.log")
    caddy_env = {
        **base_env,
        "SITE_ADDRESS": "[::1]",
        "UPSTREAM": f"127.0.0.1:{web_port}",
        "CADDY_HTTPS_PORT": str(https_port),
        "CADDY_HTTP_PORT": str(http_port),
        "CADDY_ADMIN": f"localhost:{admin_port}",
        # Caddy's certificates, its local CA and its autosaved config stay in this test's folder.
        "XDG_DATA_HOME": str(tmp / "caddy-data"),
        "XDG_CONFIG_HOME": str(tmp / "caddy-config"),
        "HOME": str(tmp),
    }
    proxy = _start(
        [caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        caddy_env,
        logs / "caddy.log",
    )
    root_ca = tmp / "caddy-data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    found = HttpsStack(
        base_url, f"http://[::1]:{http_port}", home, database_url, root_ca, logs, web_env
    )
    try:
        _wait_for(f"http://127.0.0.1:{web_port}/healthz", web, None, found.tail)
        # What docker-compose's caddy health check asks: the admin endpoint.
        _wait_for(f"http://localhost:{admin_port}/config/", proxy, None, found.tail)
        deadline = time.monotonic() + START_TIMEOUT
        while not root_ca.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        # Through Caddy, the certificate checked against Caddy's own local CA for [::1].
        _wait_for(
            f"{base_url}/healthz", proxy, ssl.create_default_context(cafile=root_ca), found.tail
        )
        yield found
    finally:
        _stop(proxy)
        _stop(web)


def _step_up_evidence(stack: HttpsStack, step_up_id: str) -> dict:
    engine = create_engine(stack.database_url)
    try:
        with Session(engine) as s:
            row = s.get(StepUp, step_up_id)
            assert row is not None
            return dict(row.payload["evidence"])
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("setting", "placeholder"), [("SECRET_KEY", "change-me"), ("TEMPLATE_KEK", "x")]
)
def test_the_web_refuses_to_start_on_a_placeholder_secret(stack, setting, placeholder):
    env = {**stack.web_env, setting: placeholder}
    ran = subprocess.run(  # noqa: S603 - our own command line
        _web(_free_port()), env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert ran.returncode != 0
    assert "InsecureSettings" in ran.stderr and setting in ran.stderr, ran.stderr[-3000:]


def test_plain_http_is_sent_to_https(stack):
    request = urllib.request.Request(f"{stack.http_url}/login")  # noqa: S310 - http only
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(request, timeout=10)
    caught.value.close()
    assert caught.value.code in (301, 308)
    assert caught.value.headers["Location"].startswith("https://")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_a_person_signs_up_signs_in_and_grants_through_https(stack, tmp_path):
    base = stack.base_url
    email = "https-person@example.org"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(browser.CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic"],
        )
        try:
            # Caddy's local CA is trusted by no browser; everything else is real HTTPS.
            context = chromium.new_context(
                ignore_https_errors=True, extra_http_headers={"X-Forwarded-For": SPOOFED}
            )
            page = context.new_page()
            page.set_default_timeout(browser.TIMEOUT_MS)
            first = page.goto(f"{base}/signup")
            assert first is not None and first.status == 200, stack.tail()
            assert "max-age=" in first.headers["strict-transport-security"]
            # A secure context: the live check's camera and microphone are allowed to ask.
            assert page.evaluate("window.isSecureContext && !!navigator.mediaDevices")
            page.fill("input[name=email]", email)
            page.fill("input[name=display_name]", "Ada")
            page.fill("input[name=password]", PASSWORD)
            page.click("main form button[type=submit]")
            page.wait_for_url(f"{base}/login")
            page.fill("input[name=email]", email)
            page.fill("input[name=password]", PASSWORD)
            page.click("main form button[type=submit]")
            page.wait_for_url(f"{base}/")  # signed in: the Secure cookie came back over HTTPS

            session = [c for c in context.cookies(base) if c["name"] == "session"]
            assert session and session[0]["secure"] and session[0]["httpOnly"], session

            # The mailed link starts with PUBLIC_URL, the address Caddy serves.
            page.goto(base + mailed_path(_Settings(stack.home, base), email, "/verify/"))
            page.wait_for_url(f"{base}/enroll")

            page.goto(f"{base}/grants/new?modality=face")
            page.check("input[name=operations][value=face_swap]")
            page.check("input[name=roles][value=target]")
            page.check("input[name=provider_scope][value=all]")
            page.check("input[name=agree]")
            page.click("main form[action*='/grants/new'] button[type=submit]")
            page.wait_for_url(re.compile(r".*/live/step-up/[0-9a-f]{32}$"))
            browser.shot(page, "https-stack", "step-up")
            step_up_id = page.url.rsplit("/", 1)[1]
        finally:
            chromium.close()

    evidence = _step_up_evidence(stack, step_up_id)
    # The address Chromium came from, as Caddy saw it: not Caddy's 127.0.0.1, not the made-up one.
    assert evidence["ip"] == "::1", (evidence, stack.tail())


@dataclass
class _Settings:
    """What `mailed_path` reads of the web's settings: its outbox and PUBLIC_URL."""

    home: Path
    public_url: str

    @property
    def mail_outbox_dir(self) -> Path:
        return self.home / "outbox"
