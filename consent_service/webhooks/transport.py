"""Sending one webhook POST: URL rules, SSRF guard, short timeouts, a total deadline per
attempt, no redirects.

The address is resolved and checked once per attempt and the connection goes to that checked
address, so a name that re-resolves to an internal address between check and use gains nothing.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from consent_service.errors import InvalidRequest

MAX_URL_LENGTH = 2000


class DeliveryError(Exception):
    """An attempt that got no HTTP answer (refused address, DNS, connect, TLS, timeout)."""


class WebhookTransport(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST `body` to `url` and return the HTTP status; never follows redirects. Raises
        DeliveryError when no answer came."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str


def parse_url(url: str) -> Target:
    """The URL rules every webhook URL must pass (at configuration and at each delivery)."""
    url = (url or "").strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise InvalidRequest("The webhook URL must be 1 to %(num)d characters.", num=MAX_URL_LENGTH)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidRequest("The webhook URL is not a valid URL.") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRequest("The webhook URL must start with http:// or https://.")
    if not parts.hostname:
        raise InvalidRequest("The webhook URL needs a host name.")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest("The webhook URL may not carry a user name or password.")
    if parts.fragment:
        raise InvalidRequest("The webhook URL may not have a #fragment.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname, port or default, path)


# IPv6 forms that carry an IPv4 address in their low 32 bits: a packet to one of them reaches
# (through a translator or tunnel, or a dual-stack socket) the IPv4 address it embeds.
_EMBEDDING_V4 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::ffff:0:0/96",  # IPv4-mapped (RFC 4291)
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT, RFC 2765)
        "::/96",  # IPv4-compatible (deprecated, RFC 4291)
        "64:ff9b::/96",  # NAT64 well-known prefix (RFC 6052)
    )
)
# Local-use NAT64 (RFC 8215): the IPv4 address may sit at any of several offsets; never public.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, translated, compatible, NAT64,
    6to4, Teredo client), if any."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    for net in _EMBEDDING_V4:
        if ip in net:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(address: str) -> bool:
    """A globally reachable unicast address; an IPv6 form of an IPv4 address is judged by the
    IPv4 address it embeds (so `64:ff9b::a9fe:a9fe`, `2002:a9fe:a9fe::1`, `::127.0.0.1` and
    `::ffff:10.0.0.1` are refused like the internal addresses inside them)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _LOCAL_NAT64:
            return False
        inner = embedded_ipv4(ip)
        if inner is not None:
            return _is_public_ip(inner)
    return _is_public_ip(ip)


def _is_public_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


def resolve(target: Target, allow_private: bool) -> str:
    """The address to connect to. Unless private networks are allowed (development), every
    address the name resolves to must be public: loopback, private, link-local (cloud metadata)
    and reserved ranges are refused."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DeliveryError(f"cannot resolve {target.host}: {exc}") from None
    # An IPv4 or IPv6 socket address starts with the host as text (typeshed also allows an int).
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise DeliveryError(f"cannot resolve {target.host}")
    if not allow_private and not all(is_public(a) for a in addresses):
        raise DeliveryError(f"{target.host} resolves to a non-public address; refused")
    return addresses[0]


def check_url(url: str, allow_private: bool) -> str:
    """Validate a URL a provider configures; in production its host must resolve publicly."""
    target = parse_url(url)
    if not allow_private:
        try:
            resolve(target, allow_private=False)
        except DeliveryError as exc:
            raise InvalidRequest(
                "The webhook URL is refused: %(reason)s.", reason=str(exc)
            ) from None
    return url.strip()


class _Deadline:
    """Cuts an attempt's socket when its total time is up: `timeout` bounds each read, so a
    receiver that drips its answer a byte at a time would otherwise hold the worker for as
    long as it likes. The watchdog shuts the socket down, which ends any read in progress.

    The connection hands over the socket it opens (`watch`); the watchdog does not read
    `conn.sock`, which http.client empties when it gives the socket to the response (an answer
    with `Connection: close`, or HTTP/1.0), and which is not set yet while the socket connects
    or shakes hands: a deadline reached then cut nothing, and a dripping body held the attempt
    until the task's time limit killed it unrecorded (its lease still counted against the
    provider's cap). A socket handed over after the deadline is cut at once."""

    def __init__(self, seconds: float):
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock, expired = sock, self.expired
        if expired:
            _shutdown(sock)

    def _cut(self) -> None:
        with self._lock:
            self.expired, sock = True, self._sock
        if sock is not None:
            _shutdown(sock)

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # closed meanwhile: nothing to cut
        sock.shutdown(socket.SHUT_RDWR)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float, deadline: _Deadline):
        super().__init__(host, port, timeout=timeout)
        self._address, self._deadline = address, deadline

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self._deadline.watch(self.sock)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float, deadline: _Deadline):
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address, self._deadline = address, deadline

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self._deadline.watch(sock)
        # Certificate and SNI are checked against the host name, not the pinned address. The
        # handshake after the wrap, so the deadline can cut a receiver that drips it too.
        tls = self._tls.wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
        self._deadline.watch(tls)
        tls.do_handshake()
        self.sock = tls


class HttpTransport:
    """The real transport (http.client: it never follows redirects, so a 3xx is a failure).
    `timeout` bounds each connect and read; `deadline` the whole attempt."""

    def __init__(
        self,
        timeout: float,
        allow_private: bool,
        user_agent: str = "consent-service",
        deadline: float | None = None,
    ):
        self.timeout, self.allow_private, self.user_agent = timeout, allow_private, user_agent
        self.deadline = deadline if deadline is not None else 3 * timeout

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            target = parse_url(url)
        except InvalidRequest as exc:
            raise DeliveryError(str(exc)) from None
        address = resolve(target, self.allow_private)
        cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
        deadline = _Deadline(self.deadline)
        conn = cls(target.host, target.port, address, self.timeout, deadline)
        deadline.start()
        try:
            conn.request(
                "POST",
                target.path,
                body=body,
                headers={
                    **headers,
                    "Content-Type": "application/json",
                    "User-Agent": self.user_agent,
                },
            )
            response = conn.getresponse()
            response.read(65536)  # the answer's body is not used; read a little and hang up
            if deadline.expired:  # the body was cut short: no full answer in time
                raise DeliveryError(f"no full answer within {self.deadline:g} s")
            return response.status
        except (OSError, http.client.HTTPException) as exc:
            if deadline.expired:
                raise DeliveryError(f"no full answer within {self.deadline:g} s") from None
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        finally:
            deadline.cancel()
            conn.close()
