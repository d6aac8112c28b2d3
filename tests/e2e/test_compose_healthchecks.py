"""docker-compose.yml's health checks of our own processes, run here as the container would run
them, against the real processes started natively (no Docker here): the web's `/healthz` probe,
the workers' `celery inspect ping` to their own node, beat's schedule-file age. Each passes while
its process works and fails once it does not, so none is a check that always answers yes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from consent_service.migrate import upgrade
from consent_service.processes import web_command
from tests.support import free_port, redis_database

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
BIN = Path(sys.executable).parent
START_TIMEOUT = 90


def _check(service: str, substitutions: dict[str, str]) -> list[str]:
    """The service's health check as an argv, as Docker runs it in the container: `CMD` as it
    is, `CMD-SHELL` through sh; compose's `$$` is a literal `$`."""
    test = yaml.safe_load(COMPOSE.read_text())["services"][service]["healthcheck"]["test"]
    kind, *words = test
    argv = words if kind == "CMD" else ["sh", "-c", words[0].replace("$$", "$")]
    for old, new in substitutions.items():
        argv = [word.replace(old, new) for word in argv]
    return argv


def _healthy(argv: list[str], env: dict[str, str]) -> bool:
    ran = subprocess.run(argv, env=env, capture_output=True, timeout=60, cwd=ROOT)  # noqa: S603
    return ran.returncode == 0


def _eventually_healthy(argv, env, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not _healthy(argv, env):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{argv} never passed:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(1)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - our own command line
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )


@pytest.fixture
def env(tmp_path) -> Iterator[dict[str, str]]:
    """A development home of its own and a Redis database as the broker (the workers' ping is a
    broadcast, which Redis carries); our interpreter's scripts first on PATH."""
    home = tmp_path / "home"
    home.mkdir()
    upgrade(f"sqlite:///{home / 'consent.sqlite'}")
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONSENT_")}
    for name in ("DATABASE_URL", "BROKER_URL", "PROXY_HOPS", "SECRET_KEY", "TEMPLATE_KEK"):
        base.pop(name, None)
    with redis_database() as broker:
        yield {
            **base,
            "CONSENT_SERVICE_HOME": str(home),
            "BROKER_URL": broker,
            "PATH": f"{BIN}{os.pathsep}{base.get('PATH', '')}",
            # What Docker sets in every container: the node name the worker's check pings.
            "HOSTNAME": socket.gethostname(),
        }


def test_the_web_check_follows_the_web_server(env, tmp_path):
    port = free_port()
    check = _check("web", {"python": sys.executable, "127.0.0.1:8000": f"127.0.0.1:{port}"})
    web = _start(web_command("127.0.0.1", port, 1), env, tmp_path / "web.log")
    try:
        _eventually_healthy(check, env, web, tmp_path / "web.log")
    finally:
        _stop(web)
    assert not _healthy(check, env)


def test_the_worker_check_pings_its_own_node(env, tmp_path):
    check = _check("worker", {})
    assert "celery@" in check[-1]
    command = [str(BIN / "consent-service"), "worker", "--concurrency", "1", "--queues", "default"]
    worker = _start(command, env, tmp_path / "worker.log")
    try:
        _eventually_healthy(check, env, worker, tmp_path / "worker.log")
        # Another node's name gets no answer: the check names this container's worker.
        assert not _healthy(check, {**env, "HOSTNAME": "some-other-container"})
    finally:
        _stop(worker)
    assert not _healthy(check, env)


def test_a_gallery_shard_check_pings_its_own_node(env, tmp_path):
    """`worker --shard 0` (this tree's code: `-m`, from the root) answers its service's check,
    addressed to `gallery-shard0@<container>`, and not the main worker's `celery@<container>`."""
    check = _check("gallery-shard-0", {})
    shard_env = {**env, "GALLERY_SHARDS": "2"}
    command = [sys.executable, "-m", "consent_service.cli", "worker", "--shard", "0"]
    shard = _start(command, shard_env, tmp_path / "shard.log")
    try:
        _eventually_healthy(check, shard_env, shard, tmp_path / "shard.log")
        assert not _healthy(_check("worker", {}), shard_env)
    finally:
        _stop(shard)
    assert not _healthy(check, shard_env)


def test_the_beat_check_reads_the_age_of_its_schedule(env, tmp_path):
    home = Path(env["CONSENT_SERVICE_HOME"])
    check = _check("beat", {"python": sys.executable, "/data/": f"{home}/"})
    assert not _healthy(check, env)  # no beat has run here
    beat = _start([str(BIN / "consent-service"), "beat"], env, tmp_path / "beat.log")
    try:
        _eventually_healthy(check, env, beat, tmp_path / "beat.log")
    finally:
        _stop(beat)
    # A schedule last saved eleven minutes ago: beat hung (it saves at least every 3 minutes).
    long_ago = time.time() - 11 * 60
    for saved in home.glob("celerybeat-schedule*"):
        os.utime(saved, (long_ago, long_ago))
    assert not _healthy(check, env)
