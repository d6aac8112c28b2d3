"""Test plumbing shared by every suite: real sample media, throwaway PostgreSQL databases."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
from PIL import Image
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from consent_service.client import SignatureError, verify_signature


@contextmanager
def serve(app) -> Iterator[str]:
    """The app over real HTTP (Chromium, the client, `label read` reach it so); yields its
    base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


# --- a provider's webhook receiver -------------------------------------------------------------
# Webhook retries a second apart (the defaults: 30 s, doubling, a sweep every 15 s); but a generous
# time for each attempt: an attempt that times out on a busy machine after the receiver answered
# is sent again (delivery is at least once), and the tests and benches that use these count the
# POSTs.
FAST_WEBHOOK_RETRIES = {
    "WEBHOOK_RETRY_BASE": "1",
    "WEBHOOK_SWEEP_INTERVAL": "1",
    "WEBHOOK_TIMEOUT": "30",
    "WEBHOOK_DEADLINE": "30",
}


@dataclass
class Receiver:
    """A provider's endpoint, as the README tells a provider to write one: checks each delivery's
    signature over the raw body (`verify_signature`); answers 500 to the first POST of each event
    type listed in `fail_first`, 200 afterwards, 401 to bad signatures. Records every POST (with
    the address it came from and when), and hands each record to `announce` if set."""

    url: str = ""
    secret: str = ""
    fail_first: set[str] = field(default_factory=set)
    # {"body", "delivery", "verified", "answered", "path", "peer", "at" (Unix time)}
    received: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    announce: Callable[[dict], None] | None = None

    def handle(self, headers, body: bytes, path: str = "", peer: str = "") -> int:
        at = time.time()
        try:
            verify_signature(self.secret, headers.get("Consent-Signature"), body)
            verified = True
        except SignatureError:
            verified = False
        event = json.loads(body)
        with self.lock:
            if not verified:
                answer = 401
            elif event["type"] in self.fail_first:
                self.fail_first.discard(event["type"])
                answer = 500
            else:
                answer = 200
            record = {
                "body": event,
                "delivery": headers.get("Consent-Delivery"),
                "verified": verified,
                "answered": answer,
                "path": path,
                "peer": peer,
                "at": at,
            }
            self.received.append(record)
            if self.announce is not None:
                self.announce(record)
        return answer

    def posts(self, event_type: str, **data) -> list[dict]:
        """Every POST so far of `event_type` whose data has these values, in arrival order."""
        with self.lock:
            return [
                r
                for r in self.received
                if r["body"]["type"] == event_type
                and all(r["body"]["data"].get(k) == v for k, v in data.items())
            ]

    def wait_for(
        self, event_type: str, timeout: float = 60.0, answered: int = 200, **data
    ) -> list[dict]:
        """Every POST of `event_type` whose data has these values, once one of them was
        answered `answered` (200: accepted). The POSTs seen by then: the sender may not have
        read the answer, let alone recorded it, when this returns."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            posts = self.posts(event_type, **data)
            if any(p["answered"] == answered for p in posts):
                return posts
            time.sleep(0.1)
        raise AssertionError(
            f"no {event_type} {data} answered {answered} within {timeout} s: {self.received}"
        )


@contextmanager
def serving(
    path: str, host: str = "127.0.0.1", port: int = 0, receiver: Receiver | None = None
) -> Iterator[Receiver]:
    """A Receiver (`receiver`, or a new one) behind a real HTTP server on `host`:`port` (any
    free port by default), at `path`."""
    rec = receiver or Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            answer = rec.handle(self.headers, body, self.path, self.client_address[0])
            self.send_response(answer)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rec.url = f"http://{host}:{server.server_address[1]}{path}"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
# The grant form filled in the least way that grants (a face swap of the person as target, by
# every provider), for page tests about something else than the form.
GRANT_FORM = {
    "operations": ["face_swap"],
    "roles": ["target"],
    "provider_scope": "all",
    "agree": "y",
    "notice_version": "2026-11-1",
}


def libpq_conninfo(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (`postgresql+psycopg://…`) as the conninfo psycopg and libpq
    take, password included."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards. Fails (never skips) when
    the server is not there: CI always has one."""
    admin = make_url(POSTGRES_ADMIN_URL)
    name = f"cs_test_{secrets.token_hex(6)}"
    conninfo = libpq_conninfo(POSTGRES_ADMIN_URL)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_database(owner: str = "test") -> Iterator[str]:
    """A Redis database (1-15) no other test run or bench on this machine is using, emptied
    at both ends; the claim lives in database 0, says `owner-pid-…` (what a bench's sweep of
    its own dead runs reads) and expires by itself if a run dies."""
    import redis

    claims = redis.Redis.from_url(f"{REDIS_URL}/0")
    token = f"{owner}-{os.getpid()}-{secrets.token_hex(4)}"
    for number in range(1, 16):
        if claims.set(f"consent-service-test-db:{number}", token, nx=True, ex=3 * 3600):
            break
    else:
        raise RuntimeError("all Redis test databases (1-15) are claimed by other test runs")
    url = f"{REDIS_URL}/{number}"
    redis.Redis.from_url(url).flushdb()
    try:
        yield url
    finally:
        redis.Redis.from_url(url).flushdb()
        if claims.get(f"consent-service-test-db:{number}") == token.encode():
            claims.delete(f"consent-service-test-db:{number}")
        claims.close()


def free_port() -> int:
    """A TCP port free on this machine's loopback now (the system picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float, what: str) -> None:
    """Until `process` accepts connections on the loopback's `port`; RuntimeError naming
    `what` if it exits first or takes longer than `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen within {timeout:.0f} s") from None
            time.sleep(0.2)


@contextmanager
def listening(
    argv: list[str],
    port: int,
    log: Path,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> Iterator[subprocess.Popen]:
    """`argv` started in a session of its own (its output in `log`), once it listens on the
    loopback's `port`; at the end it and whatever it started get SIGTERM, then SIGKILL after
    30 s. A server that does not start raises RuntimeError with the end of its log."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        try:
            wait_for_port(port, process, timeout, argv[0])
        except RuntimeError as failed:
            raise RuntimeError(f"{failed}:\n{log.read_text(errors='replace')[-3000:]}") from None
        yield process
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def moto_server(log: Path, launcher: tuple[str, ...] = ()) -> Iterator[str]:
    """moto's S3-compatible server (the dev extra's `moto[server]`, a registry package) in a
    process of its own on this machine's loopback, its output in `log`; yields its URL.
    `launcher` goes before its command line (`setpriv --pdeathsig KILL`: it dies with us)."""
    port = free_port()
    argv = [*launcher, sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with listening(argv, port, log):
        yield f"http://127.0.0.1:{port}"


def side_by_side(out: Path, *images: Path, height: int = 400) -> Path:
    """One picture made of several real photos, each scaled to the same height."""
    parts = []
    for path in images:
        img = Image.open(path).convert("RGB")
        parts.append(img.resize((round(img.width * height / img.height), height)))
    canvas = Image.new("RGB", (sum(p.width for p in parts) + 40 * len(parts), height), "white")
    x = 0
    for p in parts:
        canvas.paste(p, (x, 0))
        x += p.width + 40
    canvas.save(out, quality=92)
    return out


def shard_face_jobs(
    photos: dict[str, Path], strangers: list[Path], folder: Path
) -> list[tuple[str, dict[str, list[Path]]]]:
    """The gallery-shard runs' face jobs (tests/e2e/test_gallery_shard_workers.py,
    bench/multihost.py): matches in either shard, two people of two shards in one photo
    (`both.jpg`, made in `folder`), strangers beside an enrolled person (`mixed.jpg`), a group
    photo, an uncovered operation."""
    both = side_by_side(folder / "both.jpg", photos["obama3.jpg"], photos["biden.jpg"])
    mixed = side_by_side(folder / "mixed.jpg", photos["obama3.jpg"], strangers[1])
    return [
        ("face_swap", {"source": [photos["obama3.jpg"]]}),
        ("face_swap", {"target": [both]}),
        ("face_swap", {"source": [strangers[3]], "target": [mixed]}),
        ("face_swap", {"target": [photos["t1.jpg"]]}),
        ("face_reenactment", {"target": [photos["biden.jpg"]]}),
    ]


# The faces of the group photo t1.jpg, read off it with face_recognition's HOG detector (top,
# right, bottom, left).
T1_FACES = (
    (283, 1226, 390, 1118),
    (283, 175, 390, 67),
    (367, 832, 474, 724),
    (295, 557, 402, 450),
    (67, 999, 196, 870),
    (176, 364, 265, 275),
)


def stranger_photos(group_photo: Path, out: Path) -> list[Path]:
    """One photo per person of the group photo t1.jpg (`group_photo`), written into `out`: real
    faces nobody enrolled. Each crop keeps a generous margin so the detector finds the face
    again."""
    group = Image.open(group_photo).convert("RGB")
    paths = []
    for i, (top, right, bottom, left) in enumerate(T1_FACES):
        pad = bottom - top
        crop = group.crop(
            (
                max(0, left - pad),
                max(0, top - pad),
                min(group.width, right + pad),
                min(group.height, bottom + pad),
            )
        )
        crop = crop.resize((crop.width * 2, crop.height * 2))
        path = out / f"stranger{i}.jpg"
        crop.save(path, quality=95)
        paths.append(path)
    return paths


CSRF = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|'
    r'type="hidden" name="csrf_token" value="([^"]+)"|'
    r'name="csrf_token" value="([^"]+)"'
)


def csrf_token(html: str) -> str:
    match = CSRF.search(html)
    assert match, "form without a CSRF token"
    return next(g for g in match.groups() if g)


class Person:
    """Someone in a browser (Flask's test client): every form posted with its CSRF token."""

    def __init__(self, client):
        self.client = client

    def get(self, path: str) -> str:
        response = self.client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        return response.get_data(as_text=True)

    def post(self, path: str, data: dict, form_page: str | None = None, **kw):
        token = csrf_token(self.get(form_page or path))
        return self.client.post(path, data={**data, "csrf_token": token}, **kw)


def templates_of(session, subject_id: int) -> list:
    """The subject's biometric templates (none once the account is deleted)."""
    from sqlmodel import select

    from consent_service.biometrics.models import BiometricTemplate

    return list(
        session.exec(select(BiometricTemplate).where(BiometricTemplate.subject_id == subject_id))
    )


# --- decision tokens ---------------------------------------------------------------------------
def allow_claims(**fields) -> dict:
    """The claims of an "allow" face swap for job j1 and provider p1, one source item; `fields`
    replace `decision_claims`' arguments (`media=[]`)."""
    from consent_service.tokens.service import decision_claims

    return decision_claims(
        **{
            "job_id": "j1",
            "provider_id": "p1",
            "operation": "face_swap",
            "decision": "allow",
            "reasons": ["all_consented"],
            "media": [{"position": 0, "role": "source", "sha256": "00" * 32}],
            "findings": [],
            **fields,
        }
    )


# --- accounts: verified sign-up, invitations, two-factor sign-in ------------------------------
def _settings_of(client):
    return client.application.extensions["consent_services"].settings


def mailed_link(client, to: str, prefix: str) -> str:
    """The path of the newest link starting with `prefix` (`/verify/`, `/reset/`,
    `/invitation/`) mailed to `to` (the app's outbox folder: no SMTP in tests)."""
    return mailed_path(_settings_of(client), to, prefix)


def mailed_path(settings, to: str, prefix: str) -> str:
    """`mailed_link` for a browser test, which has the app's settings but no test client."""
    from consent_service.mail import read_outbox

    base = settings.public_url.rstrip("/")
    for mail in reversed(read_outbox(settings.mail_outbox_dir)):
        if mail["to"] == to:
            found = re.search(re.escape(base + prefix) + r"[^\s]+", mail["body"])
            if found:
                return found.group(0)[len(base) :]
    raise AssertionError(f"no {prefix} link mailed to {to}")


def sign_in(person: Person, email: str, password: str, next_path: str | None = None):
    path = "/login" + (f"?next={next_path}" if next_path else "")
    return person.post(path, {"email": email, "password": password}, form_page="/login")


def verified_sign_up(person: Person, email: str, password: str, **fields) -> Person:
    """Sign up, sign in, open the mailed verification link: an account that may enroll and
    grant, signed in."""
    response = person.post("/signup", {"email": email, "password": password, **fields})
    assert response.status_code == 302, response.status_code
    assert sign_in(person, email, password).status_code == 302
    opened = person.client.get(mailed_link(person.client, email, "/verify/"))
    assert opened.status_code == 302 and opened.headers["Location"] == "/enroll", opened.status_code
    return person


TOTP_SECRET = re.compile(r'id="totp-secret">([A-Z2-7]+)<')


def totp_code(secret: str, ahead: int = 0) -> str:
    import time

    import pyotp

    return pyotp.TOTP(secret).at(time.time() + 30 * ahead)


def set_up_two_factor(person: Person) -> str:
    """Turn on TOTP for the signed-in account; returns its secret (for later sign-ins)."""
    page = person.get("/account/two-factor")
    match = TOTP_SECRET.search(page)
    assert match, "no TOTP key on the set-up page"
    secret = match.group(1)
    response = person.post("/account/two-factor", {"code": totp_code(secret)})
    assert response.status_code == 200 and "recovery-codes" in response.get_data(as_text=True)
    return secret


def invitation_path(app, invitation) -> str:
    from consent_service.accounts.service import invitation_link

    return f"/invitation/{invitation_link(app.config['SECRET_KEY'], invitation)}"


def accept_invitation(person: Person, path: str, password: str | None = None):
    """Open an invitation's link and accept it (choosing the first password of a new account)."""
    data = {"password": password} if password else {}
    response = person.post(path, data)
    assert response.status_code == 302, response.status_code
    return response


# --- step-up: a grant or an approval waits for the person's live check -----------------------
STEP_UP_PATH = re.compile(r"/live/step-up/([0-9a-f]{32})$")


def step_up_of(response) -> str:
    """The id of the action a grant form's or an approval's answer waits on (it redirects to the
    live check's page)."""
    assert response.status_code == 302, response.status_code
    found = STEP_UP_PATH.search(response.headers["Location"])
    assert found, response.headers["Location"]
    return found.group(1)


def pass_step_up(app, response) -> dict:
    """For page tests about something else than the live check: carry out the waiting action as
    the worker does once a live check passed (tests/unit/biometrics/
    test_live_session_pipeline.py and the browser test run the check itself). Returns what it
    made ({"grant_id": ...})."""
    from consent_service import db
    from consent_service.accounts import step_up
    from consent_service.accounts.models import StepUp
    from consent_service.runtime import services

    step_up_id = step_up_of(response)
    with app.app_context():
        with db.unit_of_work() as s:
            status = step_up.carry_out(
                s,
                services().audit_key,
                step_up_id,
                {"live_session_id": None, "method": "test-step-up", "scores": {}},
            )
        with db.unit_of_work() as s:
            row = s.get(StepUp, step_up_id)
            assert row is not None and status == "done", (status, row and row.error)
            return dict(row.result)


def sign_receipts(app) -> int:
    """For page tests (no worker runs there): what the worker's `receipts.sign` does for
    every grant version whose receipt is not signed yet (tests/unit/rights/test_receipt_tasks.py
    runs the task itself). Returns how many it signed."""
    from consent_service import db
    from consent_service.consent.receipts import Controller
    from consent_service.rights import receipts
    from consent_service.runtime import services
    from consent_service.timeutil import utcnow

    with app.app_context(), db.unit_of_work() as s:
        svc = services()
        signer = svc.decision_signer
        ids = receipts.unsigned_versions(s, utcnow() + timedelta(seconds=1), 10_000)
        for grant_row_id in ids:
            receipts.sign_pending(
                s,
                grant_row_id,
                signer.keys,
                signer.issuer,
                Controller.from_settings(svc.settings),
                svc.settings.public_url,
                utcnow(),
            )
        return len(ids)


def signed_receipt(client, path: str, timeout: float = 60.0) -> dict:
    """For tests with a real worker: the content of the receipt at `path` (…/receipt.json) once
    the worker has signed it (the page answers 409 until then)."""
    import json
    import time

    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(path)
        if answer.status_code == 200:
            return json.loads(answer.data)
        assert answer.status_code == 409, answer.status_code
        assert time.monotonic() < deadline, f"{path} was not signed within {timeout} s"
        time.sleep(0.25)


def allow_job(app, job_id: str, subject_id: int | None = None) -> tuple[int, str]:
    """For API tests (no worker runs there): decide a submitted face_swap job `allow` as the
    worker would, a person (made here unless given) who granted face swaps to every provider
    found in its source; the analysis is replaced by its result, the recording is the real
    pipeline's (tests/e2e/test_gate.py runs the real worker). Returns (subject id, grant id)."""
    from consent_service import db
    from consent_service.consent import service as consent
    from consent_service.gate import pipeline
    from consent_service.gate.decisions import Analysis, PersonSeen, Signing
    from consent_service.runtime import services
    from consent_service.vocabulary import Operation, Role
    from tests import factories

    with app.app_context():
        svc = services()
        if subject_id is None:
            with db.unit_of_work() as s, factories.bound(s):
                subject_id = factories.SubjectFactory(user=factories.UserFactory()).id
        with db.unit_of_work() as s:
            grant = consent.grant(
                s,
                svc.audit_key,
                subject_id,
                consent.GrantRequest(
                    operations=[Operation.FACE_SWAP],
                    roles=[Role.SOURCE],
                    all_providers=True,
                    provider_ids=[],
                ),
                consent.Evidence(actor="test", identity_method="test"),
            )
        seen = Analysis(people=[PersonSeen(0, Role.SOURCE, (1, 2, 3, 4), subject_id, False)])
        signing = Signing(svc.audit_key, svc.decision_signer, svc.pseudonyms)
        with db.unit_of_work() as s:
            pipeline.record(s, job_id, seen, signing, svc.media_store)
        return subject_id, grant.grant_id
