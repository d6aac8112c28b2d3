"""Rate limits per API key, sign-in throttling per account and per client address, and the
throttling of account mails (sign-up, password reset, a new verification link) per address and
per client address: fixed window counters, in Redis when a URL is configured (shared by every
web worker), else in this process's memory (the embedded default runs one process)."""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import ClassVar, Protocol

from flask import current_app

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


class RateLimiter(Protocol):
    def hit(self, key: str) -> int | None:
        """Count one request for `key`: None when allowed, else the seconds until it would be."""

    def peek(self, key: str) -> int | None:
        """Without counting: None when one more hit is allowed, else the seconds until it is."""


def _window(rate: Rate, now: float) -> tuple[int, int]:
    """The current window's number and the whole seconds until it ends (at least 1)."""
    number = int(now // rate.period)
    return number, max(1, math.ceil((number + 1) * rate.period - now))


class MemoryRateLimiter:
    def __init__(self, rate: Rate, clock=time.time):
        self.rate, self._clock = rate, clock
        self._counts: dict[str, tuple[int, int]] = {}  # key → (window, count); one entry a key
        self._lock = threading.Lock()

    def hit(self, key: str) -> int | None:
        window, remaining = _window(self.rate, self._clock())
        with self._lock:
            seen_window, count = self._counts.get(key, (window, 0))
            count = count + 1 if seen_window == window else 1
            self._counts[key] = (window, count)
        return remaining if count > self.rate.limit else None

    def peek(self, key: str) -> int | None:
        window, remaining = _window(self.rate, self._clock())
        with self._lock:
            seen_window, count = self._counts.get(key, (window, 0))
        return remaining if seen_window == window and count >= self.rate.limit else None


class RedisRateLimiter:
    def __init__(self, rate: Rate, url: str, clock=time.time):
        import redis

        self.rate, self._clock = rate, clock
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._errors = redis.RedisError

    def _name(self, key: str, window: int) -> str:
        return f"consent-service:ratelimit:{key}:{window}"

    def hit(self, key: str) -> int | None:
        window, remaining = _window(self.rate, self._clock())
        name = self._name(key, window)
        try:
            pipe = self._redis.pipeline()
            pipe.incr(name)
            pipe.expire(name, self.rate.period + 1)
            count = pipe.execute()[0]
        except self._errors as exc:
            # The limit protects capacity; losing it for the length of an outage beats
            # refusing every provider's requests, so the request goes through, loudly.
            log.warning("rate limit store unreachable, request allowed: %s", exc)
            return None
        return remaining if count > self.rate.limit else None

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
    """Count a request made with an (authenticated) API key; raise RateLimited over the limit."""
    limiter: RateLimiter = current_app.extensions["api_rate_limiter"]
    # The key itself is a secret: count under a digest of it.
    retry_after = limiter.hit(hashlib.sha256(api_key.encode()).hexdigest()[:32])
    if retry_after is not None:
        raise RateLimited(retry_after)
