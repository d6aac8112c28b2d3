"""The audit chain: every kind of tampering is found, with the first bad entry; none is invented."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, timedelta

import pytest
from sqlalchemy import delete, update
from sqlmodel import Session, SQLModel, create_engine, select

from consent_service.audit import service as audit
from consent_service.audit.models import AuditEvent, AuditHead
from consent_service.crypto import StaticKeys

KEY = StaticKeys.single(b"k" * 32)
ATTACKER_KEY = b"x" * 32
N = 10


def payload_for(i: int) -> dict:
    """Varied payloads: nesting, non-ASCII, numbers, booleans, nulls, lists."""
    return {
        "i": i,
        "job_id": f"job-{i:04d}",
        "reasons": ["refused", "revoked"][: i % 3],
        "score": i / 7,
        "ok": i % 2 == 0,
        "note": None if i % 4 else "张三 撤回了同意 ✓",
        "nested": {"grant": {"id": f"g{i}", "version": i % 5}},
    }


def build(session: Session, count: int, key: StaticKeys = KEY) -> list[AuditEvent]:
    events = [
        audit.append(
            session,
            key,
            f"test.event{i % 3}",
            f"subject:{i}",
            payload_for(i),
            subject_id=i if i % 2 else None,
        )
        for i in range(1, count + 1)
    ]
    session.commit()
    return events


def verify(reopen) -> audit.ChainReport:
    with reopen() as s:
        return audit.verify(s, KEY)


@pytest.fixture
def chain(session):
    return build(session, N)


def tamper(reopen, *statements, add: AuditEvent | None = None) -> None:
    """Change the stored rows behind the service's back, in a session of its own."""
    with reopen() as s:
        for statement in statements:
            s.execute(statement)
        if add is not None:
            s.add(add)
        s.commit()


def set_fields(at: int, **values):
    return update(AuditEvent).where(AuditEvent.seq == at).values(**values)


def renumber(moves: list[tuple[int, int]]):
    return [set_fields(old, seq=new) for old, new in moves]


def forge(prev_hash: str, event: AuditEvent, key: bytes) -> str:
    """An entry's link as an attacker computes it (the algorithm is public, the key is not)."""
    body = {
        "seq": event.seq,
        "event_type": event.event_type,
        "actor": event.actor,
        "subject_id": event.subject_id,
        "payload": event.payload,
        "created_at": event.created_at.replace(tzinfo=event.created_at.tzinfo or UTC)
        .astimezone(UTC)
        .isoformat(),
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, prev_hash.encode() + canonical.encode(), hashlib.sha256).hexdigest()


class TestAppend:
    def test_entries_are_numbered_from_one_and_linked(self, chain):
        assert [e.seq for e in chain] == list(range(1, N + 1))
        assert chain[0].prev_hash == "0" * 64
        for before, after in zip(chain, chain[1:], strict=False):
            assert after.prev_hash == before.hash
        assert len({e.hash for e in chain}) == N

    def test_head_follows_the_last_entry(self, chain, reopen):
        with reopen() as s:
            head = s.get(AuditHead, 1)
            assert (head.seq, head.hash) == (N, chain[-1].hash)


class TestUntampered:
    def test_empty_log_is_ok(self, reopen):
        assert verify(reopen) == audit.ChainReport(True, 0)

    def test_chain_verifies(self, chain, reopen):
        assert verify(reopen) == audit.ChainReport(True, N)

    def test_no_false_alarm_on_fifty_events_appended_across_transactions(self, session, reopen):
        for _ in range(5):
            build(session, 10)  # each batch its own commit, as requests and tasks do
        report = verify(reopen)
        assert report.ok, report
        assert report.checked == 50

    def test_verify_with_the_wrong_key_fails_at_the_first_entry(self, chain, reopen):
        with reopen() as s:
            report = audit.verify(s, StaticKeys.single(ATTACKER_KEY))
        assert (report.ok, report.first_bad_seq) == (False, 1)


class TestTampered:
    @pytest.mark.parametrize("seq", [1, 2, 5, N])
    def test_flipped_payload_value(self, chain, reopen, seq):
        changed = dict(chain[seq - 1].payload, ok=not chain[seq - 1].payload["ok"])
        tamper(reopen, set_fields(seq, payload=changed))
        report = verify(reopen)
        assert (report.ok, report.first_bad_seq) == (False, seq)
        assert report.checked == seq - 1

    @pytest.mark.parametrize(
        "values",
        [
            {"event_type": "consent.granted"},
            {"actor": "operator:mallory"},
            {"subject_id": 999},
            {"payload": {}},
            {"hash": "f" * 64},
            {"prev_hash": "0" * 64},
        ],
        ids=lambda v: next(iter(v)),
    )
    def test_any_changed_field(self, chain, reopen, values):
        tamper(reopen, set_fields(5, **values))
        report = verify(reopen)
        assert (report.ok, report.first_bad_seq) == (False, 5)

    def test_time_moved_by_one_microsecond(self, chain, reopen):
        later = chain[4].created_at + timedelta(microseconds=1)
        tamper(reopen, set_fields(5, created_at=later))
        assert verify(reopen).first_bad_seq == 5

    def test_deleted_middle_entry(self, chain, reopen):
        tamper(reopen, delete(AuditEvent).where(AuditEvent.seq == 5))
        report = verify(reopen)
        assert (report.ok, report.first_bad_seq, report.checked) == (False, 5, 4)

    def test_deleted_entry_with_later_ones_renumbered_to_close_the_gap(self, chain, reopen):
        tamper(
            reopen,
            delete(AuditEvent).where(AuditEvent.seq == 5),
            *renumber([(s, s - 1) for s in range(6, N + 1)]),
        )
        report = verify(reopen)
        assert (report.ok, report.first_bad_seq) == (False, 5)

    def test_two_entries_swapped(self, chain, reopen):
        tamper(reopen, *renumber([(4, -1), (5, 4), (-1, 5)]))
        report = verify(reopen)
        assert (report.ok, report.first_bad_seq) == (False, 4)

    def test_forged_entry_inserted_in_the_middle(self, chain, reopen):
        forged = AuditEvent(
            seq=5,
            event_type="consent.granted",
            actor="subject:3",
            payload={"grant": "forged"},
            created_at=chain[3].created_at,
            prev_hash=chain[3].hash,
            hash="",
        )
        forged.hash = forge(chain[3].hash, forged, ATTACKER_KEY)
        # Make room at 5, then slip the forgery in.
        tamper(reopen, *renumber([(s, s + 1) for s in range(N, 4, -1)]), add=forged)
        report = verify(reopen)
        assert (report.ok, report.first_bad_seq) == (False, 5)

    def _append_forged(self, chain, reopen, key: bytes) -> None:
        forged = AuditEvent(
            seq=N + 1,
            event_type="consent.granted",
            actor="subject:3",
            payload={},
            created_at=chain[-1].created_at,
            prev_hash=chain[-1].hash,
            hash="",
        )
        forged.hash = forge(chain[-1].hash, forged, key)
        tamper(reopen, update(AuditHead).values(seq=N + 1, hash=forged.hash), add=forged)

    def test_forged_entry_appended_with_the_head_moved(self, chain, reopen):
        self._append_forged(chain, reopen, ATTACKER_KEY)
        report = verify(reopen)
        assert (report.ok, report.first_bad_seq) == (False, N + 1)

    def test_control_forgery_with_the_real_key_passes(self, chain, reopen):
        # Shows the forgeries here fail for want of the key, not because they are malformed.
        self._append_forged(chain, reopen, KEY.key("v0"))
        assert verify(reopen) == audit.ChainReport(True, N + 1)

    def test_truncated_tail_while_the_head_still_says_more(self, chain, reopen):
        tamper(reopen, delete(AuditEvent).where(AuditEvent.seq > 7))
        report = verify(reopen)
        assert (report.ok, report.first_bad_seq, report.checked) == (False, 8, 7)

    def test_truncated_tail_with_the_head_deleted_too(self, chain, reopen):
        tamper(reopen, delete(AuditEvent).where(AuditEvent.seq > 7), delete(AuditHead))
        report = verify(reopen)
        assert (report.ok, report.first_bad_seq) == (False, 8)

    def test_head_rewound_without_deleting_entries(self, chain, reopen):
        tamper(reopen, update(AuditHead).values(seq=7, hash=chain[6].hash))
        assert verify(reopen).ok is False

    def test_whole_chain_rewritten_with_another_key(self, chain, reopen):
        with reopen() as s:
            events = list(s.exec(select(AuditEvent).order_by(AuditEvent.seq)))
        statements, prev = [], "0" * 64
        for event in events:
            link = forge(prev, event, ATTACKER_KEY)
            statements.append(set_fields(event.seq, prev_hash=prev, hash=link))
            prev = link
        tamper(reopen, *statements, update(AuditHead).values(hash=prev))
        report = verify(reopen)
        assert (report.ok, report.first_bad_seq, report.checked) == (False, 1, 0)

    def test_every_position_is_detected_and_restoring_it_clears_the_alarm(self, chain, reopen):
        for event in chain:
            tamper(reopen, set_fields(event.seq, payload=dict(event.payload, i=-1)))
            assert verify(reopen).first_bad_seq == event.seq
            tamper(reopen, set_fields(event.seq, payload=event.payload))
            assert verify(reopen).ok


@pytest.mark.postgres
def test_no_false_alarm_on_postgresql_in_a_non_utc_session(postgres_database):
    """PostgreSQL returns timestamps in the session's zone; the chain must not care."""
    with postgres_database() as url:
        engine = create_engine(url, connect_args={"options": "-c timezone=Asia/Shanghai"})
        try:
            SQLModel.metadata.create_all(engine)
            with Session(engine) as s:
                build(s, 20)
            with Session(engine) as s:
                stored = s.exec(select(AuditEvent)).first().created_at
                assert stored.utcoffset() == timedelta(hours=8)
                assert audit.verify(s, KEY) == audit.ChainReport(True, 20)
        finally:
            engine.dispose()
