"""Rate limits per API key, sign-in throttling per account and per client address, and the
throttling of account mails (sign-up, password reset, a new verification link) per address and
per client address: fixed window counters, in Redis when a URL is configured (shared by every
web worker), else in this process's memory (the embedded default runs one process).

Every API answer counted against a limit says where its caller stands, in the IETF draft's
fields (draft-ietf-httpapi-ratelimit-headers-06): `RateLimit-Limit`, `RateLimit-Remaining`,
`RateLimit-Reset` (seconds) and `RateLimit-Policy` (`120;w=60`)."""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import ClassVar, Protocol

from flask import Response, current_app, g

from consent_service.errors import N_, DomainError
from consent_service.settings import Settings

log = logging.getLogger(__name__)

PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


class RateLimited(DomainError):
    """Too many requests with one API key in the current window."""

    status = 429
    title = "Too many requests"

    def __init__(self, retry_after: int):
        super().__init__(f"Too many requests with this API key; retry in {retry_after} s.")
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


@dataclass(frozen=True)
class Rate:
    limit: int
    period: int  # seconds

    @classmethod
    def parse(cls, text: str) -> Rate:
        """`120/minute`, `10/second`, `5000/hour`, `100000/day`."""
        count, _, unit = text.strip().partition("/")
        if not count.isdigit() or int(count) < 1 or unit not in PERIODS:
            raise ValueError(f"A rate is N/second|minute|hour|day, not {text!r}.")
        return cls(int(count), PERIODS[unit])


class Throttled(DomainError):
    """Over a limit counted in a window: 429 with Retry-After, the wait said in minutes."""

    status = 429
    title = "Too many attempts"
    sentence: ClassVar[str]  # with %(num)d, the minutes to wait

    def __init__(self, retry_after: int):
        super().__init__(self.sentence, num=max(1, math.ceil(retry_after / 60)))
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class SignInThrottled(Throttled):
    """Too many failed sign-ins for one account or from one client address in the window."""

    title = "Too many sign-ins"

    sentence = N_(
        "Too many failed sign-ins. Wait %(num)d minutes, then try again, or set a new "
        "password with the link we can mail you."
    )


class MailThrottled(Throttled):
    """Too many account mails asked for one address, or from one client address, in the window.
    Counted before anything is looked up, so it says nothing about whether the address has an
    account."""

    title = "Too many mails"
    sentence = N_(
        "Too many mails were asked for this address or from your network. Wait "
        "%(num)d minutes, then try again."
    )


@dataclass(frozen=True)
class Usage:
    """Where one key stands in the current window, the request just counted included."""

    rate: Rate
    count: int
    reset: int  # whole seconds until the window ends (at least 1)

    @property
    def over(self) -> bool:
        return self.count > self.rate.limit

    @property
    def headers(self) -> dict[str, str]:
        """The draft's fields: the quota, what is left of it, when it refills, the policy."""
        return {
            "RateLimit-Limit": str(self.rate.limit),
            "RateLimit-Remaining": str(max(0, self.rate.limit - self.count)),
            "RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": f"{self.rate.limit};w={self.rate.period}",
        }


class RateLimiter(Protocol):
    def count(self, key: str) -> Usage | None:
        """Count one request for `key` and say where it stands; None when the store of counts
        cannot be reached (the request is allowed)."""

    def hit(self, key: str) -> int | None:
        """Count one request for `key`: None when allowed, else the seconds until it would be."""

    def peek(self, key: str) -> int | None:
        """Without counting: None when one more hit is allowed, else the seconds until it is."""


def _window(rate: Rate, now: float) -> tuple[int, int]:
    """The current window's number and the whole seconds until it ends (at least 1)."""
    number = int(now // rate.period)
    return number, max(1, math.ceil((number + 1) * rate.period - now))


class _Counting:
    rate: Rate

    def count(self, key: str) -> Usage | None:
        raise NotImplementedError

    def hit(self, key: str) -> int | None:
        usage = self.count(key)
        return usage.reset if usage is not None and usage.over else None


class MemoryRateLimiter(_Counting):
    def __init__(self, rate: Rate, clock=time.time):
        self.rate, self._clock = rate, clock
        self._counts: dict[str, tuple[int, int]] = {}  # key → (window, count); one entry a key
        self._lock = threading.Lock()

    def count(self, key: str) -> Usage:
        window, remaining = _window(self.rate, self._clock())
        with self._lock:
            seen_window, count = self._counts.get(key, (window, 0))
            count = count + 1 if seen_window == window else 1
            self._counts[key] = (window, count)
        return Usage(self.rate, count, remaining)

    def peek(self, key: str) -> int | None:
        window, remaining = _window(self.rate, self._clock())
        with self._lock:
            seen_window, count = self._counts.get(key, (window, 0))
        return remaining if seen_window == window and count >= self.rate.limit else None


class RedisRateLimiter(_Counting):
    def __init__(self, rate: Rate, url: str, clock=time.time):
        import redis

        self.rate, self._clock = rate, clock
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._errors = redis.RedisError

    def _name(self, key: str, window: int) -> str:
        return f"consent-service:ratelimit:{key}:{window}"

    def count(self, key: str) -> Usage | None:
        window, remaining = _window(self.rate, self._clock())
        name = self._name(key, window)
        try:
            # Both in one write and one round trip. No MULTI/EXEC around them: two more commands
            # for an atomicity the count does not need (the window is in the key's name).
            pipe = self._redis.pipeline(transaction=False)
            pipe.incr(name)
            pipe.expire(name, self.rate.period + 1)
            count = pipe.execute()[0]
        except self._errors as exc:
            # The limit protects capacity; losing it for the length of an outage beats
            # refusing every provider's requests, so the request goes through, loudly.
            log.warning("rate limit store unreachable, request allowed: %s", exc)
            return None
        return Usage(self.rate, int(count), remaining)

    def peek(self, key: str) -> int | None:
        window, remaining = _window(self.rate, self._clock())
        try:
            count = int(self._redis.get(self._name(key, window)) or 0)
        except self._errors as exc:
            log.warning("rate limit store unreachable, request allowed: %s", exc)
            return None
        return remaining if count >= self.rate.limit else None


def limiter_for(rate_text: str, settings: Settings) -> RateLimiter:
    rate = Rate.parse(rate_text)
    if settings.rate_limit_storage_url:
        return RedisRateLimiter(rate, settings.rate_limit_storage_url)
    return MemoryRateLimiter(rate)


def from_settings(settings: Settings) -> RateLimiter:
    return limiter_for(settings.api_rate_limit, settings)


@dataclass(frozen=True)
class SignInThrottle:
    """Failed sign-ins counted per account (a digest of the address, known or not, so the
    answer never tells which exist) and per client address; either over its limit refuses the
    next attempt before the password is even checked."""

    per_account: RateLimiter
    per_address: RateLimiter

    @classmethod
    def from_settings(cls, settings: Settings) -> SignInThrottle:
        return cls(
            limiter_for(settings.login_rate_limit_account, settings),
            limiter_for(settings.login_rate_limit_address, settings),
        )

    @staticmethod
    def _keys(email: str, address: str) -> tuple[str, str]:
        digest = hashlib.sha256((email or "").strip().lower().encode()).hexdigest()[:32]
        return f"signin-account:{digest}", f"signin-address:{address or '-'}"

    def check(self, email: str, address: str) -> None:
        account, client = self._keys(email, address)
        waits = [w for w in (self.per_account.peek(account), self.per_address.peek(client)) if w]
        if waits:
            raise SignInThrottled(max(waits))

    def failed(self, email: str, address: str) -> None:
        account, client = self._keys(email, address)
        self.per_account.hit(account)
        self.per_address.hit(client)


def _address_key(email: str) -> str:
    """A digest of the address as typed (known or not), so counters name no one."""
    return hashlib.sha256((email or "").strip().lower().encode()).hexdigest()[:32]


@dataclass(frozen=True)
class MailThrottle:
    """Account mails asked for, counted per address (whether or not it has an account) and per
    client address; every request counts, and one over either limit is refused before the
    address is looked up, so a mailbox cannot be flooded and the answer tells nothing."""

    per_address: RateLimiter
    per_client: RateLimiter

    @classmethod
    def from_settings(cls, settings: Settings) -> MailThrottle:
        return cls(
            limiter_for(settings.mail_rate_limit_address, settings),
            limiter_for(settings.mail_rate_limit_client, settings),
        )

    def hit(self, email: str, client: str) -> None:
        """Count one mail asked for; raise MailThrottled when over either limit."""
        waits = [
            w
            for w in (
                self.per_address.hit(f"mail-address:{_address_key(email)}"),
                self.per_client.hit(f"mail-client:{client or '-'}"),
            )
            if w
        ]
        if waits:
            raise MailThrottled(max(waits))


def enforce(api_key: str) -> None:
    """Count a request made with an (authenticated) API key, or from a client address for the
    public operations; raise RateLimited over the limit. Where the caller stands is kept for
    `add_headers`, so every answer to the request carries it (errors included)."""
    limiter: RateLimiter = current_app.extensions["api_rate_limiter"]
    # The key itself is a secret: count under a digest of it.
    usage = limiter.count(hashlib.sha256(api_key.encode()).hexdigest()[:32])
    if usage is None:
        return
    g.rate_limit_usage = usage
    if usage.over:
        raise RateLimited(usage.reset)


def add_headers(response: Response) -> Response:
    """After every request: the RateLimit fields of a request that was counted."""
    usage: Usage | None = g.get("rate_limit_usage")
    if usage is not None:
        response.headers.update(usage.headers)
    return response
