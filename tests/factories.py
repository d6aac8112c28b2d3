"""factory_boy factories for the rows tests need, instead of rows built by hand in each test.

Each factory adds its row to the session bound for the test and flushes it (never commits: the
test, or the unit of work around it, decides that). Unit tests get the session bound by the
`factories` fixture (tests/unit/conftest.py); code holding another session binds it with
`with factories.bound(session):`. `Factory.build(...)` makes a row without any session (give
it its parents' ids).

Related rows come along: `GateJobFactory()` makes its provider too, `SubjectFactory()` its
account; pass the parent (`GateJobFactory(provider=acme)`) or its id (`provider_id=...`) to reuse
one, and nothing new is made. Traits name the states tests ask for:
`GateJobFactory(decided=True)` (with its decision row), `ConsentGrantFactory(revoked=True)`,
`ConsentGrantFactory(expired=True)`, `UserFactory(unverified=True)` (accounts are verified
otherwise).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta

import factory
from factory.alchemy import SQLAlchemyModelFactory
from sqlmodel import Session

# consent_service.models names every table, wherever a capability keeps it.
from consent_service.biometrics.service import seal_template
from consent_service.models import (
    BiometricTemplate,
    Complaint,
    ConsentGrant,
    ConsentRequest,
    Decision,
    Enrollment,
    Finding,
    GateJob,
    Provider,
    Subject,
    User,
)
from consent_service.timeutil import utcnow

_session: ContextVar[Session | None] = ContextVar("factories_session", default=None)


@contextmanager
def bound(session: Session) -> Iterator[Session]:
    """Factories called inside the block add their rows to `session`."""
    token = _session.set(session)
    try:
        yield session
    finally:
        _session.reset(token)


def _current_session() -> Session:
    session = _session.get()
    if session is None:
        raise RuntimeError(
            "no session for the factories: use the `factories` fixture or "
            "`with factories.bound(session):`, or `Factory.build()` for a row without one"
        )
    return session


def _parent_id(name: str, parent: type[factory.Factory], **defaults) -> factory.LazyAttribute:
    """The id of the parent row passed as `name` (`provider=acme`), else of a new one made by
    `parent`. Passing the id itself (`provider_id=...`) skips both."""

    def parent_id(row):
        given = getattr(row, name)
        return (given if given is not None else parent(**defaults)).id

    return factory.LazyAttribute(parent_id)


class _RowFactory(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = _current_session
        # The test (or the unit of work around it) commits; a factory only flushes, so ids and
        # foreign keys are there for the next row.
        sqlalchemy_session_persistence = "flush"


class UserFactory(_RowFactory):
    """An account; the password hash is a stand-in (nobody signs in with a factory's user). It
    has verified its address (what enrolling, granting and answering need) unless
    `unverified=True`."""

    class Meta:
        model = User

    class Params:
        unverified = factory.Trait(email_verified_at=None)

    email = factory.Sequence(lambda n: f"person{n}@example.org")
    password_hash = "-"
    email_verified_at = factory.LazyFunction(utcnow)


class SubjectFactory(_RowFactory):
    """A subject with a new account of its own, unless given one (`user=` or `user_id=`)."""

    class Meta:
        model = Subject

    class Params:
        user = None

    user_id = _parent_id("user", UserFactory)


class ProviderFactory(_RowFactory):
    class Meta:
        model = Provider

    name = factory.Sequence(lambda n: f"Provider {n}")


class GateJobFactory(_RowFactory):
    """A queued face-swap job; `decided=True` makes it decided with an `allow` decision row
    (`decision__decision="deny"`, `decision__reasons=[...]` to say otherwise)."""

    class Meta:
        model = GateJob

    class Params:
        provider = None
        decided = factory.Trait(
            status="decided",
            decision=factory.RelatedFactory(
                "tests.factories.DecisionFactory", factory_related_name="job"
            ),
        )

    provider_id = _parent_id("provider", ProviderFactory)
    operation = "face_swap"
    status = "queued"


class DecisionFactory(_RowFactory):
    class Meta:
        model = Decision

    class Params:
        job = None

    job_id = _parent_id("job", GateJobFactory, status="decided")
    decision = "allow"
    reasons = factory.LazyFunction(list)


class FindingFactory(_RowFactory):
    """One person found in a job's first medium, as the source; `consented` unless told."""

    class Meta:
        model = Finding

    class Params:
        job = None

    job_id = _parent_id("job", GateJobFactory, status="decided")
    media_position = 0
    role = "source"
    outcome = "consented"


class ConsentGrantFactory(_RowFactory):
    """Version 1 of an active grant: face swap, as the source, to every provider, from ten days
    ago with no end. `revoked=True` and `expired=True` give those versions' states."""

    class Meta:
        model = ConsentGrant

    class Params:
        subject = None
        revoked = factory.Trait(status="revoked", version=2)
        expired = factory.Trait(
            status="expired",
            version=2,
            valid_until=factory.LazyFunction(lambda: utcnow() - timedelta(days=1)),
        )

    subject_id = _parent_id("subject", SubjectFactory)
    modality = "face"
    operations = factory.LazyFunction(lambda: ["face_swap"])
    roles = factory.LazyFunction(lambda: ["source"])
    all_providers = True
    valid_from = factory.LazyFunction(lambda: utcnow() - timedelta(days=10))
    valid_until = None


class BiometricTemplateFactory(_RowFactory):
    """A face template; `sealed=(envelope, vector)` seals that vector into it as enrollment does
    (the row is flushed again with its ciphertext)."""

    class Meta:
        model = BiometricTemplate

    class Params:
        subject = None

    subject_id = _parent_id("subject", SubjectFactory)
    modality = "face"
    model = "m"
    ciphertext = b""
    wrapped_key = b""

    @factory.post_generation
    def sealed(obj, create, extracted, **kwargs):  # noqa: N805 - factory_boy passes the row
        if extracted is not None:
            envelope, vector = extracted
            seal_template(envelope, obj, vector)
            if create:
                _current_session().flush()


class EnrollmentFactory(_RowFactory):
    class Meta:
        model = Enrollment

    class Params:
        subject = None

    subject_id = _parent_id("subject", SubjectFactory)
    modality = "face"
    status = "pending"


class ConsentRequestFactory(_RowFactory):
    """A consent request a provider sent for a face swap, as the source, open for a week."""

    class Meta:
        model = ConsentRequest

    class Params:
        provider = None

    provider_id = _parent_id("provider", ProviderFactory)
    email = factory.Sequence(lambda n: f"asked{n}@example.org")
    operation = "face_swap"
    roles = factory.LazyFunction(lambda: ["source"])
    expires_at = factory.LazyFunction(lambda: utcnow() + timedelta(days=7))
    link_hash = "0" * 64


class ComplaintFactory(_RowFactory):
    """A complaint just filed from the public page ("I was edited without my consent"), naming
    nothing, with the default clocks (acknowledge in 48 hours, resolve in 15 days)."""

    class Meta:
        model = Complaint

    reference = factory.Sequence(lambda n: f"C-T{n:03d}-0000")
    kind = "edited_without_consent"
    description = "A video of me I never agreed to."
    email = factory.Sequence(lambda n: f"complainant{n}@example.org")
    language = "en"
    link_hash = "0" * 64
    created_at = factory.LazyFunction(utcnow)
    ack_due_at = factory.LazyAttribute(lambda o: o.created_at + timedelta(hours=48))
    resolve_due_at = factory.LazyAttribute(lambda o: o.created_at + timedelta(days=15))
