"""The demo's web server stops without a traceback: `consent-service demo` used to end with
waitress's `OSError: [Errno 9] Bad file descriptor`."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack

import requests
from flask import Flask, Response

from consent_service.demo import start_web


def test_stopping_waits_for_the_request_in_flight_and_ends_every_thread(caplog):
    app = Flask(__name__)
    finished = threading.Event()

    @app.get("/")
    def large() -> Response:
        # Over waitress's send_bytes, so the task thread itself sends the body: the client has
        # its answer while the thread is still at work (here: a slow close), as a demo request
        # can be when the demo stops. Ending, the thread wakes the server's loop.
        response = Response(b"x" * 40_000)
        response.call_on_close(lambda: (time.sleep(0.5), finished.set()))
        return response

    before = set(threading.enumerate())
    with ExitStack() as stack:
        url = start_web(app, stack)
        started = set(threading.enumerate()) - before
        with requests.Session() as http:
            assert len(http.get(url, timeout=10).content) == 40_000
    # Stopped: the request in flight finished, and no thread of the server is left.
    assert finished.is_set()
    assert {t.name for t in started} >= {"demo-web"}
    for thread in started:  # given time, so a stop that returns early still shows what follows
        thread.join(timeout=3)
    assert [t.name for t in started if t.is_alive()] == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], [r.getMessage() for r in errors]
