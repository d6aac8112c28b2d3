"""Idempotency-Key on every POST, one way: the key is stored on the row the first request
created, under a UNIQUE (provider, key) constraint; a repeat finds that row and answers 200
with it as it is now (a first request answers 201/202).

A creating endpoint reads the key with `request_key()`, hands it to its service (which looks the
key up before creating anything and stores it on the new row), and writes with `create_once`,
which settles a race between two requests carrying the same key; on a replay it checks with
`require_same_request` that the key is not being reused for a different request (422, as the
IETF Idempotency-Key draft asks). Endpoints that create nothing (verifying a token) are
idempotent as they are."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import request
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from consent_service import db
from consent_service.errors import InvalidRequest

HEADER = "Idempotency-Key"
MAX_LENGTH = 200
REPLAYED_HEADER = "Idempotent-Replayed"

T = TypeVar("T")


def request_key() -> str | None:
    """The request's Idempotency-Key (1 to 200 visible ASCII characters), or None."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if not 1 <= len(key) <= MAX_LENGTH or not all(33 <= ord(c) <= 126 for c in key):
        raise InvalidRequest(
            "%(header)s must be 1 to %(num)d visible ASCII characters (no spaces).",
            header=HEADER,
            num=MAX_LENGTH,
        )
    return key


def create_once(session: Session, create: Callable[[], tuple[T, bool]]) -> tuple[T, bool]:
    """Run `create` (returns (row, created)) in a savepoint and flush it. When a parallel request
    with the same key wrote first, the UNIQUE constraint fails ours: the savepoint undoes our
    row (and the work it registered) and `create` runs again, now finding the first request's
    row. The request's boundary commits."""
    try:
        with db.savepoint(session):
            result = create()
            session.flush()
    except IntegrityError:
        result = create()
        if result[1]:  # not a key race after all: a real integrity error
            raise
    return result


def require_same_request(first: object, again: object) -> None:
    """Refuse a key reused for a different request: compare what identifies each (e.g. the
    operation and the SHA-256 of each media item)."""
    if first != again:
        raise InvalidRequest(
            "This %(header)s was first used for a different request; use a new key for a new "
            "request.",
            header=HEADER,
        )
