"""The per-key fixed window: counts, resets at the window's end, and says how long to wait."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from consent_service.api_contract.ratelimit import (
    MemoryRateLimiter,
    Rate,
    RedisRateLimiter,
    SignInThrottle,
    SignInThrottled,
)
from consent_service.settings import Settings
from tests.support import redis_database


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "rate"),
    [("120/minute", Rate(120, 60)), ("10/second", Rate(10, 1)), ("5/day", Rate(5, 86400))],
)
def test_rates_parse(text, rate):
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["0/minute", "ten/minute", "5/fortnight", "5", ""])
def test_malformed_rates_are_refused(text):
    with pytest.raises(ValueError):
        Rate.parse(text)
    with pytest.raises(ValueError):
        Settings(api_rate_limit=text)


def test_window_counts_per_key_and_resets():
    clock = Clock(6000.0 + 15.2)  # 15.2 s into a one-minute window
    limiter = MemoryRateLimiter(Rate(2, 60), clock)
    assert [limiter.hit("a"), limiter.hit("a")] == [None, None]
    assert limiter.hit("a") == 45  # whole seconds until the window ends, rounded up
    assert limiter.hit("b") is None  # another key has its own allowance
    clock.now = 6060.0  # the next window
    assert limiter.hit("a") is None


@pytest.mark.parametrize("make", ["memory", "redis"])
def test_sign_in_throttle_counts_failures_per_account_and_per_client(make):
    """Peeking never counts; either limit refuses the next attempt with the wait; Redis (shared
    by every web process) and memory behave alike."""
    clock = Clock(7200.0 + 600.0)  # ten minutes into an hour window
    with ExitStack() as stack:
        if make == "redis":
            url = stack.enter_context(redis_database())
            limiter = lambda n: RedisRateLimiter(Rate(n, 3600), url, clock)  # noqa: E731
        else:
            limiter = lambda n: MemoryRateLimiter(Rate(n, 3600), clock)  # noqa: E731
        throttle = SignInThrottle(per_account=limiter(2), per_address=limiter(3))
        for _ in range(5):
            throttle.check("Ann@Example.org", "198.51.100.1")  # looking counts nothing
        throttle.failed("ann@example.org", "198.51.100.1")
        throttle.failed("ANN@example.org ", "198.51.100.2")  # the same account, normalised
        with pytest.raises(SignInThrottled) as locked:
            throttle.check("ann@example.org", "203.0.113.9")
        assert locked.value.retry_after == 3000 and locked.value.headers == {"Retry-After": "3000"}
        assert locked.value.status == 429 and "50 minutes" in str(locked.value)
        throttle.check("bob@example.org", "198.51.100.1")  # the first address: 1 of 3
        throttle.failed("bob@example.org", "198.51.100.1")
        throttle.failed("cy@example.org", "198.51.100.1")
        with pytest.raises(SignInThrottled):
            throttle.check("dee@example.org", "198.51.100.1")  # 3 failures from that address
        clock.now = 10800.0  # the next window
        throttle.check("ann@example.org", "198.51.100.1")
