"""The gallery past one machine, end to end: real photos, a real matching worker (the face model)
and two real shard workers (`worker --shard 0` and `1` of GALLERY_SHARDS=2, no face model) on
Redis (broker and result backend). The same jobs give the same decisions and findings as one
worker searching the whole gallery; a shard that does not answer fails the job, never decides
it from half the gallery, and never leaves it waiting forever."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from consent_service import db
from consent_service.app import create_app
from consent_service.biometrics.gallery import shard_of
from consent_service.gate.models import Decision, GateJob
from consent_service.gate.pipeline import SHARDS_UNAVAILABLE
from consent_service.migrate import upgrade
from consent_service.processes import shard_worker_command, worker_command
from consent_service.settings import Settings
from consent_service.vocabulary import Operation
from tests.e2e.conftest import LIVE_SCRIPT_SEED, Api, Stack
from tests.support import redis_database, side_by_side

pytestmark = pytest.mark.e2e

SHARD_TIMEOUT = 5  # seconds a job waits for every shard (GALLERY_SHARD_TIMEOUT)


class Workers:
    """Worker processes of the test, each with its own log; stopped at the end."""

    def __init__(self, home: Path, env: dict[str, str]):
        self.home, self.env, self.running = home, env, {}

    def start(self, name: str, argv: list[str], **env: str) -> Path:
        log = self.home / f"{name}.log"
        with open(log, "wb") as fh:
            self.running[name] = subprocess.Popen(
                argv, env={**self.env, **env}, stdout=fh, stderr=subprocess.STDOUT
            )
        return log

    def wait_ready(self, *names: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            log = self.home / f"{name}.log"
            while " ready." not in log.read_text(errors="replace"):
                if self.running[name].poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"worker {name} did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)

    def stop(self, name: str) -> None:
        process = self.running.pop(name)
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    home = tmp_path_factory.mktemp("home-shards")
    with ExitStack() as cleanup:
        broker_url = cleanup.enter_context(redis_database())
        database_url = f"sqlite:///{home / 'consent.sqlite'}"
        settings = Settings(
            consent_service_home=home,
            database_url=database_url,
            broker_url=broker_url,
            api_rate_limit="1000000/minute",
            live_script_seed=LIVE_SCRIPT_SEED,
        )
        upgrade(settings.sqlalchemy_url)
        app = create_app(settings)
        cleanup.callback(app.extensions["db_engine"].dispose)
        workers = Workers(
            home,
            {
                **os.environ,
                "CONSENT_SERVICE_HOME": str(home),
                "DATABASE_URL": database_url,
                "BROKER_URL": broker_url,
                "LIVE_SCRIPT_SEED": str(LIVE_SCRIPT_SEED),
                "PYTHONPATH": os.pathsep.join(sys.path),
            },
        )
        cleanup.callback(workers.stop_all)
        yield home, app, settings, workers


def _jobs(photos, strangers, tmp: Path) -> list[tuple[str, dict]]:
    """The same jobs for both runs: matches in either shard, two people of two shards in one
    photo, strangers beside enrolled people, a group photo, an uncovered operation."""
    both = side_by_side(tmp / "both.jpg", photos["obama3.jpg"], photos["biden.jpg"])
    mixed = side_by_side(tmp / "mixed.jpg", photos["obama3.jpg"], strangers[1])
    return [
        ("face_swap", {"source": [photos["obama3.jpg"]]}),
        ("face_swap", {"target": [both]}),
        ("face_swap", {"source": [strangers[3]], "target": [mixed]}),
        ("face_swap", {"target": [photos["t1.jpg"]]}),
        ("face_reenactment", {"target": [photos["biden.jpg"]]}),
    ]


def _seen(job: dict) -> tuple:
    """What a provider learns of a job: the decision, its reasons, every finding."""
    assert job["status"] == "decided", job
    findings = sorted(
        (f["media"], f["role"], f["outcome"], f["subject_ref"] or "", tuple(f["box"] or ()))
        for f in job["findings"]
    )
    return job["decision"], sorted(job["reasons"]), findings


def _latencies(app, job_ids: list[str]) -> list[float]:
    """Seconds from each job's submission to its decision's record (the database's clocks)."""
    with app.app_context():
        s = db.session()
        return [
            (s.get(Decision, j).created_at - s.get(GateJob, j).created_at).total_seconds()
            for j in job_ids
        ]


def _fan_outs(log: Path) -> list[float]:
    return [
        float(ms)
        for ms in re.findall(
            r"gallery fan-out: face, 2 shards, \d+ probes, ([\d.]+) ms", log.read_text()
        )
    ]


def test_two_shards_decide_as_one_gallery_and_a_silent_shard_fails_the_job(
    sharded, photos, strangers, tmp_path
):
    home, app, settings, workers = sharded
    stack = Stack("sqlite", settings, app, None, home / "whole.log")  # workers: below

    # ---- one worker, the whole gallery (GALLERY_SHARDS=1): enroll, grant, decide.
    workers.start("whole", worker_command(1, ("--loglevel", "INFO")))
    alice = stack.enroll("alice@example.org", photos["obama.jpg"], photos["obama2.jpg"])
    bob = stack.enroll("bob@example.org", photos["biden.jpg"])
    carol = stack.enroll("carol@example.org", strangers[0])
    dave = stack.enroll("dave@example.org", strangers[2])
    people = [alice, bob, carol, dave]
    assert all(p.status == "completed" for p in people), [p.error for p in people]
    # The matched people live in both shards.
    assert {shard_of(p.subject_id, 2) for p in (alice, bob)} == {0, 1}
    assert {shard_of(p.subject_id, 2) for p in people} == {0, 1}
    for person in (alice, bob):
        stack.grant(person.subject_id, Operation.FACE_SWAP)
    _, key = stack.provider("Studio A")
    api = Api(stack.client(), key)
    jobs = _jobs(photos, strangers, tmp_path)
    warm = api.gate(**jobs[0][1])  # the face model loads once, outside the timings
    whole, whole_ids = [], []
    for operation, media in jobs + [jobs[0]] * 4:
        job = api.gate(operation, **media)
        whole.append(_seen(job))
        whole_ids.append(job["id"])
    assert whole[0][0] == "allow" and whole[1][0] == "allow", whole
    assert whole[4][1] == ["not_covered"]
    workers.stop("whole")

    # ---- a matching worker holding no gallery, and a worker per shard.
    shard_env = {"GALLERY_SHARDS": "2", "GALLERY_SHARD_TIMEOUT": str(SHARD_TIMEOUT)}
    for k in (0, 1):
        workers.start(f"shard{k}", shard_worker_command(k), GALLERY_SHARD=str(k), **shard_env)
    matching_log = workers.start(
        "matching", worker_command(1, queues=("matching",)), JOB_MAX_ATTEMPTS="2", **shard_env
    )
    workers.wait_ready("shard0", "shard1", "matching")
    assert api.gate(**jobs[0][1])["decision"] == warm["decision"]
    split, split_ids = [], []
    for operation, media in jobs + [jobs[0]] * 4:
        job = api.gate(operation, **media)
        split.append(_seen(job))
        split_ids.append(job["id"])
    assert split == whole
    for k in (0, 1):  # each shard searched and said so
        assert re.search(
            rf"gallery shard {k}/2: face, \d+ probes", (home / f"shard{k}.log").read_text()
        )

    # Enrollment's duplicate check goes through the shards too (excluding the enrolling person).
    again = stack.enroll("erin@example.org", photos["obama3.jpg"])
    assert again.status == "disputed", again.error

    # What the fan-out costs on this machine, printed for the README (pytest -s).
    fan_outs = _fan_outs(matching_log)
    one, two = _latencies(app, whole_ids), _latencies(app, split_ids)
    print(
        f"\njob latency, median of {len(one)}: whole gallery "
        f"{statistics.median(one) * 1000:.0f} ms, 2 shards "
        f"{statistics.median(two) * 1000:.0f} ms; fan-out per search: median "
        f"{statistics.median(fan_outs):.0f} ms, max {max(fan_outs):.0f} ms over {len(fan_outs)}"
    )

    # ---- shard 1 stops answering: the job is sent again, then fails; no decision is made.
    workers.stop("shard1")
    started = time.monotonic()
    response = api.submit(**jobs[0][1])
    job = api.wait(response.get_json()["id"])
    assert job["status"] == "failed", job
    assert job["decision"] is None and job["findings"] == []
    assert job["error"] == SHARDS_UNAVAILABLE and job["attempts"] == 2
    # Each attempt waits SHARD_TIMEOUT, and the retry as long again before the second.
    assert time.monotonic() - started < 3 * SHARD_TIMEOUT + 30
    assert "did not all answer" in matching_log.read_text()
    with app.app_context():
        assert db.session().get(Decision, job["id"]) is None
