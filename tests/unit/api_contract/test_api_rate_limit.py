"""The per-key fixed window: counts, resets at the window's end, and says how long to wait."""

from __future__ import annotations

import pytest

from consent_service.api_contract.ratelimit import MemoryRateLimiter, Rate
from consent_service.settings import Settings


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
