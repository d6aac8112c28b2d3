"""Structured logs: JSON lines with the fixed fields and the ids bound for a request or a task,
written where stderr is when they are written; the request id taken only when it is sane."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
from flask import current_app

from consent_service import logcontext
from consent_service.gate import tasks
from consent_service.observability import logs
from consent_service.settings import Settings
from consent_service.tasking import celery_config

log = logging.getLogger("consent_service.test")


@pytest.fixture
def json_logs(tmp_path):
    root = logging.getLogger()
    level = root.level
    logs.configure(Settings(consent_service_home=tmp_path, log_format="json"))
    yield
    logs.configure(Settings(consent_service_home=tmp_path, log_format="text"))  # ours removed
    root.setLevel(level)


def _lines(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_a_line_has_the_fixed_fields_the_bound_ids_and_the_extras(json_logs, capsys):
    with logcontext.bound(request_id="r-1", job_id=None):
        log.info("job %s refused", "j1", extra={"status": 409})
    log.info("after")
    first, after = _lines(capsys.readouterr().err)
    assert first.pop("timestamp").endswith("+00:00")
    assert first == {
        "level": "INFO",
        "logger": "consent_service.test",
        "message": "job j1 refused",
        "request_id": "r-1",  # job_id=None is not bound
        "status": 409,
    }
    assert "request_id" not in after


def test_an_exception_is_one_line_with_its_traceback(json_logs, capsys):
    try:
        raise ValueError("bad input")
    except ValueError:
        log.exception("failed")
    (line,) = _lines(capsys.readouterr().err)
    assert line["level"] == "ERROR" and line["exception"].endswith("ValueError: bad input")


def test_text_mode_leaves_the_root_logger_alone(tmp_path):
    before = list(logging.getLogger().handlers)
    logs.configure(Settings(consent_service_home=tmp_path))  # development: text
    assert logging.getLogger().handlers == before
    production = Settings(consent_service_home=tmp_path, consent_service_env="production")
    assert production.logs_as_json and not Settings(consent_service_home=tmp_path).logs_as_json


def test_a_gate_task_s_lines_carry_its_task_id_and_job_id(
    json_logs, capsys, worker_context, tmp_path, monkeypatch
):
    def decide(job_id, *_args):
        logging.getLogger("consent_service.gate.tasks").warning("deciding %s", job_id)
        return "decided"

    monkeypatch.setattr(tasks, "decide", decide)
    monkeypatch.setattr(tasks, "signing", lambda _svc: None)
    current_app.extensions["consent_services"] = SimpleNamespace(
        settings=Settings(consent_service_home=tmp_path),
        media_store=None,
        face_matching=None,
        voice_matching=None,
    )
    logs.connect_task_ids()
    tasks.process_job.apply(args=["job-1"], task_id="task-1")  # runs the task signals too
    log.warning("between tasks")
    lines = _lines(capsys.readouterr().err)
    deciding = next(line for line in lines if line["message"] == "deciding job-1")
    assert (deciding["job_id"], deciding["task_id"], deciding["task"]) == (
        "job-1",
        "task-1",
        "gate.process_job",
    )
    assert {"job_id", "task_id"}.isdisjoint(lines[-1])  # unbound when the task ended


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("3f2a-17.req", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("two words", False),
        ('x"}, "level": "ERROR', False),
        ("", False),
        (None, False),
    ],
)
def test_a_request_id_is_kept_only_when_sane(header, kept):
    got = logs.request_id_from(header)
    if kept:
        assert got == header
    else:
        assert len(got) == 32 and int(got, 16) >= 0


def test_a_json_worker_keeps_its_own_stderr(tmp_path):
    """Celery's redirect of stderr into its logger would hand each JSON line back to the handler
    that wrote it, and Celery drops such a recursive write: the worker logged nothing."""
    json_worker = celery_config(Settings(consent_service_home=tmp_path, log_format="json"))
    text_worker = celery_config(Settings(consent_service_home=tmp_path, log_format="text"))
    assert (json_worker["worker_redirect_stdouts"], text_worker["worker_redirect_stdouts"]) == (
        False,
        True,
    )


def test_a_task_carries_the_request_id_of_the_request_that_sent_it(json_logs, capsys):
    """The id goes out in the message's headers (`before_task_publish`, in the sender) and is
    bound again in the worker (`task_prerun`): here a real worker thread on an in-memory broker
    runs the task, and its line names the request that sent it."""
    from celery import Celery
    from celery.contrib.testing.worker import start_worker

    app = Celery("request-id-test", broker="memory://", backend="cache+memory://")
    app.conf.worker_hijack_root_logger = False  # keep the JSON handler this test reads

    @app.task(name="test.says_hello")
    def says_hello() -> str:
        log.warning("hello from the task")
        return "ok"

    logs.connect_task_ids()
    with start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING"):
        with logcontext.bound(request_id="req-7f3a"):
            result = says_hello.delay()
        assert result.get(timeout=30) == "ok"
        untraced = says_hello.delay()  # sent outside any request: no id to carry
        assert untraced.get(timeout=30) == "ok"
    said = [
        line for line in _lines(capsys.readouterr().err) if line["message"] == "hello from the task"
    ]
    assert [line.get("request_id") for line in said] == ["req-7f3a", None]
    assert all(line["task"] == "test.says_hello" for line in said)


def test_a_forged_request_id_header_is_not_bound():
    forged = SimpleNamespace(request=SimpleNamespace(request_id='x", "level": "ERROR', headers={}))
    eager = SimpleNamespace(request=SimpleNamespace(headers={"request_id": "r-1"}))
    assert logs._request_id_of(forged) is None
    assert logs._request_id_of(eager) == "r-1"
