"""The gallery past one machine on several hosts, for real: six hosts, each a network namespace
of its own (a veth pair to this machine on its own subnet, its own hostname) and a mount
namespace of its own (the machine read-only, private tmpfs over /tmp, /var/tmp, /srv, /run
and /dev/shm, its home and data folder in /srv: nothing can pass between hosts through a
file), and a PID namespace of its own (the host's processes die with it):

- `web`: granian serving `create_web_app()` (production settings: PostgreSQL, Redis as broker
  and rate-limit store, MEDIA_STORE=database, GALLERY_SHARDS=2; the public keys only);
- `match`: the matching worker (the face and voice models; the signing keys), consuming
  `matching,default` (as docker-compose's `worker`): never the webhooks queue;
- `shard0`, `shard1`: `consent-service worker --shard 0` and `--shard 1` (the public keys only,
  and no SECRET_KEY: a shard holds none);
- `hooks`: `consent-service worker --queues webhooks` and `consent-service beat` (the signing
  keys, as docker-compose gives its `webhooks` and `beat`), each a program of its own (its own
  mount and PID namespaces on the host's network). The webhooks queue runs on workers of their
  own so that a slow receiver never holds a matching process (the README's deployment), and the
  hooks host is the only one with a way out to providers: a deployment that limits its hosts'
  egress (the SSRF guard's second line) opens it for the webhook workers alone. Beat is there
  because a deployment runs exactly one, it is small, and its busiest entry is the webhook
  retry sweep; the tasks it sends land on their queues (`webhooks.retry_due` and the other
  housekeeping on `default`, run by the match host, whose sweep sends the due deliveries to the
  webhooks queue, hence to the hooks host). Its retry timings are shortened (a sweep every 2 s,
  a first retry after 1 s, 30 s for each attempt: tests/support.py's FAST_WEBHOOK_RETRIES) so
  the run waits seconds, not minutes;
- `provider`: a provider's receiver (`--receive`: tests/support.py's `Receiver`, which checks
  each delivery's `Consent-Signature` with `verify_signature` over the raw body, as the README
  tells providers to), at a public address, 192.88.99.2, on a wire from the hooks host (a veth
  pair made inside the two namespaces, the hooks host's default route through it; its link to
  this machine carries nothing: a provider needs no database or broker of ours). Production
  refuses a webhook whose address is private, loopback or in the benchmarking range the hosts
  use (`webhooks/transport.py` `is_public`), at configuration on the web host and again at each
  attempt on the hooks host; the bench does not weaken that: it gives the provider an address
  Python's `is_global` accepts, from the 6to4 relays' anycast block, deprecated since 2015 (RFC
  7526), where no one's server is impersonated, and which exists only on that wire (no route on
  the machine changes, so nothing outside reaches it or is reached). The URL names the address
  itself, not a host name: the check judges the resolved address either way, and the hosts
  share the machine's read-only /etc/hosts.

PostgreSQL and Redis listen only on this machine's loopback (127.0.0.1); the bench relays them
to each host's side of its veth pair (an asyncio TCP relay in this process, bound to the
machine's end of each pair), never changing their configuration. The bench's own database (a
fresh one, dropped at the end) and Redis database (one no test run holds) are used.

The run: people are enrolled from the real sample photos and real recorded speech, and grant
consent; then the same jobs go through the API (from this machine, to the web host's address)
twice: first with the `match` host holding the whole gallery (GALLERY_SHARDS=1: one host decides
alone, the reference, as tests/e2e/test_gallery_shard_workers.py compares), then with the
`match` host restarted holding no gallery and the two shard hosts searching it. Checked: every
job decided, decisions, reasons and findings equal to the reference's; each shard host searched
(its log) and answers the health page's broadcast under its own host name; a duplicate
enrollment is disputed through the shards; a partition (shard 1's link down, its worker still
running) fails a job in bounded time, undecided, and once the link is back the host answers
again by itself and the job decides as before; every upload was sealed into the `media_blob` table
(a trigger in the bench's database counts each put and delete) and the table is empty at the
end; no host's private folders hold a media file.

Webhooks and beat across hosts: the provider sets its webhook through the web host's API (a
private address refused first); the receiver is not started until the first job's delivery has
failed once (connection refused at the provider's address), then started, and only beat's sweep
can send that delivery again. Checked: every POST the provider host received carried a valid
signature; every decided job's `job.decided` was accepted exactly once (the product promises at
least once and a receiver drops repeats by `Consent-Delivery`; with no worker dying mid-attempt,
a repeat here would be a fault), from the hooks host's address, with the job's decision and
reasons, and the API's delivery log says each `delivered`; the hooks host's worker ran every
delivery and no other host ran one (their logs), and only `celery@hooks` answers the broadcast
for the webhooks queue; beat sent `webhooks.retry_due` and a sweep re-sent the missed delivery,
which a later attempt delivered once the receiver was up. Prints the deliveries, the time from
decision to delivery, the retries and what beat sent.

With `--media s3` every host's store is
moto's S3-compatible server instead (`moto[server]`, the dev extra, on this machine's loopback,
relayed like the others), its bucket versioned so that its versions and delete markers count the
puts and deletes, and `media_blob` must stay unused. Prints a line per job (its time in both
runs) and last:

    multihost: 6 hosts, J jobs, J decided, 0 differ from one host; media through PostgreSQL only;
    W of W webhooks delivered by hooks, signed, once

(`media through S3 only` with `--media s3`; W counts the decided jobs of both runs, the warm-up
and the partition's).

Everything it made (the hosts' processes, namespaces and veth pairs, the wire, the relay, the
database, the Redis claim, its folder of logs and keys) is removed at the end, on failure and on
Ctrl-C; a run killed outright (SIGKILL) takes its hosts' processes with it (each host's first
process dies with the bench), and the next run removes the rest it left.

Run (root; needs iproute2 and util-linux's unshare; PostgreSQL at TEST_POSTGRES_URL, Redis at
TEST_REDIS_URL, both on 127.0.0.1 by default):

    PYTHONPATH=. python bench/multihost.py [--no-voice] [--media database|s3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/multihost.py` from anywhere
    sys.path.insert(0, str(ROOT))

HOSTS = ("web", "match", "shard0", "shard1", "hooks", "provider")
# Names of everything a run makes carry its pid, so a later run can tell a dead run's leftovers.
PREFIX = "csmh"
NETNS = re.compile(rf"^{PREFIX}(\d+)-")
DATABASE = re.compile(rf"^{PREFIX}_(\d+)_[0-9a-f]+$")
# RFC 2544's benchmarking range: never routed anywhere, so no real host can be there.
NETWORK = "198.18"
WEB_PORT = 8000
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
# Inside each host, the only places it can write: private tmpfs folders. Its home (HOME) and its
# data folder (CONSENT_SERVICE_HOME) are in /srv; everything else is the machine's, read-only
# (the interpreter included: pyenv's lives under /root).
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/srv", "/run", "/dev/shm")  # noqa: S108 - mount points
HOST_HOME = "/srv/consent"
HOST_USER_HOME = "/srv/home"
LOCAL_MEDIA_DIRS = ("media", "recordings", "complaint-evidence")
NEVER_LIMITED = "1000000/minute"
START_TIMEOUT = 180.0
DECISION_TIMEOUT = 300.0
SHARD_TIMEOUT = 6.0  # GALLERY_SHARD_TIMEOUT: a lost shard fails a job within seconds
# The provider's receiver: a public address (the service refuses any other for a webhook in
# production), from 192.88.99.0/24, the 6to4 relays' anycast block, deprecated since 2015 (RFC
# 7526): globally scoped, so the SSRF guard lets it through, and no one's server is there to
# impersonate. It exists only on the wire between the hooks host and the provider host.
PROVIDER_ADDRESS = "192.88.99.2"
RECEIVER_PORT = 8080
RECEIVER_PATH = "/hooks/consent"
WIRE = "wan0"  # the hooks host's way out, and the provider host's way in
WEBHOOK_TIMEOUT = 60.0  # for every decided job's delivery to reach the receiver


class BenchFailed(RuntimeError):
    """A check of the run failed; the message says which."""


def _kept() -> tuple[str, ...]:
    """What each host must still see that lies inside a private folder: the code and the
    interpreter's environment when they are checked out or made under /tmp (a CI clone), each
    bound back read-only where it was (the outermost of nested ones)."""
    wanted = {str(ROOT), os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}
    inside = sorted(p for p in wanted if any(p == d or p.startswith(d + "/") for d in PRIVATE_DIRS))
    kept = [p for p in inside if not any(p.startswith(k + "/") for k in inside if k != p)]
    staging = PRIVATE_DIRS[PRIVATE_DIRS.index("/run")]
    if any(k == staging or k.startswith(staging + "/") for k in kept):
        raise BenchFailed(f"cannot run the hosts with the code or Python under {staging}")
    return tuple(kept)


KEPT = _kept()

# Each host's first process: the view of the machine described above, then the program. What
# KEPT names is bound aside (on the fresh /run) before the private folders hide it, then moved
# back into place, read-only.
HOST_SCRIPT = r"""
set -e
mount -o remount,bind,ro /
mount -t tmpfs -o mode=0755 tmpfs /run
i=0; for k in {kept}; do mkdir -p /run/kept$i; mount --bind "$k" /run/kept$i; i=$((i+1)); done
for d in {dirs}; do [ "$d" = /run ] || mount -t tmpfs -o mode=0755 tmpfs "$d"; done
i=0
for k in {kept}; do
    mkdir -p "$k"; mount --move /run/kept$i "$k"; mount -o remount,bind,ro "$k"
    rmdir /run/kept$i; i=$((i+1))
done
chmod 1777 /tmp /var/tmp /dev/shm
hostname "$1"; shift
ip link set lo up
mkdir -p {home} {user_home}
cd "$1"; shift
exec "$@"
""".format(
    dirs=" ".join(PRIVATE_DIRS),
    kept=" ".join(shlex.quote(k) for k in KEPT),
    home=HOST_HOME,
    user_home=HOST_USER_HOME,
)


def log(message: str) -> None:
    print(message, flush=True)


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------- leftovers
def sweep(owner: int | None = None) -> list[str]:
    """Remove the namespaces (with any process still in them), databases, Redis claims and
    folders (the logs and the operator's keys) of runs that are gone, or of run `owner`
    whatever its state. Returns what it removed."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        found = NETNS.match(folder.name)
        if found and folder.is_dir():
            pid = int(found.group(1))
            if pid == owner or (owner is None and not _alive(pid)):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(str(folder))
    for line in run("ip", "netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        found = NETNS.match(name)
        if not found:
            continue
        pid = int(found.group(1))
        if pid != owner and (owner is not None or _alive(pid)):
            continue
        for p in run("ip", "netns", "pids", name, check=False).stdout.split():
            with suppress(ProcessLookupError):
                os.kill(int(p), signal.SIGKILL)
        run("ip", "netns", "del", name, check=False)
        removed.append(name)
    try:
        removed += _release_redis_claims(owner)
    except Exception as exc:  # the claims expire by themselves within the hour
        log(f"(could not look for leftover Redis claims: {exc})")
    try:
        for name in _databases():
            pid = int(DATABASE.match(name).group(1))
            if pid == owner or (owner is None and not _alive(pid)):
                _drop_database(name)
                removed.append(name)
    except Exception as exc:  # the sweep of namespaces matters most
        log(f"(could not look for leftover databases: {exc})")
    return removed


def _release_redis_claims(owner: int | None) -> list[str]:
    import redis

    claims = redis.Redis.from_url(f"{REDIS_URL}/0")
    released = []
    try:
        for key in claims.scan_iter("consent-service-test-db:*"):
            token = (claims.get(key) or b"").decode()
            found = re.match(r"^multihost-(\d+)-", token)
            if found and (
                int(found.group(1)) == owner or (owner is None and not _alive(int(found.group(1))))
            ):
                claims.delete(key)
                released.append(f"Redis {key.decode()}")
    finally:
        claims.close()
    return released


def _admin_conninfo() -> str:
    from tests.support import libpq_conninfo

    return libpq_conninfo(POSTGRES_ADMIN_URL)


def _databases() -> list[str]:
    import psycopg

    with psycopg.connect(_admin_conninfo(), autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute("SELECT datname FROM pg_database").fetchall()
    return [r[0] for r in rows if DATABASE.match(r[0])]


def _drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(_admin_conninfo(), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------- the network
@dataclass(frozen=True)
class Host:
    name: str
    netns: str
    veth: str  # the machine's end of the pair (the host's end is `eth0` inside)
    subnet: int  # 198.18.<subnet>.0/24

    @property
    def gateway(self) -> str:
        """The machine's address on this host's link: where the relay listens for it."""
        return f"{NETWORK}.{self.subnet}.1"

    @property
    def address(self) -> str:
        return f"{NETWORK}.{self.subnet}.2"


def _free_subnets(count: int) -> list[int]:
    used = set(re.findall(rf"inet {re.escape(NETWORK)}\.(\d+)\.", run("ip", "-4", "addr").stdout))
    free = [n for n in range(10, 250) if n not in used]
    if len(free) < count:
        raise BenchFailed(f"no {count} free subnets in {NETWORK}.0.0/16")
    start = os.getpid() % (len(free) - count + 1)  # two runs at once rarely pick the same
    return free[start : start + count]


@contextmanager
def network(names: tuple[str, ...]) -> Iterator[dict[str, Host]]:
    """A network namespace per host, each linked to this machine by a veth pair of its own."""
    pid = os.getpid()
    hosts = {
        name: Host(name, f"{PREFIX}{pid}-{name}", f"cm{pid}x{i}", subnet)
        for i, (name, subnet) in enumerate(zip(names, _free_subnets(len(names)), strict=True))
    }
    try:
        for h in hosts.values():
            run("ip", "netns", "add", h.netns)
            run("ip", "link", "add", h.veth, "type", "veth", "peer", "name", h.veth + "p")
            run("ip", "link", "set", h.veth + "p", "netns", h.netns)
            run("ip", "addr", "add", f"{h.gateway}/24", "dev", h.veth)
            run("ip", "link", "set", h.veth, "up")
            inside = ("ip", "netns", "exec", h.netns, "ip")
            run(*inside, "link", "set", h.veth + "p", "name", "eth0")
            run(*inside, "addr", "add", f"{h.address}/24", "dev", "eth0")
            run(*inside, "link", "set", "eth0", "up")
            run(*inside, "link", "set", "lo", "up")
        yield hosts
    finally:
        for h in hosts.values():
            run("ip", "netns", "del", h.netns, check=False)  # its veth pair goes with it
            run("ip", "link", "del", h.veth, check=False)  # had the move into it failed


@contextmanager
def internet(hooks: Host, provider: Host) -> Iterator[None]:
    """A wire from the hooks host to the provider host, made inside their namespaces (never on
    the machine): the provider's public address at its end, and the hooks host's default route
    through it. The hooks host is the only one with a way out, as a deployment that limits the
    egress of its hosts gives only its webhook workers one: no other host can reach the
    provider, nor can the machine (its packets to PROVIDER_ADDRESS follow its own routes, never
    into the namespaces)."""
    inside = ("ip", "netns", "exec")
    try:
        run(
            *inside,
            hooks.netns,
            "ip",
            "link",
            "add",
            WIRE,
            "type",
            "veth",
            "peer",
            "name",
            WIRE,
            "netns",
            provider.netns,
        )
        for h, local, peer in (
            (hooks, hooks.address, PROVIDER_ADDRESS),
            (provider, PROVIDER_ADDRESS, hooks.address),
        ):
            run(*inside, h.netns, "ip", "addr", "add", local, "peer", f"{peer}/32", "dev", WIRE)
            run(*inside, h.netns, "ip", "link", "set", WIRE, "up")
        run(*inside, hooks.netns, "ip", "route", "add", "default", "dev", WIRE)
        yield
    finally:  # the namespaces' deletion would take it too
        run(*inside, hooks.netns, "ip", "link", "del", WIRE, check=False)


class Relay:
    """TCP relays from each host's gateway address to a service on this machine's loopback,
    in an event loop on a thread of its own; counts the bytes each service carried."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.carried: dict[str, int] = {}
        self._servers: list[asyncio.base_events.Server] = []
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def add(self, name: str, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.carried.setdefault(name, 0)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(1 << 16):
                    self.carried[name] += len(data)
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection(*target)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        async def start() -> None:
            self._servers.append(await asyncio.start_server(accept, *listen, reuse_address=True))

        asyncio.run_coroutine_threadsafe(start(), self.loop).result(timeout=10)

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        try:
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)


# ---------------------------------------------------------------------------- the hosts
@dataclass
class Process:
    """A program running as the first process of a host (its mount, UTS and PID namespaces)."""

    host: Host
    name: str
    popen: subprocess.Popen
    log: Path

    def inner_pid(self) -> int | None:
        """The program's pid as this machine sees it (the child of `unshare`)."""
        try:
            children = Path(f"/proc/{self.popen.pid}/task/{self.popen.pid}/children").read_text()
        except OSError:
            return None
        return int(children.split()[0]) if children.split() else None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def private_files(self) -> list[str]:
        """Every file in the host's private folders, as the host sees them (its mount
        namespace, through /proc/<pid>/root)."""
        pid = self.inner_pid()
        if pid is None:
            return []
        root = Path(f"/proc/{pid}/root")
        found = []
        for top in PRIVATE_DIRS:
            for dirpath, dirs, files in os.walk(root / top.lstrip("/")):
                seen = "/" + str(Path(dirpath).relative_to(root))
                dirs[:] = [d for d in dirs if str(Path(seen, d)) not in KEPT]  # the machine's
                found += [str(Path(dirpath, f).relative_to(root)) for f in files]
        return ["/" + f for f in found]

    def terminate(self) -> None:
        """Ask the program to stop (granian and Celery stop their children themselves)."""
        pid = self.inner_pid()
        if pid is not None and self.popen.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def wait(self, deadline: float) -> None:
        """Wait until it stopped; at `deadline`, kill the host's first process (and with it,
        `unshare --kill-child` and its PID namespace, every process of the host)."""
        try:
            self.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)


class Hosts:
    """Starts programs on the hosts; stops every one at the end."""

    def __init__(self, hosts: dict[str, Host], logs: Path, base_env: dict[str, str]):
        self.hosts, self.logs, self.base_env = hosts, logs, base_env
        self.running: list[Process] = []
        self.count: dict[str, int] = {}

    def start(self, host: str, name: str, argv: list[str], env: dict[str, str]) -> Process:
        h = self.hosts[host]
        self.count[name] = self.count.get(name, 0) + 1
        log = self.logs / f"{name}-{self.count[name]}.log"
        command = [
            # The host's processes die with this bench, whatever kills it.
            "setpriv",
            "--pdeathsig",
            "KILL",
            "ip",
            "netns",
            "exec",
            h.netns,
            "unshare",
            "--mount",
            "--uts",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--propagation",
            "private",
            "sh",
            "-c",
            HOST_SCRIPT,
            "sh",
            host,
            str(ROOT),
            *argv,
        ]
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                command,
                env={**self.base_env, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        process = Process(h, name, popen, log)
        self.running.append(process)
        return process

    def stop(self, *processes: Process, timeout: float = 20.0) -> None:
        started = time.monotonic()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(started + timeout)
            except Exception as exc:  # stop the others all the same
                log(f"(could not stop {process.name}: {exc})")
            self.running.remove(process)
        names = ", ".join(p.name for p in processes)
        log(f"stopped {names} in {time.monotonic() - started:.1f} s")

    def stop_all(self) -> None:
        if self.running:
            self.stop(*self.running)


def wait_for_log(process: Process, marker: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while marker not in process.text():
        if process.popen.poll() is not None or time.monotonic() > deadline:
            raise BenchFailed(
                f"{process.name} on {process.host.name} did not start:\n{process.text()[-3000:]}"
            )
        time.sleep(0.2)


def wait_for_http(process: Process, url: str, timeout: float = START_TIMEOUT) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        if process.popen.poll() is not None or time.monotonic() > deadline:
            raise BenchFailed(f"{url} did not answer:\n{process.text()[-3000:]}")
        time.sleep(0.3)


# ---------------------------------------------------------------------------- the deployment
@dataclass
class Secrets:
    """What an operator makes before the first start: the shared secrets, the signing keys (the
    workers') and their public halves (the web's and the shards')."""

    secret_key: str
    template_kek: str
    decision_signing_keys: str
    decision_public_keys: str
    audit_checkpoint_key: str
    audit_checkpoint_public_keys: str
    origin: str

    @classmethod
    def make(cls, folder: Path, origin: str) -> Secrets:
        from consent_service.audit.checkpoints import add_checkpoint_key, verifiers_file_for
        from consent_service.tokens import service as tokens

        ring = tokens.KeyRing((tokens.generate_key(),))
        checkpoint = folder / "audit-checkpoint.key"
        add_checkpoint_key(checkpoint, origin)
        return cls(
            secret_key=secrets.token_urlsafe(32),
            template_kek=base64.b64encode(secrets.token_bytes(32)).decode(),
            decision_signing_keys=ring.to_json(indent=None),
            decision_public_keys=ring.public().to_json(indent=None),
            audit_checkpoint_key=checkpoint.read_text().strip(),
            audit_checkpoint_public_keys=verifiers_file_for(checkpoint).read_text().strip(),
            origin=origin,
        )

    def shared(self) -> dict[str, str]:
        """Every host: TEMPLATE_KEK (the keyring's keys: templates, media, audit MAC,
        pseudonyms)."""
        return {"TEMPLATE_KEK": self.template_kek, "AUDIT_LOG_ORIGIN": self.origin}

    def sessions(self) -> dict[str, str]:
        """Every host but a shard's: SECRET_KEY (sessions and signed links; production starts
        no other process without it, and a shard holds none)."""
        return {"SECRET_KEY": self.secret_key}

    def public(self) -> dict[str, str]:
        return {
            "DECISION_PUBLIC_KEYS": self.decision_public_keys,
            "AUDIT_CHECKPOINT_PUBLIC_KEYS": self.audit_checkpoint_public_keys,
        }

    def signing(self) -> dict[str, str]:
        return {
            "DECISION_SIGNING_KEYS": self.decision_signing_keys,
            "AUDIT_CHECKPOINT_KEY": self.audit_checkpoint_key,
        }


@contextmanager
def fresh_database() -> Iterator[tuple[str, str]]:
    """(name, URL on this machine's loopback) of a new database, dropped at the end."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"{PREFIX}_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(_admin_conninfo(), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(POSTGRES_ADMIN_URL).set(database=name)
        yield name, url.render_as_string(hide_password=False)
    finally:
        _drop_database(name)


# Every put into and delete from media_blob, counted by PostgreSQL itself: the proof that each
# upload went through the database (the bench's own database; the service never sees it).
MEDIA_LOG_SQL = """
CREATE TABLE bench_media_log (
    key text NOT NULL, shelf text NOT NULL, bytes integer NOT NULL, op text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION bench_media_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO bench_media_log (key, shelf, bytes, op)
        VALUES (NEW.key, NEW.shelf, length(NEW.blob), 'put');
        RETURN NEW;
    END IF;
    INSERT INTO bench_media_log (key, shelf, bytes, op)
    VALUES (OLD.key, OLD.shelf, length(OLD.blob), 'delete');
    RETURN OLD;
END $$;
CREATE TRIGGER bench_media_log AFTER INSERT OR DELETE ON media_blob
    FOR EACH ROW EXECUTE FUNCTION bench_media_log();
"""


def media_log(database_url: str) -> tuple[int, int, int, int]:
    """(puts, deletes, bytes put, rows left in media_blob)."""
    import psycopg

    from tests.support import libpq_conninfo

    with psycopg.connect(libpq_conninfo(database_url)) as conn:
        puts, put_bytes = conn.execute(
            "SELECT count(*), coalesce(sum(bytes), 0) FROM bench_media_log WHERE op = 'put'"
        ).fetchone()
        (deletes,) = conn.execute(
            "SELECT count(*) FROM bench_media_log WHERE op = 'delete'"
        ).fetchone()
        (left,) = conn.execute("SELECT count(*) FROM media_blob").fetchone()
    return puts, deletes, put_bytes, left


S3_PORT = 9000  # where each host reaches the S3-compatible server (through the relay)
S3_BUCKET = "consent-media"
S3_LOGIN = {"AWS_ACCESS_KEY_ID": "multihost-bench", "AWS_SECRET_ACCESS_KEY": "multihost-secret-key"}


@contextmanager
def s3_server(logs: Path) -> Iterator[str]:
    """moto's S3-compatible server (tests/support.py's, as tests/unit/test_storage.py runs it) on
    this machine's loopback, dying with the bench, with a bucket whose versioning keeps a
    version per put and a marker per delete: the count of both. Yields its URL."""
    import boto3

    from tests.support import moto_server

    launcher = ("setpriv", "--pdeathsig", "KILL")
    with moto_server(logs / "s3.log", launcher) as url:
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **s3_login())
        client.create_bucket(Bucket=S3_BUCKET)
        client.put_bucket_versioning(
            Bucket=S3_BUCKET, VersioningConfiguration={"Status": "Enabled"}
        )
        yield url


def s3_login() -> dict[str, str]:
    return {k.lower(): v for k, v in S3_LOGIN.items()}


def s3_log(url: str) -> tuple[int, int, int, int]:
    """(puts, deletes, bytes put, objects left) in the bench's bucket."""
    import boto3

    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **s3_login())
    versions, markers, size = 0, 0, 0
    for page in client.get_paginator("list_object_versions").paginate(Bucket=S3_BUCKET):
        versions += len(page.get("Versions", []))
        size += sum(v["Size"] for v in page.get("Versions", []))
        markers += len(page.get("DeleteMarkers", []))
    left = client.list_objects_v2(Bucket=S3_BUCKET).get("KeyCount", 0)
    return versions, markers, size, left


# ---------------------------------------------------------------------------- media and jobs
@dataclass
class Media:
    """The real sample media of the run, written into the bench's folder (this machine's)."""

    photos: dict[str, Path]
    strangers: list[Path]
    voices: dict[str, Path]
    tmp: Path

    @classmethod
    def make(cls, tmp: Path, voice: bool) -> Media:
        from consent_service.demo.samples import Samples
        from consent_service.settings import Settings
        from tests.speech import shard_voices
        from tests.support import stranger_photos

        samples = Samples.from_settings(Settings())
        names = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "t1.jpg")
        photos = {n: samples.sample(n) for n in names}
        folder = tmp / "media"
        folder.mkdir()
        strangers = stranger_photos(photos["t1.jpg"], folder)
        voices = shard_voices(folder) if voice else {}
        return cls(photos, strangers, voices, folder)

    def jobs(self) -> list[tuple[str, dict[str, list[Path]]]]:
        """The jobs of both runs, those of tests/e2e/test_gallery_shard_workers.py: the faces'
        (`tests.support.shard_face_jobs`), then the voices' (`tests.speech.shard_voice_jobs`)."""
        from tests.speech import shard_voice_jobs
        from tests.support import shard_face_jobs

        jobs = shard_face_jobs(self.photos, self.strangers, self.tmp)
        return jobs + (shard_voice_jobs(self.voices) if self.voices else [])


def describe(job: tuple[str, dict[str, list[Path]]]) -> str:
    operation, media = job
    return f"{operation} " + " ".join(
        f"{role}={'+'.join(p.name for p in paths)}" for role, paths in media.items()
    )


def seen(job: dict) -> tuple:
    """What a provider learns of a job: the decision, its reasons, every finding."""
    findings = sorted(
        (f["media"], f["role"], f["outcome"], f["subject_ref"] or "", tuple(f["box"] or ()))
        for f in job["findings"]
    )
    return job["status"], job["decision"], sorted(job["reasons"]), findings


class Api:
    """A provider's pipeline over real HTTP, from this machine to the web host."""

    def __init__(self, base: str, key: str):
        import requests

        self.base, self.session = base, requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"
        self.finished: list[dict] = []  # every job decide() saw decided or failed, in order

    def set_webhook(self, url: str):
        """PUT /api/v1/webhook (the answer carries the signing secret the first time)."""
        return self.session.put(f"{self.base}/api/v1/webhook", json={"url": url}, timeout=30)

    def deliveries(self) -> list[dict]:
        """The webhook's delivery log, every page of it, newest first."""
        found: list[dict] = []
        params: dict[str, str] = {}
        while True:
            answer = self.session.get(
                f"{self.base}/api/v1/webhook/deliveries", params=params, timeout=30
            )
            answer.raise_for_status()
            page = answer.json()
            found += page["deliveries"]
            if not page.get("next_cursor"):
                return found
            params = {"cursor": page["next_cursor"]}

    def decide(self, operation: str, media: dict[str, list[Path]]) -> tuple[dict, float]:
        """Submit, poll until decided (or failed); (the job, seconds from submission)."""
        files = [
            (role, (path.name, path.read_bytes()))
            for role, paths in media.items()
            for path in paths
        ]
        started = time.monotonic()
        answer = self.session.post(
            f"{self.base}/api/v1/jobs", data={"operation": operation}, files=files, timeout=60
        )
        if answer.status_code != 202:
            raise BenchFailed(f"submission refused: {answer.status_code} {answer.text[:500]}")
        job_id = answer.json()["id"]
        while time.monotonic() - started < DECISION_TIMEOUT:
            body = self.session.get(f"{self.base}/api/v1/jobs/{job_id}", timeout=30).json()
            if body["status"] in ("decided", "failed"):
                self.finished.append(body)
                return body, time.monotonic() - started
            time.sleep(0.1)
        raise BenchFailed(f"job {job_id} not decided within {DECISION_TIMEOUT:.0f} s")


def fan_outs(text: str) -> list[float]:
    return [
        float(ms)
        for ms in re.findall(r"gallery fan-out: \w+, 2 shards, \d+ probes, ([\d.]+) ms", text)
    ]


def folders(files: list[str]) -> str:
    """Files counted by their folder (three levels deep): what a host wrote, in one line."""
    counts: dict[str, int] = {}
    for f in files:
        folder = "/".join(f.split("/")[:4])
        counts[folder] = counts.get(folder, 0) + 1
    return ", ".join(f"{k} ({n})" for k, n in sorted(counts.items())) or "none"


def shard_searches(text: str, shard: int) -> dict[str, int]:
    found = re.findall(rf"gallery shard {shard}/2: (\w+), \d+ probes", text)
    return {m: found.count(m) for m in sorted(set(found))}


def partition(report: Report, api: Api, host: Host, job, expected: tuple, app) -> None:
    """Cut `host` off (the machine's end of its link down), decide `job`, heal, decide again."""
    from consent_service.gate.pipeline import SHARDS_UNAVAILABLE
    from consent_service.tasking import queue_consumers

    run("ip", "link", "set", host.veth, "down")
    try:
        body, seconds = api.decide(*job)
        log(
            f"partition: {host.name}'s link down: {describe(job)} {body['status']} in "
            f"{seconds:.1f} s after {body['attempts']} attempts ({body['error']})"
        )
        report.check(
            body["status"] == "failed"
            and body["decision"] is None
            and body["error"] == SHARDS_UNAVAILABLE,
            f"a job while {host.name} is cut off fails, undecided: {body}",
        )
        report.check(seconds < 3 * SHARD_TIMEOUT + 30, f"it fails in bounded time: {seconds:.1f} s")
    finally:
        run("ip", "link", "set", host.veth, "up")
    healed = time.monotonic()
    shard = host.name.removeprefix("shard")
    while True:
        listening = queue_consumers(app.extensions["celery"], 1.0) or {}
        if listening.get(f"gallery.face.shard.{shard}"):
            break
        if time.monotonic() - healed > START_TIMEOUT:
            raise BenchFailed(f"{host.name} did not answer again after its link came back")
    body, seconds = api.decide(*job)
    log(
        f"partition healed: {host.name} answered the broadcast again after "
        f"{time.monotonic() - healed - seconds:.1f} s; {describe(job)} {body['status']} "
        f"{body['decision']} in {seconds * 1000:.0f} ms"
    )
    report.check(seen(body) == expected, f"once healed, decided as before: {seen(body)}")


# ---------------------------------------------------------------------------- webhooks
def receive(listen: str) -> int:
    """The provider's receiver (`--receive ADDRESS:PORT`, which the bench runs on the provider
    host): tests/support.py's `Receiver`, which checks each delivery's signature as the README
    tells a provider to, with the secret the API gave (WEBHOOK_SECRET); one JSON line per POST
    on its output, which is the bench's log of the host. Runs until stopped."""
    import json

    from tests.support import Receiver, serving

    def stop(signum, frame):  # the host's first process: SIGTERM does nothing without a handler
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    address, port = listen.rsplit(":", 1)
    receiver = Receiver(
        secret=os.environ["WEBHOOK_SECRET"],
        announce=lambda record: print(json.dumps(record), flush=True),
    )
    with serving(RECEIVER_PATH, address, int(port), receiver) as rec:
        print(f"receiver listening on {rec.url} since {time.time():.3f}", flush=True)
        while True:
            time.sleep(3600)


def receipts(process: Process) -> list[dict]:
    """What the receiver recorded, one dict per POST (its log's JSON lines)."""
    import json

    return [json.loads(line) for line in process.text().splitlines() if line.startswith("{")]


def first_attempt_failed(api: Api, job_id: str) -> dict:
    """The delivery of `job_id`'s decision once an attempt at it failed (the log of the API)."""
    deadline = time.monotonic() + WEBHOOK_TIMEOUT
    while time.monotonic() < deadline:
        for d in api.deliveries():
            if d["job_id"] == job_id and d["attempts"] >= 1 and d["last_error"]:
                return d
        time.sleep(0.2)
    raise BenchFailed(f"no failed attempt at job {job_id}'s webhook within {WEBHOOK_TIMEOUT:.0f} s")


def task_results(text: str, task: str) -> list[str]:
    """What each run of `task` returned, from a Celery worker's log (its text or, in
    production, JSON lines, where the message ends at a double quote)."""
    return re.findall(rf"Task {re.escape(task)}\[[^\]]+\] succeeded in [\d.]+s: ([^\"\n]*)", text)


def check_webhooks(
    report: Report,
    api: Api,
    hooks: Host,
    receiver: Process,
    receiver_up: float,
    retried_job: str,
    worker_logs: dict[str, str],
    beat_log: str,
) -> None:
    """Every decided job's `job.decided` reached the provider host, signed, once, from the
    hooks host; the one sent while the receiver was down was retried by beat's sweep."""
    from collections import Counter
    from datetime import datetime

    decided = {b["id"]: b for b in api.finished if b["status"] == "decided"}
    deadline = time.monotonic() + WEBHOOK_TIMEOUT
    while True:
        got = receipts(receiver)
        accepted = [r for r in got if r["answered"] == 200]
        if {r["body"]["data"]["job_id"] for r in accepted} >= set(decided):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    report.webhooks_due = len(decided)
    once = Counter(r["delivery"] for r in accepted)
    per_job = Counter(r["body"]["data"]["job_id"] for r in accepted)
    good = [
        r
        for r in accepted
        if r["verified"]
        and r["peer"] == hooks.address
        and r["path"] == RECEIVER_PATH
        and r["body"]["type"] == "job.decided"
        and r["body"]["id"] == r["delivery"]
        and once[r["delivery"]] == 1
        and per_job[r["body"]["data"]["job_id"]] == 1
        and r["body"]["data"]["job_id"] in decided
        and r["body"]["data"]["decision"] == decided[r["body"]["data"]["job_id"]]["decision"]
        and sorted(r["body"]["data"]["reasons"])
        == sorted(decided[r["body"]["data"]["job_id"]]["reasons"])
    ]
    report.webhooks_ok = len(good)
    report.check(
        all(r["verified"] and r["answered"] == 200 for r in got),
        f"every POST the provider host received carried a valid signature: "
        f"{[(r['delivery'], r['answered']) for r in got if r['answered'] != 200]}",
    )
    report.check(
        len(good) == len(decided) == len(accepted),
        f"each decided job's webhook delivered once, signed, from the hooks host: {len(good)} of "
        f"{len(decided)} ({len(accepted)} accepted; peers {sorted({r['peer'] for r in got})}; "
        f"missing {sorted(set(decided) - set(per_job))})",
    )
    log_ = api.deliveries()
    report.check(
        all(d["status"] == "delivered" for d in log_) and len(log_) == len(decided),
        f"the delivery log: {Counter(d['status'] for d in log_)} of {len(decided)}",
    )

    # Who sent them: the hooks host's worker, never the match host (which does not consume
    # the webhooks queue).
    sent_by = {name: task_results(text, "webhooks.deliver") for name, text in worker_logs.items()}
    hooks_sent = Counter(sent_by.pop("hooks-worker"))
    report.check(
        hooks_sent["'delivered'"] == len(accepted),
        f"the hooks host's worker delivered each: {dict(hooks_sent)}",
    )
    report.check(not any(sent_by.values()), f"no other host ran a delivery: {sent_by}")

    # Beat, on the hooks host, fired its schedule: its sweep (run where the `default` queue is
    # consumed: the match host) sent the first job's delivery again once the receiver was up.
    fired = Counter(re.findall(r"Sending due task ([\w.]+) ", beat_log))
    sweeps = [
        int(n)
        for name, text in worker_logs.items()
        for n in task_results(text, "webhooks.retry_due")
    ]
    retried = next((d for d in log_ if d["job_id"] == retried_job), None)
    late = next((r for r in accepted if r["body"]["data"]["job_id"] == retried_job), None)
    report.check(
        retried is not None
        and late is not None
        and retried["attempts"] >= 2
        and late["at"] >= receiver_up,
        f"the delivery sent while the receiver was down, delivered by a later attempt: {retried}",
    )
    report.check(
        fired["webhooks.retry_due"] > 0 and any(n > 0 for n in sweeps),
        f"beat sent webhooks.retry_due ({fired['webhooks.retry_due']}) and a sweep re-sent a "
        f"delivery ({sweeps})",
    )

    firsts = [
        r["at"] - datetime.fromisoformat(r["body"]["created_at"]).timestamp()
        for r in accepted
        if r["body"]["data"]["job_id"] != retried_job
    ]
    attempts = [d["attempts"] for d in log_]
    log(
        f"webhooks: {len(accepted)} job.decided deliveries received by the provider host "
        f"({PROVIDER_ADDRESS}), {sum(r['verified'] for r in got)} of {len(got)} POSTs "
        f"signature-checked, all from {sorted({r['peer'] for r in got})} (hooks: "
        f"{hooks.address}), {max(once.values(), default=0)} at most per delivery"
    )
    if firsts:
        log(
            f"decision to delivery (its outbox row's time to the receiver's): median "
            f"{statistics.median(firsts) * 1000:.0f} ms, max {max(firsts) * 1000:.0f} ms over "
            f"{len(firsts)} first attempts"
        )
    if retried is not None and late is not None:
        made = datetime.fromisoformat(late["body"]["created_at"]).timestamp()
        log(
            "retry: the first job's delivery failed while the receiver was down, delivered "
            f"by attempt {retried['attempts']}, {late['at'] - made:.1f} s after its decision, "
            f"{late['at'] - receiver_up:.1f} s after the receiver started; retries in all: "
            f"{sum(attempts) - len(attempts)} (attempts {sorted(Counter(attempts).items())})"
        )
    log(
        f"the hooks host's worker ran {sum(hooks_sent.values())} delivery tasks: "
        + ", ".join(f"{n} {r.strip(chr(39))}" for r, n in sorted(hooks_sent.items()))
        + " (pending: an attempt failed; skipped: a duplicate message, its delivery already "
        "claimed); the other hosts ran none"
    )
    log(
        f"beat on the hooks host sent: {', '.join(f'{t} {n}' for t, n in sorted(fired.items()))}; "
        f"the match host ran {len(sweeps)} sweeps, {sum(n > 0 for n in sweeps)} of which sent "
        f"{sum(sweeps)} due deliveries again"
    )


# ---------------------------------------------------------------------------- the run
@dataclass
class Report:
    jobs: int = 0
    decided: int = 0
    differ: int = 0
    webhooks_due: int = 0  # decided jobs, each of which announces its decision
    webhooks_ok: int = 0  # of them, delivered once, signed, from the hooks host
    media_through_store: bool = False  # every upload put into the shared store, and deleted
    media_local: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)
            log(f"FAILED: {what}")


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]


def consent_service(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "consent-service"), *args]


def bench(args: argparse.Namespace, tmp: Path) -> Report:
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url

    from consent_service import db
    from consent_service.app import create_app
    from consent_service.biometrics.gallery import shard_of
    from consent_service.biometrics.operator_import import import_face, import_voice
    from consent_service.biometrics.service import wait_for_enrollment
    from consent_service.consent import service as consent
    from consent_service.migrate import alembic_config
    from consent_service.processes import web_command
    from consent_service.providers.service import create_provider, issue_key
    from consent_service.runtime import services
    from consent_service.settings import Settings
    from consent_service.tasking import queue_consumers
    from consent_service.vocabulary import Operation, Role
    from consent_service.webhooks.transport import is_public

    if not is_public(PROVIDER_ADDRESS) or is_public(f"{NETWORK}.0.1"):
        raise BenchFailed(f"{PROVIDER_ADDRESS} must count as public, {NETWORK}.0.0/16 as not")
    report = Report()
    log(f"load average at the start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    media = Media.make(tmp, voice=not args.no_voice)
    with ExitStack() as stack:
        hosts = stack.enter_context(network(HOSTS))
        stack.enter_context(internet(hosts["hooks"], hosts["provider"]))
        for h in hosts.values():
            log(f"host {h.name:8} {h.address} (netns {h.netns}, link {h.veth})")
        log(f"host provider {PROVIDER_ADDRESS} on a wire from the hooks host (its default route)")
        relay = Relay()
        stack.callback(relay.close)
        _, database_url = stack.enter_context(fresh_database())
        from tests.support import (
            FAST_WEBHOOK_RETRIES,
            libpq_conninfo,
            redis_database,  # the claim every test run and bench takes
        )

        redis_number = int(stack.enter_context(redis_database("multihost")).rsplit("/", 1)[1])
        pg, rd = make_url(POSTGRES_ADMIN_URL), make_url(REDIS_URL)
        s3_url = stack.enter_context(s3_server(tmp)) if args.media == "s3" else None
        for h in hosts.values():
            if h.name == "provider":  # a provider's machine: no database or broker of ours
                continue
            if s3_url is not None:
                relay.add("S3", (h.gateway, S3_PORT), ("127.0.0.1", int(s3_url.rsplit(":", 1)[1])))
            relay.add(
                "PostgreSQL",
                (h.gateway, pg.port or 5432),
                (pg.host or "127.0.0.1", pg.port or 5432),
            )
            relay.add(
                "Redis", (h.gateway, rd.port or 6379), (rd.host or "127.0.0.1", rd.port or 6379)
            )

        web = hosts["web"]
        base = f"http://{web.address}:{WEB_PORT}"
        keys = tmp / "keys"
        keys.mkdir(mode=0o700)
        sealed = Secrets.make(keys, "multihost.invalid/audit")

        def media_env(gateway: str) -> dict[str, str]:
            """The media store: the database (the relay to PostgreSQL), or the S3 server."""
            if s3_url is None:
                return {"MEDIA_STORE": "database"}
            return {
                "MEDIA_STORE": "s3",
                "MEDIA_S3_BUCKET": S3_BUCKET,
                "MEDIA_S3_ENDPOINT_URL": f"http://{gateway}:{S3_PORT}",
                "MEDIA_S3_REGION": "us-east-1",
                **S3_LOGIN,
            }

        def host_env(host: Host) -> dict[str, str]:
            """What every host is given: its way to the database and the broker (its relay),
            production settings, the shared secrets, and SECRET_KEY unless it runs a shard."""
            return {
                **({} if host.name.startswith("shard") else sealed.sessions()),
                "CONSENT_SERVICE_ENV": "production",
                "CONSENT_SERVICE_HOME": HOST_HOME,
                "HOME": HOST_USER_HOME,
                "DATABASE_URL": make_url(database_url)
                .set(host=host.gateway)
                .render_as_string(hide_password=False),
                "BROKER_URL": f"redis://{host.gateway}:{rd.port or 6379}/{redis_number}",
                **media_env(host.gateway),
                "GALLERY_SHARDS": "2",
                "GALLERY_SHARD_TIMEOUT": str(SHARD_TIMEOUT),
                "PUBLIC_URL": base,
                **sealed.shared(),
            }

        base_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONPATH": str(ROOT),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        procs = Hosts(hosts, tmp, base_env)
        stack.callback(procs.stop_all)

        # ---- the web host, the match host holding the whole gallery (the reference) and the
        # shard hosts (idle until the match host sends them searches), started at once on a new
        # database: each worker migrates it as it starts (one at a time: an advisory lock).
        import psycopg

        conninfo = libpq_conninfo(database_url)
        t0 = time.monotonic()
        web_proc = procs.start(
            "web",
            "web",
            web_command(web.address, WEB_PORT, 2),
            {
                **host_env(web),
                **sealed.public(),
                "RATE_LIMIT_STORAGE_URL": f"redis://{web.gateway}:{rd.port or 6379}/{redis_number}",
                "API_RATE_LIMIT": NEVER_LIMITED,
            },
        )
        whole = procs.start(
            "match",
            "match-whole",
            # The webhooks queue is the hooks host's alone: a slow receiver never holds the gate.
            consent_service("worker", "--concurrency", "1", "--queues", "matching,default"),
            {**host_env(hosts["match"]), **sealed.signing(), "GALLERY_SHARDS": "1"},
        )
        shard_procs = [
            procs.start(
                f"shard{k}",
                f"shard{k}",
                consent_service("worker", "--shard", str(k)),
                {**host_env(hosts[f"shard{k}"]), **sealed.public()},
            )
            for k in (0, 1)
        ]
        # The hooks host: the webhooks queue's worker and beat (exactly one in a deployment),
        # each its own program with the signing keys, as docker-compose's `webhooks` and `beat`.
        # Its retries shortened as the tests' are (a second apart), its sweep every 2 s.
        hooks_env = {
            **host_env(hosts["hooks"]),
            **sealed.signing(),
            **FAST_WEBHOOK_RETRIES,
            "WEBHOOK_SWEEP_INTERVAL": "2",
        }
        hooks_worker = procs.start(
            "hooks",
            "hooks-worker",
            consent_service("worker", "--concurrency", "2", "--queues", "webhooks"),
            hooks_env,
        )
        beat = procs.start("hooks", "hooks-beat", consent_service("beat"), hooks_env)
        wait_for_http(web_proc, f"{base}/healthz")
        wait_for_log(whole, " ready.")
        for p in [*shard_procs, hooks_worker]:
            wait_for_log(p, " ready.")
        wait_for_log(beat, "beat: Starting...")
        log(
            f"5 hosts up in {time.monotonic() - t0:.1f} s (the match, shard and hooks hosts "
            "migrated the new database as they started, at once); the provider's receiver not "
            "yet started"
        )
        with psycopg.connect(conninfo) as conn:
            conn.execute(MEDIA_LOG_SQL)
            heads = {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")}
        report.check(
            heads == set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads()),
            f"the database at head: {heads}",
        )

        # ---- the operator's console on this machine: the same settings, straight to loopback.
        operator = Settings(
            consent_service_env="production",
            consent_service_home=tmp / "operator",
            database_url=database_url,
            broker_url=f"{REDIS_URL}/{redis_number}",
            media_store=args.media,
            media_s3_bucket=S3_BUCKET if s3_url else None,
            media_s3_endpoint_url=s3_url,
            media_s3_region="us-east-1",
            gallery_shards=2,
            public_url=base,
            secret_key=sealed.secret_key,
            template_kek=sealed.template_kek,
            audit_log_origin=sealed.origin,
            decision_signing_keys=sealed.decision_signing_keys,
            audit_checkpoint_key=sealed.audit_checkpoint_key,
        )
        operator.home.mkdir()
        os.environ.update(S3_LOGIN if s3_url else {})  # boto3's chain, for the console's store
        app = create_app(operator)
        stack.callback(app.extensions["db_engine"].dispose)

        def enroll(email: str, kind: str, *files: Path):
            with app.app_context():
                with db.unit_of_work() as s:
                    if kind == "voice":
                        enrollment, _ = import_voice(
                            s, services().media_store, email, files[0].read_bytes()
                        )
                    else:
                        enrollment, _ = import_face(
                            s, services().media_store, email, [f.read_bytes() for f in files], 5
                        )
                return wait_for_enrollment(db.engine(), enrollment.id, DECISION_TIMEOUT)

        def grant(subject_id: int, operation: Operation) -> None:
            with app.app_context(), db.unit_of_work() as s:
                consent.grant(
                    s,
                    services().audit_key,
                    subject_id,
                    consent.GrantRequest(
                        operations=[operation],
                        roles=[Role.SOURCE, Role.TARGET],
                        all_providers=True,
                        provider_ids=[],
                    ),
                    consent.Evidence(actor="bench", identity_method="bench"),
                )

        t0 = time.monotonic()
        files_put = 0
        people = []
        if media.voices:
            people += [
                (
                    "vera@example.org",
                    "voice",
                    [media.voices["fee083-trn06.wav"]],
                    Operation.VOICE_CLONING,
                ),
                (
                    "victor@example.org",
                    "voice",
                    [media.voices["mee009-dev00.wav"]],
                    Operation.VOICE_CLONING,
                ),
            ]
        people += [
            (
                "alice@example.org",
                "face",
                [media.photos["obama.jpg"], media.photos["obama2.jpg"]],
                Operation.FACE_SWAP,
            ),
            ("bob@example.org", "face", [media.photos["biden.jpg"]], Operation.FACE_SWAP),
            ("carol@example.org", "face", [media.strangers[0]], None),
            ("dave@example.org", "face", [media.strangers[2]], None),
        ]
        enrolled = {}
        for email, kind, files, operation in people:
            row = enroll(email, kind, *files)
            files_put += len(files)
            report.check(
                row.status == "completed", f"enrollment of {email}: {row.status} {row.error}"
            )
            enrolled[email] = row.subject_id
            if operation is not None:
                grant(row.subject_id, operation)
        placed = {email.split("@")[0]: shard_of(sid, 2) for email, sid in enrolled.items()}
        log(f"enrolled {len(enrolled)} people in {time.monotonic() - t0:.1f} s; shards: {placed}")
        report.check(placed["alice"] != placed["bob"], "alice and bob live in different shards")
        if media.voices:
            report.check(
                placed["vera"] != placed["victor"], "the two speakers live in different shards"
            )
        with app.app_context(), db.unit_of_work() as s:
            key = issue_key(s, create_provider(s, "Multihost Studio"))
        api = Api(base, key)

        # ---- the provider's webhook, set through the API of the production web host: a
        # private address refused, the public one accepted (only resolved, not reached).
        private = api.set_webhook(f"http://{hosts['provider'].address}:{RECEIVER_PORT}/")
        report.check(
            private.status_code == 422, f"a private webhook address refused: {private.text[:200]}"
        )
        answer = api.set_webhook(f"http://{PROVIDER_ADDRESS}:{RECEIVER_PORT}{RECEIVER_PATH}")
        if answer.status_code != 200:
            raise BenchFailed(f"the webhook refused: {answer.status_code} {answer.text[:500]}")
        secret = answer.json()["secret"]
        log(f"webhook set to {answer.json()['url']} (the private address refused)")

        jobs = media.jobs()
        reference = []
        for i, job in enumerate(jobs):
            body, seconds = api.decide(*job)
            files_put += sum(len(p) for p in job[1].values())
            reference.append((seen(body), seconds))
            if i == 0:
                # Its delivery finds nobody at the provider's address (refused) and is due
                # again later; the receiver starts now, and only beat's sweep can send it again.
                retried_job = body["id"]
                missed = first_attempt_failed(api, retried_job)
                receiver = procs.start(
                    "provider",
                    "receiver",
                    python_argv(
                        str(Path(__file__).resolve()),
                        "--receive",
                        f"{PROVIDER_ADDRESS}:{RECEIVER_PORT}",
                    ),
                    {"WEBHOOK_SECRET": secret},
                )
                wait_for_log(receiver, "receiver listening")
                up = re.findall(r"listening on \S+ since ([\d.]+)", receiver.text())
                receiver_up = float(up[0])
                log(
                    f"job 1's webhook, receiver down: attempt {missed['attempts']} failed "
                    f"({missed['last_error']}); receiver started on the provider host"
                )
        log(f"reference: {len(jobs)} jobs decided by the whole-gallery match host")

        # ---- the match host restarted without a gallery: every search goes to the shard hosts.
        procs.stop(whole)
        matching = procs.start(
            "match",
            "match-sharded",
            consent_service("worker", "--concurrency", "1", "--queues", "matching,default"),
            # Two attempts: a partitioned shard fails a job in about three shard timeouts.
            {**host_env(hosts["match"]), **sealed.signing(), "JOB_MAX_ATTEMPTS": "2"},
        )
        wait_for_log(matching, " ready.")
        listening = queue_consumers(app.extensions["celery"], 2.0) or {}
        for k in (0, 1):
            for modality in ("face", "voice"):
                names = listening.get(f"gallery.{modality}.shard.{k}", [])
                report.check(
                    names == [f"gallery-shard{k}@shard{k}"],
                    f"shard {k}'s {modality} queue answered by gallery-shard{k}@shard{k}: {names}",
                )
        report.check(
            listening.get("matching") == ["celery@match"],
            f"the matching queue answered by celery@match alone: {listening.get('matching')}",
        )
        report.check(
            listening.get("webhooks") == ["celery@hooks"],
            f"the webhooks queue answered by celery@hooks alone: {listening.get('webhooks')}",
        )
        log(f"broadcast answers: {sorted((q, w) for q, w in listening.items())}")
        # Warm up the match host's models (outside the timings), as the reference's were warm.
        warm = [jobs[0]] + ([jobs[5]] if media.voices else [])
        for job in warm:
            body, seconds = api.decide(*job)
            files_put += sum(len(p) for p in job[1].values())
            log(f"warm-up {describe(job)}: {seconds * 1000:.0f} ms (the models load)")
        split = []
        for job in jobs:
            body, seconds = api.decide(*job)
            files_put += sum(len(p) for p in job[1].values())
            split.append((seen(body), seconds))

        # ---- the checks.
        log("")
        log(f"{'job':3} {'what':62} {'one host':>9} {'4 hosts':>9}  decision")
        for i, (job, (one, t_one), (four, t_four)) in enumerate(
            zip(jobs, reference, split, strict=True)
        ):
            report.jobs += 1
            report.decided += four[0] == "decided"
            same = one == four
            report.differ += not same
            differs = "" if same else f"  DIFFERS: {one!r} vs {four!r}"
            log(
                f"{i + 1:3} {describe(job)[:62]:62} {t_one * 1000:7.0f} ms "
                f"{t_four * 1000:7.0f} ms  {four[1]} {','.join(four[2])}{differs}"
            )
            report.check(one[0] == "decided", f"job {i + 1} decided by one host: {one}")
        report.check(report.decided == report.jobs, "every job decided by the four hosts")
        report.check(report.differ == 0, "the four hosts decide as one")
        if media.voices:
            report.check(
                [r[0][1] for r in reference[5:]]
                == ["allow", "allow", "allow", "needs_consent", "needs_consent"],
                f"the voice jobs' decisions: {[r[0][1] for r in reference[5:]]}",
            )
        report.check(reference[0][0][1] == "allow", "alice is found and allowed")

        # A duplicate enrollment is checked through the shards (the match host asks them).
        erin = enroll("erin@example.org", "face", media.photos["obama3.jpg"])
        files_put += 1
        report.check(
            erin.status == "disputed",
            f"a second account with alice's face is disputed: {erin.status}",
        )

        # A partition: shard 1's host cut off the network (its link down, its worker still
        # running). The job is sent again once and fails in bounded time, never decided from
        # half the gallery; once the link is back, the host answers again by itself.
        outs = fan_outs(matching.text())  # the searches of the whole network, for the figures
        partition(report, api, hosts["shard1"], jobs[0], reference[0][0], app)
        files_put += 2 * len(jobs[0][1]["source"])

        searches = [shard_searches(p.text(), k) for k, p in enumerate(shard_procs)]
        for k, found in enumerate(searches):
            report.check(found.get("face", 0) > 0, f"shard {k}'s host searched faces: {found}")
            if media.voices:
                report.check(
                    found.get("voice", 0) > 0, f"shard {k}'s host searched voices: {found}"
                )

        # Media: every upload sealed into the store, and gone from it once used.
        puts, deletes, put_bytes, left = media_log(database_url)
        where = "media_blob"
        if s3_url is not None:
            report.check(puts == 0, f"media_blob unused with MEDIA_STORE=s3: {puts} puts")
            puts, deletes, put_bytes, left = s3_log(s3_url)
            where = "the S3 bucket"
        report.check(
            puts == files_put, f"{where} received every upload: {puts} puts, {files_put} files"
        )
        report.check(
            deletes == puts and left == 0, f"{where} emptied: {deletes} deletes, {left} left"
        )
        report.media_through_store = puts == files_put == deletes and left == 0
        for process in procs.running:
            files = process.private_files()
            local = [f for f in files if any(f"{HOST_HOME}/{d}/" in f for d in LOCAL_MEDIA_DIRS)]
            report.media_local += [f"{process.host.name}:{f}" for f in local]
            log(f"{process.host.name:7} private files: {folders(files)}")
        operator_local = [
            str(p) for d in LOCAL_MEDIA_DIRS for p in (operator.home / d).rglob("*") if p.is_file()
        ]
        report.media_local += operator_local
        report.check(
            not report.media_local, f"no media file in any host's folders: {report.media_local}"
        )

        check_webhooks(
            report,
            api,
            hosts["hooks"],
            receiver,
            receiver_up,
            retried_job,
            {p.name: p.text() for p in (whole, matching, *shard_procs, hooks_worker)},
            beat.text(),
        )

        t_one = [r[1] for r in reference]
        t_four = [r[1] for r in split]
        log("")
        log(
            "job time, submission to decision seen by the client, median of "
            f"{len(t_one)}: one host {statistics.median(t_one) * 1000:.0f} ms, "
            f"4 hosts {statistics.median(t_four) * 1000:.0f} ms"
        )
        if outs:
            log(
                f"fan-out per search (match host's log): median {statistics.median(outs):.0f} ms, "
                f"max {max(outs):.0f} ms over {len(outs)}; shard searches: "
                + "; ".join(f"shard{k} {s}" for k, s in enumerate(searches))
            )
        log(
            f"media: {puts} uploads sealed into {where} ({put_bytes / 1e6:.1f} MB), "
            f"{deletes} deleted, {left} left; relayed: "
            + ", ".join(f"{n} {b / 1e6:.1f} MB" for n, b in relay.carried.items())
        )
        log(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-voice", action="store_true", help="faces only (no voice model)")
    parser.add_argument(
        "--media",
        choices=("database", "s3"),
        default="database",
        help="MEDIA_STORE of every host: PostgreSQL (default) or moto's S3-compatible server",
    )
    parser.add_argument("--receive", metavar="ADDRESS:PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receive:  # the provider's receiver, on the provider host
        return receive(args.receive)
    if os.geteuid() != 0:
        print(
            "bench/multihost.py must run as root: it makes network namespaces and mounts",
            file=sys.stderr,
        )
        return 2
    missing = [tool for tool in ("ip", "unshare", "setpriv") if shutil.which(tool) is None]
    if missing:
        print(
            f"bench/multihost.py needs {', '.join(missing)} (iproute2, util-linux)", file=sys.stderr
        )
        return 2

    def interrupted(signum, frame):  # SIGTERM, SIGHUP: clean up as for Ctrl-C
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    left = sweep()
    if left:
        log(f"removed what a dead run left: {', '.join(left)}")
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix=f"{PREFIX}{os.getpid()}-") as tmp:
            try:
                report = bench(args, Path(tmp))
            except BenchFailed as exc:
                log(f"FAILED: {exc}")
                return 1
    except KeyboardInterrupt:
        log("interrupted: everything the run made is removed")
        return 130
    finally:
        sweep(os.getpid())  # anything the run's own clean-up could not remove
    if report.media_local:
        media = f"MEDIA IN LOCAL FOLDERS: {len(report.media_local)}"
    elif not report.media_through_store:
        media = "media NOT all through the shared store"
    else:
        media = (
            "media through PostgreSQL only" if args.media == "database" else "media through S3 only"
        )
    log(f"wall time {time.monotonic() - started:.0f} s")
    if report.failures:
        log(f"{len(report.failures)} checks failed: " + "; ".join(report.failures))
    log(
        f"multihost: {len(HOSTS)} hosts, {report.jobs} jobs, {report.decided} decided, "
        f"{report.differ} differ from one host; {media}; {report.webhooks_ok} of "
        f"{report.webhooks_due} webhooks delivered by hooks, signed, once"
    )
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
