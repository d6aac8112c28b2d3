"""The provider API under load: the poll (`GET /api/v1/jobs/<id>`) and the submission
(`POST /api/v1/jobs`), with wrk on loopback, on two configurations:

- `embedded`: the embedded default, as `consent-service serve` runs it (waitress, 8 threads,
  SQLite, the SQLite broker, rate limits counted in the process, the local media store; its
  worker process running beside it);
- `production`: docker-compose's web command (granian, 4 processes of 4 threads) on PostgreSQL
  (a fresh database), Redis as the broker and as the rate limits' store, the database media store.

Each configuration gets a provider, its API key and one decided job (one person found, allowed:
the answer carries a decision token and a label, the largest poll answer). The API rate limit is
set high enough never to refuse (the counting still happens on every request).

For each configuration and endpoint it prints requests/s, p50 and p99 (wrk's own latency
histogram, in ms) and the non-2xx answers:
- `max`: as many requests as wrk gets through with `--connections` connections for `--seconds`;
- `paced` (the poll only): wrk sending at the goal's 70%, 700 requests/s, on a fixed schedule
  (wrk2 is not packaged in Debian: each wrk thread's `delay()` gives every request the next free
  slot of its half of the rate, read off the monotonic clock through LuaJIT's FFI, so answers
  that come quickly do not raise the rate and slow ones do not lower it while any of the 64
  connections is free; the latency is counted from the send, so once every connection waits on
  an answer the rate falls and the p99 flatters) — the achieved rate is printed.
The last lines give the ratios to the goal measured in this run: poll requests/s / 1,000 and,
for the paced poll, 50 ms / p99 (both ≥ 1 meet the goal), and the load average seen, since the
machine may be shared.

`--profile N` instead polls in this process (Flask's test client, the embedded configuration, or
PostgreSQL and Redis with `--only production`): the CPU ms per poll over N polls, then
pyinstrument's view of N more (where the time goes).

Run: `python bench/api_load.py [--seconds 10] [--only embedded|production]` (needs `wrk`:
`apt-get install wrk`; PostgreSQL at TEST_POSTGRES_URL and Redis at TEST_REDIS_URL for the
production configuration).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.support, run as `python bench/api_load.py`
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from urllib3 import encode_multipart_formdata  # noqa: E402

from consent_service import db  # noqa: E402
from consent_service.accounts.models import Subject, User  # noqa: E402
from consent_service.app import create_app  # noqa: E402
from consent_service.consent import service as consent  # noqa: E402
from consent_service.gate import pipeline  # noqa: E402
from consent_service.gate.decisions import Analysis, PersonSeen  # noqa: E402
from consent_service.gate.tasks import signing  # noqa: E402
from consent_service.migrate import upgrade  # noqa: E402
from consent_service.processes import web_command  # noqa: E402
from consent_service.providers.service import create_provider, issue_key  # noqa: E402
from consent_service.runtime import services  # noqa: E402
from consent_service.settings import Settings  # noqa: E402
from consent_service.timeutil import utcnow  # noqa: E402
from consent_service.vocabulary import Operation, Role  # noqa: E402
from tests.support import free_port, listening, postgres_database, redis_database  # noqa: E402

INLINE = pipeline.Delivery(None, timedelta(minutes=5))  # claimed here, not by a task message

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
GOAL_RPS = 1000.0
WRK = shutil.which("wrk")
GOAL_P99_MS = 50.0
PACED_RPS = 700.0  # the goal's 70%
NEVER_LIMITED = "1000000000/minute"
NO_SIGN_IN = "-"  # the bench's person never signs in: no password hash

LUA = r"""
wrk.method = "{method}"
wrk.headers["Authorization"] = "Bearer {key}"
{extra}
{pacing}
done = function(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %.6f %.3f %.3f %d\n", summary.requests,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000, bad))
end
"""

# Each wrk thread (its own Lua state) sends at `interval` ms: every request takes the next slot
# of the thread's schedule, never one in the past (a late slot is not made up by a burst).
PACING = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} pacing_timespec;
int clock_gettime(int clock, pacing_timespec *tp);
]]
local ts = ffi.new("pacing_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local next_slot = 0
function delay()
  local now = now_ms()
  if next_slot < now then next_slot = now end
  local wait = next_slot - now
  next_slot = next_slot + {interval}
  return wait
end
"""


@dataclass(frozen=True)
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    bad: int
    load: float  # 1-minute load average at the end
    cpu_ms: float = 0.0  # the web processes' CPU time per request (user + system)

    @property
    def capacity(self) -> float:
        """Requests/s the web processes' CPU time allows on this machine's cores, were they
        idle (the database's and Redis's own CPU time not counted)."""
        return (os.cpu_count() or 1) * 1000 / self.cpu_ms if self.cpu_ms else 0.0


def prepare(settings: Settings) -> tuple[str, str]:
    """A provider's API key and one decided job of theirs (allowed, token and label)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    app.extensions["task_sender"] = lambda name, args: None  # decided here, not by a worker
    with app.app_context():
        svc = services()
        with db.unit_of_work() as s:
            key = issue_key(s, create_provider(s, "Load Studio"))
            user = User(
                email="load@example.org", password_hash=NO_SIGN_IN, email_verified_at=utcnow()
            )
            s.add(user)
            s.flush()
            subject = Subject(user_id=user.id)
            s.add(subject)
            s.flush()
            subject_id = subject.id
        with db.unit_of_work() as s:
            consent.grant(
                s,
                svc.audit_key,
                subject_id,
                consent.GrantRequest(
                    operations=[Operation.FACE_SWAP],
                    roles=[Role.SOURCE],
                    all_providers=True,
                    provider_ids=[],
                ),
                consent.Evidence(actor="bench", identity_method="bench"),
            )
        body, content_type = encode_multipart_formdata(
            [("operation", "face_swap"), ("source", ("a.jpg", secrets.token_bytes(4096)))]
        )
        answer = app.test_client().post(
            "/api/v1/jobs",
            data=body,
            content_type=content_type,
            headers={"Authorization": f"Bearer {key}"},
        )
        job_id = answer.get_json()["id"]
        with db.unit_of_work() as s:
            claimed = pipeline.claim(s, job_id, INLINE, 3, svc.audit_key, svc.media_store)
            assert isinstance(claimed, pipeline.Claim)
        person = PersonSeen(0, Role.SOURCE, (10, 60, 60, 10), subject_id, False)
        with db.unit_of_work() as s:
            pipeline.record(s, job_id, Analysis([person]), signing(svc), svc.media_store)
    app.extensions["db_engine"].dispose()
    return key, job_id


def web_cpu_seconds(pid: int, children: bool) -> float:
    """User + system CPU seconds of process `pid` and, with `children`, of its children (the
    granian workers); from /proc, so the figure does not depend on the machine's load."""
    tick = os.sysconf("SC_CLK_TCK")

    def stat(p: str) -> list[str]:
        with open(f"/proc/{p}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()

    total = 0.0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            fields = stat(p)  # fields[1] is the parent's pid, [11] utime, [12] stime
        except OSError:
            continue
        if int(p) == pid or (children and int(fields[1]) == pid):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def wrk(
    url: str,
    key: str,
    seconds: int,
    connections: int,
    script_dir: Path,
    *,
    post_body: tuple[bytes, str] | None = None,
    rate: float | None = None,
) -> Figures:
    """wrk against `url` for `seconds`: as fast as `connections` go, or at `rate` requests/s."""
    extra = ""
    if post_body is not None:
        body, content_type = post_body
        (script_dir / "body.bin").write_bytes(body)
        extra = (
            f'wrk.headers["Content-Type"] = "{content_type}"\n'
            f'local f = io.open("{script_dir / "body.bin"}", "rb")\n'
            'wrk.body = f:read("*all")\nf:close()\n'
        )
    threads = min(2, connections)
    pacing = "" if rate is None else PACING.format(interval=1000 * threads / rate)
    script = script_dir / "load.lua"
    script.write_text(
        LUA.format(method="POST" if post_body else "GET", key=key, extra=extra, pacing=pacing)
    )
    out = subprocess.run(
        [
            WRK,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    n, duration, p50, p99, bad = line.split()[1:]
    if int(n) == 0:
        raise SystemExit(f"wrk got no answer from {url}")
    return Figures(int(n) / float(duration), float(p50), float(p99), int(bad), os.getloadavg()[0])


def ready(url: str, key: str) -> None:
    """Wait until the server answers the poll (its workers import and build the app first)."""
    deadline = time.monotonic() + 300
    while True:
        try:
            if requests.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=30).ok:
                return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer within 300 s") from None
        time.sleep(1)


def measure(
    name: str,
    base: str,
    key: str,
    job_id: str,
    seconds: int,
    connections: int,
    tmp: Path,
    cpu: Callable[[], float],
) -> dict[str, Figures]:
    poll = f"{base}/api/v1/jobs/{job_id}"
    ready(poll, key)
    wrk(poll, key, 5, connections, tmp)  # warm up: every worker, connections, lazy imports

    def run(**kw) -> Figures:
        before = cpu()
        f = wrk(**kw)
        spent = cpu() - before
        return replace(f, cpu_ms=spent * 1000 / max(1, round(f.rps * kw["seconds"])))

    body = encode_multipart_formdata(
        [("operation", "face_swap"), ("source", ("a.jpg", secrets.token_bytes(20_000)))]
    )
    common = {"key": key, "seconds": seconds, "script_dir": tmp}
    figures = {
        "poll max": run(url=poll, connections=connections, **common),
        "poll paced 700/s": run(url=poll, connections=connections, rate=PACED_RPS, **common),
        "submit max": run(
            url=f"{base}/api/v1/jobs", connections=min(connections, 16), post_body=body, **common
        ),
    }
    for what, f in figures.items():
        print(
            f"{name:10} {what:17} {f.rps:8.0f} req/s  p50 {f.p50_ms:7.1f} ms  "
            f"p99 {f.p99_ms:7.1f} ms  non-2xx/errors {f.bad}  load {f.load:.1f}  "
            f"web CPU {f.cpu_ms:.2f} ms/request (idle {os.cpu_count()} cores: "
            f"{f.capacity:.0f} req/s)",
            flush=True,
        )
    return figures


def run_embedded(args, tmp: Path) -> dict[str, Figures]:
    home = tmp / "embedded"
    settings = Settings(consent_service_home=home, api_rate_limit=NEVER_LIMITED)
    key, job_id = prepare(settings)
    port = free_port()
    env = {**os.environ, "CONSENT_SERVICE_HOME": str(home), "API_RATE_LIMIT": NEVER_LIMITED}
    argv = [str(Path(sys.executable).parent / "consent-service"), "serve", "--port", str(port)]
    with listening(argv, port, tmp / "embedded.log", env=env, timeout=120) as web:
        # The serve process only (waitress in it); its worker process is not the API's.
        return measure(
            "embedded",
            f"http://127.0.0.1:{port}",
            key,
            job_id,
            args.seconds,
            args.connections,
            tmp,
            lambda: web_cpu_seconds(web.pid, children=False),
        )


def run_production(args, tmp: Path) -> dict[str, Figures]:
    with ExitStack() as stack:
        database = stack.enter_context(postgres_database())
        broker = stack.enter_context(redis_database("api-load"))
        home = tmp / "production"
        settings = Settings(
            consent_service_home=home,
            database_url=database,
            broker_url=broker,
            rate_limit_storage_url=broker,
            api_rate_limit=NEVER_LIMITED,
        )
        key, job_id = prepare(settings)
        port = free_port()
        env = {
            **os.environ,
            "CONSENT_SERVICE_HOME": str(home),
            "DATABASE_URL": database,
            "BROKER_URL": broker,
            "RATE_LIMIT_STORAGE_URL": broker,
            "API_RATE_LIMIT": NEVER_LIMITED,
        }
        argv = web_command("127.0.0.1", port, args.web_workers)  # compose's web
        with listening(argv, port, tmp / "production.log", env=env, timeout=120) as web:
            return measure(
                "production",
                f"http://127.0.0.1:{port}",
                key,
                job_id,
                args.seconds,
                args.connections,
                tmp,
                lambda: web_cpu_seconds(web.pid, children=True),  # granian and its workers
            )


def profile(n: int, tmp: Path, production: bool) -> None:
    """The poll in this process (Flask's test client, so no server's own work): its CPU time
    per poll over `n` polls unprofiled, then pyinstrument's view of `n` more."""
    from pyinstrument import Profiler

    with ExitStack() as stack:
        if production:
            database = stack.enter_context(postgres_database())
            broker = stack.enter_context(redis_database("api-load"))
            settings = Settings(
                consent_service_home=tmp / "profile",
                database_url=database,
                broker_url=broker,
                rate_limit_storage_url=broker,
                api_rate_limit=NEVER_LIMITED,
            )
        else:
            settings = Settings(consent_service_home=tmp / "profile", api_rate_limit=NEVER_LIMITED)
        key, job_id = prepare(settings)
        app = create_app(settings)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {key}"}
        url = f"/api/v1/jobs/{job_id}"
        for _ in range(200):
            client.get(url, headers=headers)
        cpu0 = time.process_time()
        for _ in range(n):
            assert client.get(url, headers=headers).status_code == 200
        cpu_ms = (time.process_time() - cpu0) * 1000 / n
        profiler = Profiler(interval=0.001)
        with profiler:
            for _ in range(n):
                client.get(url, headers=headers)
        print(profiler.output_text(unicode=False, color=False, show_all=False))
        where = "PostgreSQL and Redis" if production else "SQLite"
        print(f"{n} polls in process (test client, {where}): {cpu_ms:.2f} CPU ms each unprofiled")
        app.extensions["db_engine"].dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--only", choices=("embedded", "production"))
    parser.add_argument("--profile", type=int, metavar="N", help="profile N polls instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        if args.profile:
            profile(args.profile, tmp, production=args.only == "production")
            return
        if WRK is None:
            raise SystemExit("wrk is needed: apt-get install wrk")
        print(f"{os.cpu_count()} cores, load average before: {os.getloadavg()}")
        results = {}
        if args.only in (None, "embedded"):
            results["embedded"] = run_embedded(args, tmp)
        if args.only in (None, "production"):
            results["production"] = run_production(args, tmp)
    for name, figures in results.items():
        poll, paced = figures["poll max"], figures["poll paced 700/s"]
        submit = figures["submit max"]
        print(
            f"{name}: poll {poll.rps:.0f} req/s, ratio {poll.rps / GOAL_RPS:.2f} to 1,000; "
            f"paced {paced.rps:.0f} req/s p99 {paced.p99_ms:.1f} ms, ratio "
            f"{GOAL_P99_MS / max(paced.p99_ms, 0.001):.2f} to 50 ms; web CPU "
            f"{poll.cpu_ms:.2f} ms/poll, {poll.capacity:.0f} polls/s on idle cores, ratio "
            f"{poll.capacity / GOAL_RPS:.2f}; "
            f"submit {submit.rps:.0f} req/s p99 {submit.p99_ms:.0f} ms"
        )


if __name__ == "__main__":
    main()
