"""The shipped client waits out a 429 (as long as Retry-After says) instead of failing a poll."""

from __future__ import annotations

import threading

from werkzeug.serving import make_server

from consent_service.client import ConsentClient


def test_client_polls_through_the_rate_limit(make_api_app, tmp_path):
    api = make_api_app(api_rate_limit="3/second")
    server = make_server("127.0.0.1", 0, api.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    image = tmp_path / "me.jpg"
    image.write_bytes(b"not decoded: no worker runs here")
    client = ConsentClient(f"http://127.0.0.1:{server.server_port}", api.key, timeout=10)
    try:
        job = client.submit("face_swap", source=image)
        # Ten polls in well under two seconds: over 3/second, so some are answered 429.
        polled = [client.job(job["id"])["id"] for _ in range(10)]
    finally:
        client.close()
        server.shutdown()
        thread.join()
    assert polled == [job["id"]] * 10
