"""Recording a job's decision: each person judged against the grants as they are in the
recording transaction, the job decided by policy, the decision signed, and the revision, its
findings, the audit entry and the `job.decided` event written together.

The first decision comes from the media (`record_decision`, step three of the gate's pipeline);
later revisions from people named afterwards, e.g. by an answered consent request
(`redecide`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from sqlmodel import Session, col, select

from consent_service.accounts.assurance import level_of
from consent_service.accounts.models import Subject
from consent_service.accounts.service import lock_subjects
from consent_service.audit import service as audit
from consent_service.consent import policy
from consent_service.consent.models import ConsentGrant, Purpose
from consent_service.consent.service import current_grants
from consent_service.crypto import Envelope, KeySource
from consent_service.gate.claims import token_claims, token_digest
from consent_service.gate.finding_faces import keep_finding_face
from consent_service.gate.models import Decision, DecisionRevision, Finding, GateJob, MediaItem
from consent_service.keyring import Pseudonyms
from consent_service.notices import service as notices
from consent_service.providers.models import Provider
from consent_service.providers.service import assurance_minimum
from consent_service.timeutil import utcnow
from consent_service.tokens.service import DecisionSigner
from consent_service.vocabulary import Assurance, DecisionKind, JobStatus, Operation, Outcome, Role
from consent_service.webhooks import service as webhooks


@dataclass
class PersonSeen:
    position: int
    role: Role
    box: tuple[int, ...]  # a face's (top, right, bottom, left); a voice's (first heard, speech) ms
    subject_id: int | None
    ambiguous: bool
    # What the person looks (or sounds) like: kept, sealed, for a consent request if needed.
    embedding: np.ndarray | None = None


@dataclass
class Analysis:
    """What the media showed: the people found, and the items that could not be used."""

    people: list[PersonSeen] = field(default_factory=list)
    problems: dict[int, tuple[str, str]] = field(default_factory=dict)  # position → (code, message)


@dataclass(frozen=True)
class Signing:
    """What recording a decision needs beyond the database: the keys that sign it, chain its
    audit entry and name its people; the envelope and lifetime of the faces kept for consent
    requests (none kept without an envelope)."""

    audit_key: KeySource
    signer: DecisionSigner
    pseudonyms: Pseudonyms
    envelope: Envelope | None = None
    finding_face_ttl: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class _Revision:
    kind: DecisionKind
    reasons: list[str]
    outcomes: list[Outcome]
    findings: list[Finding]
    token: str
    jti: str
    assurance_required: Assurance | None


def media_of(session: Session, job_id: str) -> list[MediaItem]:
    return list(
        session.exec(
            select(MediaItem).where(MediaItem.job_id == job_id).order_by(col(MediaItem.position))
        )
    )


def _revise(
    session: Session,
    job: GateJob,
    analysis: Analysis,
    now: datetime,
    revision: int,
    signer: DecisionSigner,
    pseudonyms: Pseudonyms,
) -> _Revision:
    """Judge the people, decide, mark the unusable items and sign what this revision says."""
    # The provider's minimum as it is now, in this transaction: lowering it lets the next
    # decision through, raising it holds back the next one.
    minimum = assurance_minimum(session, job.provider_id, Operation(job.operation))
    outcomes, findings, subjects = _judge(session, job, analysis.people, now, revision, minimum)
    kind, reasons = policy.decide_job(outcomes, [c for c, _ in analysis.problems.values()])
    _tell_people(session, job, findings, now, revision)
    items = media_of(session, job.id)
    for item in items:
        if item.position in analysis.problems:
            item.rejected = analysis.problems[item.position][1]
    # Signed here, so the token says exactly what this transaction records.
    claims = token_claims(job, kind.value, reasons, items, findings, subjects, pseudonyms, minimum)
    claims["revision"] = revision
    # The audit tree this decision is recorded under: every provider holds a witness of the log.
    claims["audit_checkpoint"] = audit.checkpoint_claim(session)
    token, jti = signer.sign(claims, now)
    return _Revision(kind, reasons, outcomes, findings, token, jti, minimum)


def record_decision(
    session: Session, job: GateJob, analysis: Analysis, signing: Signing
) -> JobStatus:
    """The job's first decision, from its media, in the caller's transaction (which holds the
    job's lock). Decision's primary key is the job id: a concurrent second decision fails with
    IntegrityError at the flush."""
    now = utcnow()
    # Grants are read here, in the transaction that records the decision, so a revocation
    # committed while the media were being matched is honoured.
    r = _revise(session, job, analysis, now, 1, signing.signer, signing.pseudonyms)
    session.add(
        Decision(
            job_id=job.id,
            decision=r.kind.value,
            reasons=r.reasons,
            created_at=now,
            token=r.token,
            jti=r.jti,
            assurance_required=r.assurance_required.value if r.assurance_required else None,
        )
    )
    session.flush()  # the decision's primary key is the job id: a second decision fails here
    session.add(
        DecisionRevision(
            job_id=job.id,
            revision=1,
            decision=r.kind.value,
            reasons=r.reasons,
            token=r.token,
            jti=r.jti,
            token_sha256=token_digest(r.token),
            cause="media",
            created_at=now,
        )
    )
    if r.kind is DecisionKind.NEEDS_CONSENT and signing.envelope is not None:
        modality = Operation(job.operation).modality
        for person, finding in zip(analysis.people, r.findings, strict=True):
            if person.embedding is not None and finding.outcome in (
                Outcome.UNENROLLED,
                Outcome.AMBIGUOUS,
            ):
                keep_finding_face(
                    session,
                    signing.envelope,
                    finding,
                    modality,
                    person.embedding,
                    now + signing.finding_face_ttl,
                )
    job.status = JobStatus.DECIDED.value
    job.updated_at = now
    audit.append(
        session,
        signing.audit_key,
        "gate.decided",
        f"provider:{job.provider_id}",
        {
            "job_id": job.id,
            "operation": job.operation,
            "decision": r.kind.value,
            "reasons": r.reasons,
            "findings": [o.value for o in r.outcomes],
            "token_jti": r.jti,
        },
    )
    webhooks.job_decided(session, job, r.kind, r.reasons)  # outbox row, sent after commit
    return JobStatus.DECIDED


def _judge(
    session: Session,
    job: GateJob,
    people: list[PersonSeen],
    now: datetime,
    revision: int,
    minimum: Assurance | None,
) -> tuple[list[Outcome], list[Finding], dict[int, Subject]]:
    """Each person's outcome and finding row, from the grants and assurance levels as they are
    in this transaction (so a revocation committed while the media were being matched is
    honoured) and the provider's `minimum` for the operation."""
    matched = {p.subject_id for p in people if p.subject_id is not None}
    # The matched people's rows are locked before their grants are read: a revocation or a
    # protect-only switch (they take the same lock) commits either before this read, and is
    # honoured here, or after this decision, and then sees it (`consent.revoked` names the job).
    subjects = lock_subjects(session, matched)
    grants = current_grants(session, matched)
    outcomes: list[Outcome] = []
    findings: list[Finding] = []
    for person in people:
        verdict = _verdict(person, subjects, grants, job, now, minimum)
        outcomes.append(verdict.outcome)
        named = (
            subjects.get(person.subject_id)
            if verdict.outcome not in (Outcome.UNENROLLED, Outcome.AMBIGUOUS)
            and person.subject_id is not None
            else None
        )
        findings.append(
            Finding(
                job_id=job.id,
                media_position=person.position,
                role=person.role.value,
                outcome=verdict.outcome.value,
                subject_id=person.subject_id if verdict.outcome is not Outcome.UNENROLLED else None,
                grant_id=verdict.grant.grant_id if verdict.grant else None,
                grant_version=verdict.grant.version if verdict.grant else None,
                box=list(person.box),
                revision=revision,
                assurance=named.assurance if named is not None else None,
                uncovered_purpose=verdict.uncovered_purpose,
            )
        )
    session.add_all(findings)
    return outcomes, findings, subjects


def _tell_people(
    session: Session, job: GateJob, findings: list[Finding], now: datetime, revision: int
) -> None:
    """Each named person this revision did not allow to be edited (protect-only, refused,
    revoked, not covered, expired, assurance too low) gets one notice, whatever the number of
    their faces or roles in the job: written in this transaction, so it exists exactly when the
    decision does."""
    told: dict[int, Finding] = {}
    rank = {outcome: i for i, outcome in enumerate(notices.ATTEMPT_OUTCOMES)}
    for finding in findings:
        outcome = Outcome(finding.outcome)
        if finding.subject_id is None or outcome not in rank:
            continue
        seen = told.get(finding.subject_id)
        if seen is None or rank[outcome] < rank[Outcome(seen.outcome)]:
            told[finding.subject_id] = finding
    if not told:
        return
    provider = session.get(Provider, job.provider_id)
    name = provider.name if provider is not None else job.provider_id
    labels = _purpose_labels(session, job.purpose)
    for subject_id, finding in sorted(told.items()):
        notices.attempt_blocked(
            session,
            subject_id,
            Outcome(finding.outcome),
            name,
            job.operation,
            now,
            job.id,
            revision,
            purpose=labels if finding.uncovered_purpose else None,
        )


def _purpose_labels(session: Session, code: str | None) -> dict[str, str] | None:
    """The job's purpose in both languages, for a notice (a retired purpose keeps its labels;
    an unknown code, which validation prevents, is shown as it is)."""
    if not code:
        return None
    row = session.get(Purpose, code)
    if row is None:
        return {"en": code, "zh": code}
    return {"en": row.label_en, "zh": row.label_zh}


def _verdict(
    person: PersonSeen,
    subjects: dict[int, Subject],
    grants: Sequence[ConsentGrant],
    job: GateJob,
    now: datetime,
    minimum: Assurance | None,
) -> policy.PersonVerdict:
    if person.ambiguous:
        return policy.PersonVerdict(Outcome.AMBIGUOUS)
    subject = subjects.get(person.subject_id) if person.subject_id is not None else None
    if subject is None:
        return policy.PersonVerdict(Outcome.UNENROLLED)
    return policy.judge_person(
        [g for g in grants if g.subject_id == subject.id],
        protect_only=subject.protect_only,
        operation=Operation(job.operation),
        role=person.role,
        provider_id=job.provider_id,
        now=now,
        assurance=level_of(subject),
        minimum=minimum,
        purpose=job.purpose,
    )


def redecide(
    session: Session,
    job_id: str,
    identified: dict[int, int],
    audit_key: KeySource,
    signer: DecisionSigner,
    pseudonyms: Pseudonyms,
    cause: str,
) -> Decision | None:
    """Decide a `needs_consent` job again, in the caller's transaction, once a person it could
    not name is known (`identified`: finding id → subject id, e.g. from an approved consent
    request). The media are gone, so the people are those of the latest revision's findings;
    every grant is re-read now. Writes the next revision (findings, decision, token, audit
    entry, `job.decided`); returns the updated decision, or None when the job's latest
    decision is not `needs_consent` (nothing to revise). UNIQUE (job_id, revision) makes a
    concurrent second revision fail instead of being written twice."""
    job = session.exec(select(GateJob).where(GateJob.id == job_id).with_for_update()).one()
    decision = session.get(Decision, job_id)
    if decision is None or decision.decision != DecisionKind.NEEDS_CONSENT:
        return None
    previous = list(
        session.exec(
            select(Finding)
            .where(Finding.job_id == job_id, Finding.revision == decision.revision)
            .order_by(col(Finding.id))
        )
    )
    people = [
        PersonSeen(
            f.media_position,
            Role(f.role),
            tuple(f.box),
            identified.get(f.id, f.subject_id) if f.id is not None else f.subject_id,
            f.outcome == Outcome.AMBIGUOUS and f.id not in identified,
        )
        for f in previous
    ]
    now, revision = utcnow(), decision.revision + 1
    r = _revise(session, job, Analysis(people), now, revision, signer, pseudonyms)
    session.add(
        DecisionRevision(
            job_id=job_id,
            revision=revision,
            decision=r.kind.value,
            reasons=r.reasons,
            token=r.token,
            jti=r.jti,
            token_sha256=token_digest(r.token),
            cause=cause[:200],
            created_at=now,
        )
    )
    session.flush()  # UNIQUE (job_id, revision): a concurrent revision fails here
    decision.decision, decision.reasons, decision.revision = r.kind.value, r.reasons, revision
    decision.token, decision.jti, decision.created_at = r.token, r.jti, now
    decision.assurance_required = r.assurance_required.value if r.assurance_required else None
    job.updated_at = now
    audit.append(
        session,
        audit_key,
        "gate.decided",
        f"provider:{job.provider_id}",
        {
            "job_id": job_id,
            "revision": revision,
            "cause": cause,
            "operation": job.operation,
            "decision": r.kind.value,
            "reasons": r.reasons,
            "findings": [o.value for o in r.outcomes],
            "token_jti": r.jti,
        },
    )
    webhooks.job_decided(session, job, r.kind, r.reasons)
    session.flush()
    return decision
