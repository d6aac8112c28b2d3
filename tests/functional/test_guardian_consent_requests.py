"""Consent requests answered by a guardian for a child under 14, through the real app and API:
the inbox and the request page act for the subject selected; approving grants the child (its
receipt names the guardian) after the face check against the child's templates; nobody answers
for a subject that is not theirs. No worker runs: the waiting jobs and templates are written
with the service functions, the requests are opened through the provider API."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import numpy as np
import pytest
from sqlmodel import select

from consent_service import db
from consent_service.audit.models import AuditEvent
from consent_service.consent.models import ConsentGrant
from consent_service.consent_requests.models import ConsentRequest
from consent_service.gate.finding_faces import keep_finding_face
from consent_service.gate.models import Decision, Finding
from consent_service.providers.models import Provider
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Modality
from tests import factories
from tests.functional.test_guardian_pages import (
    _act_as,
    _add_child,
    _child_id,
    _own_subject,
    _sign_up,
)
from tests.support import Person, pass_step_up, sign_receipts

FACE = np.linspace(-0.15, 0.25, 128)


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app()


def _waiting_job(site, subject_id: int | None = None, face: np.ndarray | None = None) -> str:
    """A `needs_consent` job of provider Acme with one finding: a subject the gate named
    (`not_covered`), or a face it could not name (`unenrolled`, the face kept for a request)."""
    with site.app.app_context(), db.unit_of_work() as s, factories.bound(s):
        provider = s.exec(select(Provider).where(Provider.name == "Acme")).one()
        outcome = "not_covered" if subject_id else "unenrolled"
        job = factories.GateJobFactory(
            provider=provider,
            decided=True,
            decision__decision="needs_consent",
            decision__reasons=[outcome],
        )
        finding = factories.FindingFactory(
            job=job, role="target", outcome=outcome, subject_id=subject_id
        )
        if face is not None:
            keep_finding_face(
                s, services().envelope, finding, Modality.FACE, face, utcnow() + timedelta(days=1)
            )
        return job.id


def _ask(site, job_id: str, **extra) -> str:
    body = {"job_id": job_id, "finding": 0, "purpose": "A school play trailer", **extra}
    response = site.client().post("/api/v1/consent-requests", json=body, headers=site.auth())
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def _enroll(site, subject_id: int, vector: np.ndarray) -> None:
    with site.app.app_context(), db.unit_of_work() as s, factories.bound(s):
        factories.BiometricTemplateFactory(
            subject_id=subject_id,
            modality=Modality.FACE.value,
            model="face_recognition/dlib-resnet-v1",
            sealed=(services().envelope, vector),
        )


def _answer(person: Person, request_id: str, action: str, **data):
    page = f"/requests/{request_id}"
    return person.post(f"{page}/{action}", data, form_page=page, follow_redirects=True)


def _approve(site, person: Person, request_id: str, subject: int) -> str:
    """Approve for `subject`: the answer waits for the live check, carried out here as the
    worker does once it passed; returns the request's page."""
    page = f"/requests/{request_id}"
    waiting = person.post(f"{page}/approve", {"agree": "y", "subject": subject}, form_page=page)
    pass_step_up(site.app, waiting)
    return person.get(page)


def _request(site, request_id: str) -> ConsentRequest:
    with site.app.app_context():
        return db.session().get(ConsentRequest, request_id)


def _decision(site, job_id: str) -> tuple[str, int]:
    with site.app.app_context():
        decision = db.session().get(Decision, job_id)
        return decision.decision, decision.revision


def _grants(site, subject_id: int) -> list[ConsentGrant]:
    with site.app.app_context():
        return list(
            db.session().exec(select(ConsentGrant).where(ConsentGrant.subject_id == subject_id))
        )


def _audit(site, event_type: str, request_id: str) -> AuditEvent:
    with site.app.app_context():
        events = db.session().exec(select(AuditEvent).where(AuditEvent.event_type == event_type))
        [event] = [e for e in events if e.payload.get("consent_request_id") == request_id]
        return event


def _hidden_subject(page: str) -> set[str]:
    return set(re.findall(r'<input[^>]*name="subject"[^>]*value="(\d+)"', page))


def test_a_guardian_approves_a_request_about_their_child(site):
    hana = _sign_up(site, "hana@example.org", "Hana")
    assert _add_child(hana, "Mei").status_code == 302  # Mei is now selected
    mei_id = _child_id(site, "Mei")
    hana_subject = _own_subject(site, "hana@example.org")
    omar = _sign_up(site, "omar@example.org", "Omar")
    assert _add_child(omar, "Leo").status_code == 302
    leo_id = _child_id(site, "Leo")

    job_id = _waiting_job(site, subject_id=mei_id)
    request_id = _ask(site, job_id)

    # With Mei selected the inbox is Mei's, with the selector; with "me" it is Hana's own.
    inbox = hana.get("/requests")
    assert "Consent requests for Mei" in inbox and "Mei (child)" in inbox
    assert f"/requests/{request_id}" in inbox and "Acme" in inbox
    assert _act_as(hana, "me").status_code == 302
    inbox = hana.get("/requests")
    assert f"/requests/{request_id}" not in inbox and "Consent requests for" not in inbox

    # Opened while acting for herself, the page says whom it is about and offers no answer;
    # an answer posted anyway is refused.
    page = hana.get(f"/requests/{request_id}")
    assert "This request is about Mei: choose Mei above" in page
    assert f"/requests/{request_id}/approve" not in page
    refused = _answer(hana, request_id, "approve", agree="y")
    assert "This request is for someone else" in refused.get_data(as_text=True)
    refused = _answer(hana, request_id, "decline")
    assert "This request is for someone else" in refused.get_data(as_text=True)
    assert _request(site, request_id).status == "pending" and _grants(site, mei_id) == []

    # The selector on the request page comes back to it, now acting for Mei.
    switched = hana.post(
        "/act-as",
        {"subject": str(mei_id), "next": f"/requests/{request_id}"},
        form_page=f"/requests/{request_id}",
    )
    assert switched.status_code == 302
    assert switched.headers["Location"].endswith(f"/requests/{request_id}")
    page = hana.get(f"/requests/{request_id}")
    assert "You are answering for Mei as their guardian." in page
    assert re.search(r"Acme asks for Mei(&#39;|')s consent", page)
    assert _hidden_subject(page) >= {str(mei_id)}

    # Another family: neither the request nor the child is reachable.
    assert omar.client.get(f"/requests/{request_id}").status_code == 404
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', omar.get("/")).group(1)
    for data in ({"agree": "y"}, {"agree": "y", "subject": str(mei_id)}):
        forged = omar.client.post(
            f"/requests/{request_id}/approve", data={**data, "csrf_token": token}
        )
        assert forged.status_code == 404
    assert _act_as(omar, mei_id).status_code == 404

    # Tampered form fields: another family's child, a subject that does not exist → 404. The
    # guardian's own subject (a page opened before switching) → refused, nothing granted.
    page = f"/requests/{request_id}"
    for subject in (leo_id, 999_999, "mei"):
        tampered = hana.post(f"{page}/approve", {"agree": "y", "subject": subject}, form_page=page)
        assert tampered.status_code == 404, subject
    assert hana.post(f"{page}/decline", {"subject": leo_id}, form_page=page).status_code == 404
    stale = _answer(hana, request_id, "approve", agree="y", subject=hana_subject.id)
    assert "You switched to someone else" in stale.get_data(as_text=True)
    assert _request(site, request_id).status == "pending" and _grants(site, mei_id) == []
    assert _grants(site, leo_id) == []

    _approve(site, hana, request_id, mei_id)

    req = _request(site, request_id)
    assert (req.status, req.subject_id) == ("approved", mei_id)
    [grant] = _grants(site, mei_id)
    assert grant.grant_id == req.grant_id and grant.operations == ["face_swap"]
    # The live step-up check behind the approval is its evidence, with the request it answered.
    assert grant.actor.startswith("user:") and grant.identity_method == "test-step-up"
    assert grant.identity_evidence and grant.identity_evidence["consent_request_id"] == req.id
    assert grant.guardian["reference"] == hana_subject.public_id
    assert grant.guardian["relationship"] == "parent"
    assert _grants(site, hana_subject.id) == []  # Hana's own consents are untouched
    assert _decision(site, job_id) == ("allow", 2)
    event = _audit(site, "consent_request.approved", request_id)
    assert event.subject_id == mei_id
    assert event.payload["guardian"]["reference"] == hana_subject.public_id

    # Mei's receipt (Mei selected) names the guardian and how the consent was collected.
    sign_receipts(site.app)
    receipt = hana.client.get(f"/grants/{grant.grant_id}/v1/receipt.json")
    assert receipt.status_code == 200
    body = json.loads(receipt.data)
    assert body["grant"]["guardian"]["reference"] == hana_subject.public_id
    assert "guardian of a child under 14" in body["collectionMethod"]
    assert f"consent request {request_id}" in body["collectionMethod"]
    assert omar.client.get(f"/grants/{grant.grant_id}/v1/receipt.json").status_code == 404


def test_the_face_check_runs_against_the_childs_templates(site):
    ana = _sign_up(site, "ana@example.org", "Ana")
    assert _add_child(ana, "Bo").status_code == 302  # Bo is now selected
    bo_id = _child_id(site, "Bo")
    ana_subject = _own_subject(site, "ana@example.org")
    _enroll(site, ana_subject.id, FACE)  # the guardian's own face is the one in the media

    # A face nobody is enrolled for: the provider asks at the guardian's address.
    job_id = _waiting_job(site, face=FACE)
    request_id = _ask(site, job_id, email="ana@example.org")
    for selected in ("me", bo_id):  # sent to the account's address: listed for either
        _act_as(ana, selected)
        assert f"/requests/{request_id}" in ana.get("/requests")

    page = ana.get(f"/requests/{request_id}")
    assert "You are answering for Bo as their guardian." in page
    assert "Bo has not been enrolled yet" in page
    refused = _answer(ana, request_id, "approve", agree="y", subject=bo_id)
    assert "Enroll your face first" in refused.get_data(as_text=True)

    # The child's templates are another face: refused, although the guardian's own face matches.
    _enroll(site, bo_id, -FACE)
    refused = _answer(ana, request_id, "approve", agree="y", subject=bo_id)
    assert "does not match the person" in refused.get_data(as_text=True)
    assert _request(site, request_id).status == "pending"
    assert _decision(site, job_id) == ("needs_consent", 1)
    assert _grants(site, bo_id) == [] and _grants(site, ana_subject.id) == []

    _enroll(site, bo_id, FACE + 0.01)
    _approve(site, ana, request_id, bo_id)
    req = _request(site, request_id)
    assert (req.status, req.subject_id) == ("approved", bo_id)
    [grant] = _grants(site, bo_id)
    assert grant.guardian["reference"] == ana_subject.public_id
    assert _grants(site, ana_subject.id) == []
    assert _decision(site, job_id) == ("allow", 2)
    with site.app.app_context():
        found = db.session().exec(
            select(Finding).where(Finding.job_id == job_id, Finding.revision == 2)
        )
        assert [(f.subject_id, f.outcome) for f in found] == [(bo_id, "consented")]


def test_a_guardian_declines_for_their_child(site):
    dai = _sign_up(site, "dai@example.org", "Dai")
    assert _add_child(dai, "Eva", relationship="legal_guardian").status_code == 302
    eva_id = _child_id(site, "Eva")
    job_id = _waiting_job(site, subject_id=eva_id)
    request_id = _ask(site, job_id)

    declined = _answer(dai, request_id, "decline", subject=eva_id)
    assert "Declined. Nothing was granted" in declined.get_data(as_text=True)
    req = _request(site, request_id)
    assert req.status == "declined" and req.grant_id is None
    assert _grants(site, eva_id) == []
    assert _decision(site, job_id) == ("needs_consent", 1)
    event = _audit(site, "consent_request.declined", request_id)
    assert event.subject_id == eva_id
    assert event.payload["guardian"]["reference"] == _own_subject(site, "dai@example.org").public_id
    assert event.payload["guardian"]["relationship"] == "legal_guardian"
    # Answered once: approving afterwards changes nothing.
    late = _answer(dai, request_id, "approve", agree="y", subject=eva_id)
    assert "no longer be answered" in late.get_data(as_text=True)
