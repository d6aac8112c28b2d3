"""Every stored time is UTC, whatever time zone the database hands it back in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from consent_service.timeutil import as_utc, new_id, utcnow


def test_naive_time_is_taken_as_utc():
    assert as_utc(datetime(2026, 1, 2, 3, 4, 5)) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert as_utc(datetime(2026, 1, 2, 3, 4, 5)).utcoffset() == timedelta(0)


def test_aware_time_in_another_zone_is_converted_to_utc():
    shanghai = datetime(2026, 1, 2, 11, 4, 5, 123456, tzinfo=timezone(timedelta(hours=8)))
    converted = as_utc(shanghai)
    assert converted == shanghai  # the same instant
    assert converted.utcoffset() == timedelta(0)
    assert converted.isoformat() == "2026-01-02T03:04:05.123456+00:00"


def test_utcnow_is_aware_utc():
    assert utcnow().utcoffset() == timedelta(0)


def test_new_ids_are_unique_hex():
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
