"""The real webhook transport against a receiver on loopback: statuses, no redirects followed,
short timeouts, and the SSRF guard that production runs with."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from consent_service.errors import InvalidRequest
from consent_service.webhooks.transport import (
    DeliveryError,
    HttpTransport,
    _Deadline,
    check_url,
    is_public,
)


class _Receiver(BaseHTTPRequestHandler):
    seen: list[tuple[str, bytes, dict]] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, body, dict(self.headers)))
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
        elif self.path == "/slow":
            time.sleep(1.5)
            self.send_response(200)
        elif self.path.startswith("/drip"):  # one byte every 0.1 s: no read ever times out
            # /drip-close: the answer says `Connection: close` (http.client then gives the socket
            # to the response); /drip-http10: an HTTP/1.0 answer (the same, implicitly).
            status = "HTTP/1.0 200 OK" if self.path == "/drip-http10" else "HTTP/1.1 200 OK"
            close = "Connection: close\r\n" if self.path == "/drip-close" else ""
            self.wfile.write(f"{status}\r\n{close}Content-Length: 100\r\n\r\n".encode())
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
            return
        else:
            self.send_response(int(self.path.strip("/") or 200))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_posts_the_body_and_headers_and_returns_the_status(receiver):
    transport = HttpTransport(timeout=2, allow_private=True)
    assert transport.post(f"{receiver}/204", b'{"a":1}', {"Consent-Signature": "t=1,v1=00"}) == 204
    assert transport.post(f"{receiver}/500", b"{}", {}) == 500
    path, body, headers = _Receiver.seen[0]
    assert (path, body) == ("/204", b'{"a":1}')
    assert headers["Consent-Signature"] == "t=1,v1=00"
    assert headers["Content-Type"] == "application/json"


def test_redirects_are_not_followed(receiver):
    transport = HttpTransport(timeout=2, allow_private=True)
    assert transport.post(f"{receiver}/redirect", b"{}", {}) == 302
    assert [p for p, _, _ in _Receiver.seen] == ["/redirect"]


def test_a_slow_receiver_times_out(receiver):
    transport = HttpTransport(timeout=0.3, allow_private=True)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="timed out"):
        transport.post(f"{receiver}/slow", b"{}", {})
    assert time.monotonic() - started < 1.2


@pytest.mark.parametrize("path", ["/drip", "/drip-close", "/drip-http10"])
def test_a_receiver_that_drips_its_answer_is_cut_off_at_the_deadline(receiver, path):
    """Each read gets a byte before `timeout`, so only the total deadline ends the attempt;
    also when the answer closes the connection after it (the socket is then the response's,
    no longer the connection's: the deadline cut nothing and the attempt ran 10 s)."""
    transport = HttpTransport(timeout=0.5, allow_private=True, deadline=1.0)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="no full answer within 1 s"):
        transport.post(f"{receiver}{path}", b"{}", {})
    assert time.monotonic() - started < 1.8


def test_a_socket_opened_after_the_deadline_is_cut_at_once():
    """A deadline reached while the socket still connected (a loaded machine, a receiver slow to
    accept) cut nothing before: the attempt then read a dripping answer unbounded."""
    deadline = _Deadline(0.01)
    deadline.start()
    time.sleep(0.2)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        deadline.watch(ours)
        ours.settimeout(1)  # not cut: the read below would time out
        assert deadline.expired and ours.recv(1) == b""  # shut down: the read ends at once


def test_production_never_connects_to_internal_addresses(receiver):
    transport = HttpTransport(timeout=2, allow_private=False)
    port = receiver.rsplit(":", 1)[1]
    for url in (receiver + "/200", f"http://localhost:{port}/200", f"http://[::1]:{port}/"):
        with pytest.raises(DeliveryError, match="non-public"):
            transport.post(url, b"{}", {})
    assert _Receiver.seen == []


def test_bad_urls_and_closed_ports_are_delivery_errors():
    transport = HttpTransport(timeout=1, allow_private=True)
    with pytest.raises(DeliveryError):
        transport.post("ftp://127.0.0.1/", b"{}", {})
    with pytest.raises(DeliveryError):
        transport.post("http://127.0.0.1:9/", b"{}", {})  # discard port: nothing listens


# IPv6 spellings of internal IPv4 addresses: each reaches (through NAT64, a 6to4 relay, a
# dual-stack socket or a translator) the address it embeds, so each is refused like it.
EMBEDDED_INTERNAL = [
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254 (cloud metadata)
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b:1::a9fe:a9fe",  # local-use NAT64 prefix
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:0a00:0001::1",  # 6to4 of 10.0.0.1
    "::127.0.0.1",  # IPv4-compatible
    "::a9fe:a9fe",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:192.168.1.1",
    "::ffff:0:7f00:1",  # IPv4-translated (SIIT)
    "::",
    "::1",
]
EMBEDDED_PUBLIC = ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8", "2606:4700::1111"]


@pytest.mark.parametrize("address", EMBEDDED_INTERNAL)
def test_ipv6_forms_of_internal_addresses_are_not_public(address):
    assert is_public(address) is False


@pytest.mark.parametrize("address", EMBEDDED_PUBLIC)
def test_ipv6_forms_of_public_addresses_stay_public(address):
    assert is_public(address) is True


@pytest.mark.parametrize("address", EMBEDDED_INTERNAL)
def test_a_name_resolving_to_an_embedded_internal_address_is_refused(monkeypatch, address):
    def getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(InvalidRequest):
        check_url("https://hooks.example.com/consent", allow_private=False)
    with pytest.raises(DeliveryError, match="non-public"):
        HttpTransport(timeout=1, allow_private=False).post("https://hooks.example.com/", b"{}", {})
