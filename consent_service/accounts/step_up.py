"""Step-up: an action (creating a grant, approving a consent request) that waits for a short
fresh live check of the person acting, and is carried out once that check passes.

The capability that owns the action writes it down (`begin`: its kind, the modality to check,
what to do as JSON) and connects a receiver to `step_up_passed` for its kind; biometrics runs
the live check and, when the face (or voice) matches the account's own enrolled templates,
calls `carry_out` in the worker's transaction, which sends the signal. Neither capability
imports the other: both import this module (accounts sits below them)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from blinker import Namespace
from sqlmodel import Session, select

from consent_service import db
from consent_service.accounts.models import StepUp
from consent_service.crypto import KeySource
from consent_service.errors import DomainError, InvalidRequest, NotFound
from consent_service.timeutil import as_utc, utcnow
from consent_service.vocabulary import Modality, StepUpStatus

_signals = Namespace()
# Sent with the action's kind as the sender, in the transaction that carries it out, with
# `session`, `step_up` (the StepUp row), `proof` (the evidence of the live check: the session
# id, the method, its scores) and `audit_key`. The receiver connected for the kind does it and
# returns what it made (a dict, kept on the row); a DomainError says why it cannot be done.
step_up_passed = _signals.signal("step-up-passed")

NOT_CARRIED_OUT = "This action cannot be carried out any more."
STATEMENT = "statement"  # the payload's key of the sentence read aloud in the live check


def statement_of(row: StepUp) -> str | None:
    """The sentence the person reads aloud in the action's live check (None: none)."""
    value = (row.payload or {}).get(STATEMENT)
    return value if isinstance(value, str) and value else None


def begin(
    session: Session,
    *,
    user_id: int,
    subject_id: int,
    kind: str,
    modality: Modality,
    payload: dict[str, Any],
    return_to: str,
    ttl_seconds: int,
    statement: str | None = None,
) -> StepUp:
    """Write down an action that waits for the person's live check (used within the TTL).
    `statement`: what the person consents to, in their words' language, read aloud during
    the check (kept with the payload; `statement_of`)."""
    now = utcnow()
    row = StepUp(
        user_id=user_id,
        subject_id=subject_id,
        kind=kind,
        modality=modality.value,
        payload={**payload, STATEMENT: statement} if statement else payload,
        return_to=return_to,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    session.add(row)
    session.flush()
    return row


def waiting_for(session: Session, step_up_id: str, user_id: int) -> StepUp:
    """The account's own action still waiting for its check (NotFound / InvalidRequest)."""
    row = session.get(StepUp, step_up_id) if len(step_up_id) <= 32 else None
    if row is None or row.user_id != user_id:
        raise NotFound("No such action is waiting for you.")
    if row.status != StepUpStatus.WAITING.value:
        raise InvalidRequest("This action is finished already.")
    if as_utc(row.expires_at) <= utcnow():
        raise InvalidRequest("This action expired; start it again.")
    return row


def carry_out(
    session: Session, audit_key: KeySource, step_up_id: str, proof: dict[str, Any]
) -> str:
    """The check passed: do the action (its receiver, in a savepoint: a refusal keeps none of
    its writes), recording what it made or why it could not be done. Returns the status."""
    row = _locked(session, step_up_id)
    if row is None or row.status != StepUpStatus.WAITING.value:
        return row.status if row else StepUpStatus.FAILED.value
    if as_utc(row.expires_at) <= utcnow():
        return _end(row, session, InvalidRequest("This action expired; start it again."))
    try:
        with db.savepoint(session):
            answers = step_up_passed.send(
                row.kind, session=session, step_up=row, proof=proof, audit_key=audit_key
            )
            if not answers:
                raise InvalidRequest(NOT_CARRIED_OUT)
    except DomainError as exc:
        return _end(row, session, exc)
    row.result = {k: v for _fn, made in answers for k, v in (made or {}).items()}
    return _end(row, session, None)


def fail(session: Session, step_up_id: str, error: DomainError) -> str:
    """The check failed: the action is not carried out (the person may start it again)."""
    row = _locked(session, step_up_id)
    if row is None or row.status != StepUpStatus.WAITING.value:
        return row.status if row else StepUpStatus.FAILED.value
    return _end(row, session, error)


def _locked(session: Session, step_up_id: str) -> StepUp | None:
    return session.exec(select(StepUp).where(StepUp.id == step_up_id).with_for_update()).first()


def _end(row: StepUp, session: Session, error: DomainError | None) -> str:
    row.status = (StepUpStatus.DONE if error is None else StepUpStatus.FAILED).value
    if error is not None:
        row.error, row.error_params = str(error), error.to_json()
    row.finished_at = utcnow()
    session.add(row)
    session.flush()
    return row.status
