"""The tamper matrix (RELIABILITY.md "Proof that cannot be forged"), as property tests.

The attacker can write the database and holds the audit MAC key: after each change they redo
the hash chain, the leaf hashes and the head, and drop every checkpoint row that would betray
them. They do not hold the checkpoint signing key and cannot reach checkpoints kept elsewhere.
Given any one earlier checkpoint (a witness's), `verify_log` must find every tampering that
touches the entries it covers; on an untampered log, with any checkpoints, it finds nothing."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from unittest import mock

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, update
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel, col, create_engine, select

import consent_service.models  # noqa: F401 - every table
from consent_service.audit import merkle
from consent_service.audit import service as audit
from consent_service.audit.checkpoints import SignerKey, parse_note, split_notes
from consent_service.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from consent_service.crypto import StaticKeys
from consent_service.timeutil import as_utc

KEY = StaticKeys.single(b"k" * 32)
SIGNER = SignerKey("test.example/audit", Ed25519PrivateKey.generate())
KEYS = [SIGNER.verifier]
T0 = datetime(2026, 12, 1, 8, 0)
PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Every attack the matrix runs (`_tamper` knows each).
ATTACKS = [
    "truncate",
    "delete_all",
    "reorder",
    "insert",
    "delete_one",
    "edit_one",
    "rewrite_all_with_mac_key",
    "edit_without_key",
    "replay_old_checkpoint",
]


@dataclass(frozen=True)
class Entry:
    event_type: str
    actor: str
    subject_id: int | None
    payload: dict
    created_at: datetime


def entry(i: int) -> Entry:
    return Entry(
        f"test.event{i % 3}",
        f"subject:{i}",
        i if i % 2 else None,
        {"i": i, "note": "撤回 ✓" if i % 4 == 0 else None, "n": {"v": i % 5}},
        T0 + timedelta(seconds=i, microseconds=i),
    )


@contextmanager
def database() -> Iterator[Session]:
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    SQLModel.metadata.create_all(engine)
    try:
        with Session(engine, expire_on_commit=False) as s:
            yield s
    finally:
        engine.dispose()


def append(s: Session, e: Entry) -> None:
    with mock.patch.object(audit, "utcnow", return_value=e.created_at):
        audit.append(s, KEY, e.event_type, e.actor, e.payload, e.subject_id)


def build(s: Session, n: int, checkpoint_sizes: set[int], file: Path) -> list[Entry]:
    """n entries, a checkpoint after each size in `checkpoint_sizes` (row + file line)."""
    entries = [entry(i) for i in range(1, n + 1)]
    for size, e in enumerate(entries, 1):
        append(s, e)
        if size in checkpoint_sizes:
            row = audit.make_checkpoint(s, SIGNER, T0 + timedelta(minutes=size))
            assert row is not None
            with file.open("a") as fh:  # what the after-commit effect does
                fh.write(row.note)
        s.commit()
    return entries


def stored_entries(s: Session) -> list[Entry]:
    return [
        Entry(e.event_type, e.actor, e.subject_id, e.payload, as_utc(e.created_at))
        for e in s.exec(select(AuditEvent).order_by(col(AuditEvent.seq)))
    ]


def rewrite(s: Session, entries: list[Entry]) -> None:
    """The attacker's consistent rewrite: the log becomes `entries`, chained with the MAC key,
    leaves and head recomputed; checkpoint rows the new log contradicts are dropped."""
    s.execute(delete(AuditEvent))
    s.execute(delete(AuditHead))
    s.commit()
    for e in entries:
        append(s, e)
    leaves = [audit.entry_leaf(e) for e in s.exec(select(AuditEvent).order_by(col(AuditEvent.seq)))]
    roots = merkle.prefix_roots(leaves, range(len(leaves) + 1))
    for row in s.exec(select(AuditCheckpoint)).all():
        if roots.get(row.size) != bytes.fromhex(row.root):
            s.delete(row)
    s.commit()


def held(file: Path) -> list:
    return [parse_note(n, KEYS) for n in split_notes(file.read_text())]


def verify(s: Session, witnesses=()) -> audit.LogReport:
    s.expire_all()
    return audit.verify_log(s, KEY, KEYS, witnesses)


# ---------------------------------------------------------------------------- strategies
@st.composite
def logs(draw, min_size: int = 1):
    n = draw(st.integers(min_value=min_size, max_value=24))
    if n == 0:
        return n, set()
    sizes = draw(st.sets(st.integers(min_value=1, max_value=n), min_size=1, max_size=4))
    return n, sizes


@st.composite
def attacks(draw):
    """(log size, checkpoint sizes, the witness's checkpoint size, attack, its parameters)."""
    n, sizes = draw(logs())
    m = draw(st.sampled_from(sorted(sizes)))  # the witness holds the checkpoint of size m
    kind = draw(st.sampled_from(ATTACKS))
    p = draw(st.integers(min_value=0, max_value=m - 1))  # an entry the checkpoint covers
    q = draw(st.integers(min_value=0, max_value=n - 1).filter(lambda x: x != p)) if n > 1 else p
    t = draw(st.integers(min_value=0, max_value=m - 1))
    return n, sizes, m, kind, p, q, t


def attack(s: Session, kind: str, p: int, q: int, t: int) -> None:
    now = stored_entries(s)
    if kind == "truncate":  # the tail cut, the head rewritten to match
        rewrite(s, now[:t])
    elif kind == "delete_all":
        s.execute(delete(AuditEvent))
        s.execute(delete(AuditHead))
        s.execute(delete(AuditCheckpoint))
        s.commit()
    elif kind == "reorder":
        if p == q:  # a log of one entry: nothing to swap with; move its time instead
            now[p] = Entry(**{**now[p].__dict__, "created_at": now[p].created_at + timedelta(1)})
        else:
            now[p], now[q] = now[q], now[p]
        rewrite(s, now)
    elif kind == "insert":
        forged = Entry("consent.granted", "subject:3", 3, {"grant": "forged"}, now[p].created_at)
        rewrite(s, [*now[:p], forged, *now[p:]])
    elif kind == "delete_one":
        rewrite(s, [*now[:p], *now[p + 1 :]])
    elif kind == "edit_one":  # a rewrite by someone holding the (old or current) MAC key
        now[p] = Entry(**{**now[p].__dict__, "payload": {**now[p].payload, "i": -1}})
        rewrite(s, now)
    elif kind == "rewrite_all_with_mac_key":  # every entry says something else
        rewrite(s, [Entry(**{**e.__dict__, "actor": "operator:mallory"}) for e in now])
    elif kind == "edit_without_key":  # a plain UPDATE of one row
        payload = {**now[p].payload, "i": -1}
        s.execute(update(AuditEvent).where(AuditEvent.seq == p + 1).values(payload=payload))
        s.commit()
    elif kind == "replay_old_checkpoint":
        # Cut the log back to t entries and leave the database an older checkpoint as its
        # newest (every newer row dropped): served as if it were current.
        rewrite(s, now[:t])
        s.execute(delete(AuditCheckpoint).where(AuditCheckpoint.size > t))
        s.commit()


# ---------------------------------------------------------------------------- properties
@PROFILE
@given(case=attacks())
def test_every_tampering_is_detected_given_an_earlier_checkpoint(case):
    n, sizes, m, kind, p, q, t = case
    with database() as s, tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "checkpoints.log"
        build(s, n, sizes, file)
        witness = next(c for c in held(file) if c.size == m)
        assert verify(s, [witness]).ok  # before: no alarm
        attack(s, kind, p, q, t)
        report = verify(s, [witness])
        assert not report.ok, (kind, n, m, p, q, t)
        if kind != "edit_without_key":
            # The key holder's rewrite leaves the chain and the head self-consistent: only the
            # checkpoint held elsewhere gives it away.
            assert report.chain.ok
            assert not any(line.startswith("the head says") for line in report.problems)
        # The instance's own checkpoint file (every checkpoint) finds it too.
        assert not verify(s, held(file)).ok


@PROFILE
@given(log=logs(min_size=0), heads_at=st.sets(st.integers(min_value=0, max_value=24)))
def test_no_false_alarm_on_an_untampered_log(log, heads_at):
    n, sizes = log
    with database() as s, tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "checkpoints.log"
        file.touch()
        entries = build(s, n, sizes, file)
        report = verify(s, held(file))
        assert report.ok, report.problems
        assert report.size == n
        # More entries after the checkpoints, and the token heads taken along the way.
        heads = [audit.tree_head(s)]
        for i in range(n + 1, n + 1 + len(heads_at)):
            append(s, entry(i))
            s.commit()
            heads.append(audit.tree_head(s))
        tokens = [audit.Checkpoint("", h.size, h.root, 0) for h in heads]
        s.expire_all()
        report = audit.verify_log(s, KEY, KEYS, held(file), tokens)
        assert report.ok, report.problems
        assert report.size == n + len(heads_at) == len(entries) + len(heads_at)


def test_the_matrix_in_one_table(capsys):
    """Every attack at every covered position of a 12-entry log with checkpoints at 4 and 9:
    the one-line summary the brief asks for (run with -s to see it)."""
    kinds = ATTACKS
    results: dict[str, list[bool]] = {k: [] for k in kinds}
    for kind in kinds:
        for m in (4, 9):
            for p in range(m):
                with database() as s, tempfile.TemporaryDirectory() as tmp:
                    file = Path(tmp) / "checkpoints.log"
                    build(s, 12, {4, 9}, file)
                    witness = next(c for c in held(file) if c.size == m)
                    attack(s, kind, p, (p + 5) % 12, p)
                    results[kind].append(not verify(s, [witness]).ok)
    with capsys.disabled():
        print("\ntamper matrix (12 entries, witness at 4 or 9, every covered position):")
        for kind, found in results.items():
            print(f"  {kind:<24} {sum(found):>3}/{len(found)} detected")
    assert all(all(found) for found in results.values())
