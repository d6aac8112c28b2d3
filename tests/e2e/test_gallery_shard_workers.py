"""The gallery past one machine, end to end: real photos and real recorded speech, a real matching
worker (the face and voice models) and two real shard workers (`worker --shard 0` and `1` of
GALLERY_SHARDS=2, no model) on Redis (broker and result backend). The same face and voice jobs
give the same decisions and findings as one worker searching the whole gallery; both shard
workers answer the health page's broadcast; a shard that does not answer fails the job, never
decides it from half the gallery, and never leaves it waiting forever."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from consent_service import db
from consent_service.app import create_app
from consent_service.biometrics.gallery import shard_of
from consent_service.biometrics.operator_import import import_voice
from consent_service.biometrics.service import wait_for_enrollment
from consent_service.gate.models import Decision, GateJob
from consent_service.gate.pipeline import SHARDS_UNAVAILABLE
from consent_service.migrate import upgrade
from consent_service.processes import shard_worker_command, worker_command
from consent_service.runtime import services
from consent_service.settings import Settings
from consent_service.tasking import queue_consumers
from consent_service.vocabulary import Operation
from tests.e2e.conftest import DECISION_TIMEOUT, LIVE_SCRIPT_SEED, Api, Stack
from tests.speech import shard_voice_jobs, shard_voices
from tests.support import redis_database, shard_face_jobs

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


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> dict[str, Path]:
    """Real recorded speech as WAV files (`tests.speech.shard_voices`)."""
    return shard_voices(tmp_path_factory.mktemp("voices"))


def _enroll_voice(stack: Stack, email: str, recording: Path):
    with stack.app.app_context():
        with db.unit_of_work() as s:
            enrollment, _ = import_voice(s, services().media_store, email, recording.read_bytes())
        # import_voice registered the enrollment's task: sent when the unit of work ended.
        return wait_for_enrollment(db.engine(), enrollment.id, DECISION_TIMEOUT)


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


def _fan_outs(log: Path, modality: str = "face") -> list[float]:
    return [
        float(ms)
        for ms in re.findall(
            rf"gallery fan-out: {modality}, 2 shards, \d+ probes, ([\d.]+) ms", log.read_text()
        )
    ]


@dataclass
class Runs:
    """What the same jobs gave through one whole-gallery worker, then through two shards."""

    stack: Stack
    api: Api
    matching_log: Path
    faces: list  # the face enrollments
    voices: list  # the voice enrollments
    face_jobs: list[tuple[str, dict]]
    whole: list[tuple]  # what a provider saw of each face job
    split: list[tuple]
    whole_ids: list[str]
    split_ids: list[str]
    voice_whole: list[tuple]
    voice_split: list[tuple]
    voice_whole_ids: list[str]
    voice_split_ids: list[str]


def _decide(api: Api, jobs: list[tuple[str, dict]]) -> tuple[list[tuple], list[str]]:
    seen, ids = [], []
    for operation, media in jobs:
        job = api.gate(operation, **media)
        seen.append(_seen(job))
        ids.append(job["id"])
    return seen, ids


@pytest.fixture(scope="module")
def runs(sharded, photos, strangers, voices, tmp_path_factory) -> Runs:
    """Both runs once for the module's tests: the workers start once each, the models load once
    per worker (outside the timings), faces and voices share them."""
    home, app, settings, workers = sharded
    stack = Stack("sqlite", settings, app, None, home / "whole.log")  # workers: below

    # ---- one worker, the whole gallery (GALLERY_SHARDS=1): enroll, grant, decide.
    workers.start("whole", worker_command(1, ("--loglevel", "INFO")))
    # Subjects 1 and 2 (the speakers), 3 and 4 (the matched faces): each pair in both shards.
    vera = _enroll_voice(stack, "vera@example.org", voices["fee083-trn06.wav"])
    victor = _enroll_voice(stack, "victor@example.org", voices["mee009-dev00.wav"])
    alice = stack.enroll("alice@example.org", photos["obama.jpg"], photos["obama2.jpg"])
    bob = stack.enroll("bob@example.org", photos["biden.jpg"])
    carol = stack.enroll("carol@example.org", strangers[0])
    dave = stack.enroll("dave@example.org", strangers[2])
    people, speakers = [alice, bob, carol, dave], [vera, victor]
    assert all(p.status == "completed" for p in people + speakers), [
        p.error for p in people + speakers
    ]
    for person in (alice, bob):
        stack.grant(person.subject_id, Operation.FACE_SWAP)
    for speaker in speakers:
        stack.grant(speaker.subject_id, Operation.VOICE_CLONING)
    _, key = stack.provider("Studio A")
    api = Api(stack.client(), key)
    face_jobs = shard_face_jobs(photos, strangers, tmp_path_factory.mktemp("jobs"))
    voice_jobs = shard_voice_jobs(voices)
    warm = api.gate(**face_jobs[0][1])  # the models load once, outside the timings
    warm_voice = api.gate(voice_jobs[0][0], **voice_jobs[0][1])
    whole, whole_ids = _decide(api, face_jobs + [face_jobs[0]] * 4)
    voice_whole, voice_whole_ids = _decide(api, voice_jobs)
    workers.stop("whole")

    # ---- a matching worker holding no gallery, and a worker per shard.
    shard_env = {"GALLERY_SHARDS": "2", "GALLERY_SHARD_TIMEOUT": str(SHARD_TIMEOUT)}
    for k in (0, 1):
        workers.start(f"shard{k}", shard_worker_command(k), GALLERY_SHARD=str(k), **shard_env)
    matching_log = workers.start(
        "matching", worker_command(1, queues=("matching",)), JOB_MAX_ATTEMPTS="2", **shard_env
    )
    workers.wait_ready("shard0", "shard1", "matching")
    assert api.gate(**face_jobs[0][1])["decision"] == warm["decision"]
    assert api.gate(voice_jobs[0][0], **voice_jobs[0][1])["decision"] == warm_voice["decision"]
    split, split_ids = _decide(api, face_jobs + [face_jobs[0]] * 4)
    voice_split, voice_split_ids = _decide(api, voice_jobs)
    return Runs(
        stack,
        api,
        matching_log,
        people,
        speakers,
        face_jobs,
        whole,
        split,
        whole_ids,
        split_ids,
        voice_whole,
        voice_split,
        voice_whole_ids,
        voice_split_ids,
    )


def test_two_face_shards_decide_as_one_gallery(sharded, runs, photos):
    home, app, _, _ = sharded
    alice, bob, _, _ = runs.faces
    # The matched people live in both shards.
    assert {shard_of(p.subject_id, 2) for p in (alice, bob)} == {0, 1}
    assert {shard_of(p.subject_id, 2) for p in runs.faces} == {0, 1}
    assert runs.whole[0][0] == "allow" and runs.whole[1][0] == "allow", runs.whole
    assert runs.whole[4][1] == ["not_covered"]
    assert runs.split == runs.whole
    for k in (0, 1):  # each shard searched and said so
        assert re.search(
            rf"gallery shard {k}/2: face, \d+ probes", (home / f"shard{k}.log").read_text()
        )

    # Enrollment's duplicate check goes through the shards too (excluding the enrolling person).
    again = runs.stack.enroll("erin@example.org", photos["obama3.jpg"])
    assert again.status == "disputed", again.error

    # What the fan-out costs on this machine, printed for the README (pytest -s).
    fan_outs = _fan_outs(runs.matching_log)
    one, two = _latencies(app, runs.whole_ids), _latencies(app, runs.split_ids)
    print(
        f"\njob latency, median of {len(one)}: whole gallery "
        f"{statistics.median(one) * 1000:.0f} ms, 2 shards "
        f"{statistics.median(two) * 1000:.0f} ms; fan-out per search: median "
        f"{statistics.median(fan_outs):.0f} ms, max {max(fan_outs):.0f} ms over {len(fan_outs)}"
    )


def test_two_voice_shards_decide_as_one_gallery(sharded, runs, voices):
    home, app, _, _ = sharded
    vera, victor = runs.voices
    # The two enrolled speakers live in different shards.
    assert {shard_of(vera.subject_id, 2), shard_of(victor.subject_id, 2)} == {0, 1}
    decisions = [(decision, reasons) for decision, reasons, _ in runs.voice_whole]
    assert decisions == [
        ("allow", ["all_consented"]),  # Vera, heard in another meeting
        ("allow", ["all_consented"]),  # Victor, heard in another meeting
        ("allow", ["all_consented"]),  # both in one recording: both shards' subjects
        ("needs_consent", ["unenrolled"]),
        ("needs_consent", ["not_covered"]),
    ], runs.voice_whole
    heard = [{(outcome, ref) for _, _, outcome, ref, _ in seen[2]} for seen in runs.voice_whole]
    assert len(heard[0]) == len(heard[1]) == 1 and heard[0] != heard[1], heard
    assert heard[2] == heard[0] | heard[1]  # each speaker of the recording found in their shard
    assert runs.voice_split == runs.voice_whole
    for k in (0, 1):
        assert re.search(
            rf"gallery shard {k}/2: voice, \d+ probes", (home / f"shard{k}.log").read_text()
        )

    # A voice enrolled by another account is disputed through the voice shards.
    mallory = _enroll_voice(runs.stack, "mallory@example.org", voices["fee083-trn09.wav"])
    assert mallory.status == "disputed", mallory.error
    assert "already enrolled by another account" in mallory.error

    fan_outs = _fan_outs(runs.matching_log, "voice")
    one, two = _latencies(app, runs.voice_whole_ids), _latencies(app, runs.voice_split_ids)
    print(
        f"\nvoice job latency, median of {len(one)}: whole gallery "
        f"{statistics.median(one) * 1000:.0f} ms, 2 shards "
        f"{statistics.median(two) * 1000:.0f} ms; fan-out per search: median "
        f"{statistics.median(fan_outs):.0f} ms, max {max(fan_outs):.0f} ms over {len(fan_outs)}"
    )


def test_each_shard_worker_answers_the_health_pages_broadcast(sharded, runs):
    _, app, _, _ = sharded
    listening = queue_consumers(app.extensions["celery"], 1.0)
    assert listening is not None
    for k in (0, 1):
        for modality in ("face", "voice"):
            [worker] = listening[f"gallery.{modality}.shard.{k}"]
            assert worker.startswith(f"gallery-shard{k}@"), listening
    assert len(listening["gallery.merge"]) == 2
    assert len(listening["matching"]) == 1  # the matching worker: no shard's queue


def test_a_silent_shard_fails_the_job_and_stops_answering(sharded, runs):
    _, app, _, workers = sharded
    api, jobs = runs.api, runs.face_jobs
    # ---- shard 1 stops answering: the job is sent again, then fails; no decision is made.
    workers.stop("shard1")
    listening = queue_consumers(app.extensions["celery"], 1.0)
    assert listening is not None
    assert "gallery.face.shard.1" not in listening and "gallery.voice.shard.1" not in listening
    assert [w.split("@")[0] for w in listening["gallery.merge"]] == ["gallery-shard0"]
    started = time.monotonic()
    response = api.submit(**jobs[0][1])
    job = api.wait(response.get_json()["id"])
    assert job["status"] == "failed", job
    assert job["decision"] is None and job["findings"] == []
    assert job["error"] == SHARDS_UNAVAILABLE and job["attempts"] == 2
    # Each attempt waits SHARD_TIMEOUT, and the retry as long again before the second.
    assert time.monotonic() - started < 3 * SHARD_TIMEOUT + 30
    assert "did not all answer" in runs.matching_log.read_text()
    with app.app_context():
        assert db.session().get(Decision, job["id"]) is None
