"""Guardians end to end with the real worker: a guardian enrolls a child through the photo page
and consents for the child; a job in which the child's face is found is judged by the child's
grants (the guardian's own grants do not count for the child); a provider's consent request for
the child's face is answered by the guardian acting for the child."""

from __future__ import annotations

import re
from datetime import date

import jwt
import pytest
from sqlmodel import select

from consent_service import db
from consent_service.accounts.models import Subject, User
from consent_service.accounts.service import subject_of
from consent_service.biometrics.service import wait_for_enrollment
from consent_service.consent.notice import NOTICE_VERSION
from consent_service.gate.models import Finding
from consent_service.mail import read_outbox
from tests.e2e.conftest import DECISION_TIMEOUT, Api
from tests.support import Person, pass_step_up, signed_receipt, verified_sign_up

pytestmark = pytest.mark.e2e

PASSWORD = "a child's face is theirs"


def _grant_face_swap(stack, person: Person):
    response = person.post(
        "/grants/new?modality=face",
        {
            "operations": ["face_swap"],
            "roles": ["source", "target"],
            "provider_scope": "all",
            "purpose": "Family video",
            "notice_version": NOTICE_VERSION,
            "agree": "y",
        },
        form_page="/grants/new?modality=face",
    )
    pass_step_up(stack.app, response)  # the live check has tests of its own


def _enroll_selected(stack, guardian: Person, photo, child_id: int) -> None:
    """The guardian enrolls the selected child from a photo, through the worker."""
    response = guardian.post(
        "/enroll", {"photos": [(photo.open("rb"), photo.name)]}, form_page="/enroll"
    )
    assert response.status_code == 302
    enrollment_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    with stack.app.app_context():
        enrollment = wait_for_enrollment(db.engine(), enrollment_id, DECISION_TIMEOUT)
    assert enrollment.status == "completed", enrollment.error
    assert enrollment.subject_id == child_id


def test_a_child_enrolled_by_a_guardian_is_gated_by_the_childs_grants(stack, strangers):
    _, key = stack.provider("Kids Studio")
    api = Api(stack.client(), key)
    guardian = Person(stack.client())
    verified_sign_up(guardian, "parent@example.org", PASSWORD, display_name="Pat")
    # The guardian consents for themselves: that must not cover the child.
    _grant_face_swap(stack, guardian)

    born = date(date.today().year - 9, 1, 15).isoformat()
    child = {"display_name": "Kim", "date_of_birth": born, "relationship": "parent"}
    assert guardian.post("/children", {**child, "declaration": "y"}).status_code == 302
    with stack.app.app_context():
        child_id = db.session().exec(select(Subject).where(Subject.display_name == "Kim")).one().id

    # The child is selected: the photo page enrolls the child through the worker.
    photo = strangers[0]
    _enroll_selected(stack, guardian, photo, child_id)

    before = api.gate(target=[photo])
    assert before["decision"] == "needs_consent"
    assert [f["outcome"] for f in before["findings"]] == ["not_covered"]

    _grant_face_swap(stack, guardian)  # for the child, by the guardian
    assert re.search(r"/grants/[0-9a-f]{32}/revoke", guardian.get("/"))
    after = api.gate(target=[photo])
    assert after["decision"] == "allow"
    with stack.app.app_context():
        found = db.session().exec(select(Finding).where(Finding.job_id == after["id"])).all()
        assert [f.subject_id for f in found] == [child_id]


def test_a_guardian_approves_a_providers_request_for_the_child(stack, strangers):
    """The child's photo in a provider's job → needs_consent → the provider asks for that
    finding → the guardian, acting for the child, approves → the job is decided again: allow."""
    _, key = stack.provider("Kids Requests")
    api = Api(stack.client(), key)
    guardian = Person(stack.client())
    verified_sign_up(guardian, "carer@example.org", PASSWORD, display_name="Cam")
    born = date(date.today().year - 6, 3, 1).isoformat()
    child = {"display_name": "Noa", "date_of_birth": born, "relationship": "legal_guardian"}
    assert guardian.post("/children", {**child, "declaration": "y"}).status_code == 302
    with stack.app.app_context():
        s = db.session()
        noa_id = s.exec(select(Subject).where(Subject.display_name == "Noa")).one().id
        cam = s.exec(select(User).where(User.email == "carer@example.org")).one()
        cam_ref = subject_of(s, cam).public_id

    photo = strangers[2]
    _enroll_selected(stack, guardian, photo, noa_id)

    job = api.gate(target=[photo])
    assert job["decision"] == "needs_consent"
    assert [f["outcome"] for f in job["findings"]] == ["not_covered"]
    ask = {"job_id": job["id"], "finding": 0, "purpose": "A class photo animation"}
    created = api.client.post("/api/v1/consent-requests", json=ask, headers=api.headers)
    assert created.status_code == 202, created.get_json()
    request_id = created.get_json()["id"]
    # The gate named the child: the link goes to the guardian's account address.
    mails = [m for m in read_outbox(stack.settings.mail_outbox_dir) if request_id in m["body"]]
    assert [m["to"] for m in mails] == ["carer@example.org"]

    # Acting for themselves, the guardian is told whom the request is about, then selects Noa.
    assert guardian.post("/act-as", {"subject": "me"}, form_page="/").status_code == 302
    page = f"/requests/{request_id}"
    assert "This request is about Noa" in guardian.get(page)
    switched = guardian.post("/act-as", {"subject": str(noa_id), "next": page}, form_page=page)
    assert switched.headers["Location"].endswith(page)
    inbox = guardian.get("/requests")
    assert "Consent requests for Noa" in inbox and page in inbox
    assert "You are answering for Noa as their guardian." in guardian.get(page)
    approved = guardian.post(f"{page}/approve", {"agree": "y", "subject": noa_id}, form_page=page)
    pass_step_up(stack.app, approved)

    decided = api.job(job["id"]).get_json()
    assert decided["decision"] == "allow", decided
    assert [f["outcome"] for f in decided["findings"]] == ["consented"]
    assert jwt.decode(decided["token"], options={"verify_signature": False})["revision"] == 2
    grant_id = api.client.get(f"/api/v1/consent-requests/{request_id}", headers=api.headers)
    grant_id = grant_id.get_json()["grant_id"]
    receipt = signed_receipt(guardian.client, f"/grants/{grant_id}/v1/receipt.json")
    assert receipt["grant"]["guardian"]["reference"] == cam_ref
    assert receipt["grant"]["guardian"]["relationship"] == "legal_guardian"
    assert "guardian of a child under 14" in receipt["collectionMethod"]
    # The next job with the child's face is allowed on the child's new grant.
    assert api.gate(target=[photo])["decision"] == "allow"
