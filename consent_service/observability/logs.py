"""Structured logs: one JSON object a line (timestamp, level, logger, message and the ids bound in
`logcontext`: `request_id` in a web request and in the tasks it sent, `task_id` and `task` in a
Celery task, `job_id` in the gate's), on in production (LOG_FORMAT). Also the request id
itself: taken from a sane `X-Request-ID` header or made, bound for the request, echoed in the
answer."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
import uuid
from datetime import UTC, datetime
from typing import Any

from celery import signals
from flask import Flask, Response, g, request

from consent_service import logcontext
from consent_service.settings import Settings

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept when it is short and plain (no spaces, quotes or control characters that
# could forge a log field); any other is replaced by one of ours.
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

# A LogRecord's own attributes; anything else on a record came through `extra=` and is kept.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "log_ids"}

requests_log = logging.getLogger("consent_service.requests")


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: the fixed fields, the bound ids, the `extra=` fields and,
    with an exception, its traceback as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "log_ids", None) or logcontext.current())
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in line and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a line is written (as logging's last resort
    does), never to a stream closed since the handler was made."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(settings: Settings) -> None:
    """In JSON mode, the root logger writes JSON lines to stderr at LOG_LEVEL (our handler
    replaced, never added twice, however many apps a process builds). In text mode nothing is
    changed: the process that runs us (Celery, granian, the CLI) keeps its own logging."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    if not settings.logs_as_json:
        return
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(logcontext.ContextFilter())
    root.addHandler(handler)
    root.setLevel(settings.log_level)


def request_id_from(header: str | None) -> str:
    if header and _SANE_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def init_app(app: Flask) -> None:
    """Every request: its id bound while it runs and echoed in `X-Request-ID`; one `request`
    line at INFO when it ends (method, route pattern and endpoint, never the path itself: paths
    carry tokens; status; duration)."""

    @app.before_request
    def _bind_request_id() -> None:
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        g.request_log_token = logcontext.bind(request_id=g.request_id)
        g.request_started = time.perf_counter()

    @app.after_request
    def _answer_with_id(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id is None:  # a request that failed before its hooks ran
            return response
        response.headers[REQUEST_ID_HEADER] = request_id
        requests_log.info(
            "%s %s %s",
            request.method,
            request.url_rule.rule if request.url_rule else "(no route)",
            response.status_code,
            extra={
                "method": request.method,
                "route": request.url_rule.rule if request.url_rule else None,
                "endpoint": request.endpoint,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - g.request_started) * 1000, 1),
            },
        )
        return response

    @app.teardown_request
    def _unbind_request_id(_exc: BaseException | None) -> None:
        token = g.pop("request_log_token", None)
        if token is not None:
            logcontext.unbind(token)

    connect_task_ids()


_task_tokens: dict[str, Any] = {}


# The message header that carries the sender's request id to the task (and from a task to the
# tasks it sends): a job's lines in the worker name the API request that submitted it.
TASK_REQUEST_ID_HEADER = "request_id"


def _stamp_request_id(headers: dict[str, Any] | None = None, **_kwargs: Any) -> None:
    """`before_task_publish`, in the sending process: the request id bound there, if any."""
    request_id = logcontext.current().get("request_id")
    if headers is not None and request_id is not None:
        headers.setdefault(TASK_REQUEST_ID_HEADER, request_id)


def _request_id_of(task: Any) -> str | None:
    """The request id a task's message carries (a sane one only: a header is input too)."""
    request = getattr(task, "request", None)
    # A worker puts a message's own headers on the request itself and in `request.headers`;
    # an eager `apply(headers=...)` only in the latter.
    value = getattr(request, TASK_REQUEST_ID_HEADER, None) or (
        getattr(request, "headers", None) or {}
    ).get(TASK_REQUEST_ID_HEADER)
    return value if isinstance(value, str) and _SANE_ID.fullmatch(value) else None


def _task_started(task_id: str | None = None, task: Any = None, **_kwargs: Any) -> None:
    if task_id is not None:
        _task_tokens[task_id] = logcontext.bind(
            task_id=task_id, task=getattr(task, "name", None), request_id=_request_id_of(task)
        )


def _task_ended(task_id: str | None = None, **_kwargs: Any) -> None:
    token = _task_tokens.pop(task_id or "", None)
    if token is not None:
        logcontext.unbind(token)


def connect_task_ids() -> None:
    """Each Celery task's lines carry its `task_id` and `task`, and the `request_id` of the
    request (or task) that sent it (signals run in the task's own thread, before and after it,
    and in the sender when it publishes; connected once per process)."""
    signals.before_task_publish.connect(
        _stamp_request_id, weak=False, dispatch_uid="consent_log_ids_publish"
    )
    signals.task_prerun.connect(_task_started, weak=False, dispatch_uid="consent_log_ids_prerun")
    signals.task_postrun.connect(_task_ended, weak=False, dispatch_uid="consent_log_ids_postrun")
