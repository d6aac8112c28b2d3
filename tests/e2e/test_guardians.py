"""Guardians end to end with the real worker: a guardian enrolls a child through the photo page
and consents for the child; a job in which the child's face is found is judged by the child's
grants (the guardian's own grants do not count for the child)."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlmodel import select

from consent_service import db
from consent_service.accounts.models import Subject
from consent_service.biometrics.service import wait_for_enrollment
from consent_service.consent.notice import NOTICE_VERSION
from consent_service.gate.models import Finding
from tests.e2e.conftest import DECISION_TIMEOUT, Api
from tests.support import Person

pytestmark = pytest.mark.e2e

PASSWORD = "a child's face is theirs"


def _grant_face_swap(person: Person):
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
    assert response.status_code == 302


def test_a_child_enrolled_by_a_guardian_is_gated_by_the_childs_grants(stack, strangers):
    _, key = stack.provider("Kids Studio")
    api = Api(stack.client(), key)
    guardian = Person(stack.client())
    signup = {"email": "parent@example.org", "password": PASSWORD, "display_name": "Pat"}
    assert guardian.post("/signup", signup).status_code == 302
    # The guardian consents for themselves: that must not cover the child.
    _grant_face_swap(guardian)

    born = date(date.today().year - 9, 1, 15).isoformat()
    child = {"display_name": "Kim", "date_of_birth": born, "relationship": "parent"}
    assert guardian.post("/children", {**child, "declaration": "y"}).status_code == 302
    with stack.app.app_context():
        child_id = db.session().exec(select(Subject).where(Subject.display_name == "Kim")).one().id

    # The child is selected: the photo page enrolls the child through the worker.
    photo = strangers[0]
    response = guardian.post(
        "/enroll", {"photos": [(photo.open("rb"), "kim.jpg")]}, form_page="/enroll"
    )
    assert response.status_code == 302
    enrollment_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    with stack.app.app_context():
        enrollment = wait_for_enrollment(db.engine(), enrollment_id, DECISION_TIMEOUT)
    assert enrollment.status == "completed", enrollment.error
    assert enrollment.subject_id == child_id

    before = api.gate(target=[photo])
    assert before["decision"] == "needs_consent"
    assert [f["outcome"] for f in before["findings"]] == ["not_covered"]

    _grant_face_swap(guardian)  # for the child, by the guardian
    assert re.search(r"/grants/[0-9a-f]{32}/revoke", guardian.get("/"))
    after = api.gate(target=[photo])
    assert after["decision"] == "allow"
    with stack.app.app_context():
        found = db.session().exec(select(Finding).where(Finding.job_id == after["id"])).all()
        assert [f.subject_id for f in found] == [child_id]
