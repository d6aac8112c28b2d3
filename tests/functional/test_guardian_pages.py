"""Guardians through the real app: add a child under 14, switch the dashboard to the child, enroll
and consent for the child, receipts that name the guardian, and another family kept out (404).
No worker runs: enrollments stay pending and templates are written with the service functions."""

from __future__ import annotations

import json
import re
from datetime import date

import numpy as np
import pytest
from sqlmodel import select

from consent_service import db
from consent_service.accounts.models import Guardianship, Subject, User
from consent_service.accounts.service import subject_of
from consent_service.biometrics.models import BiometricTemplate, Enrollment
from consent_service.consent.models import ConsentGrant
from consent_service.consent.notice import NOTICE_VERSION
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Modality
from consent_service.web import SESSION_KEY
from tests import factories
from tests.support import Person, pass_step_up, sign_receipts, verified_sign_up

PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app()


def _sign_up(site, email: str, name: str) -> Person:
    return verified_sign_up(Person(site.client()), email, PASSWORD, display_name=name)


def _own_subject(site, email: str) -> Subject:
    with site.app.app_context():
        s = db.session()
        return subject_of(s, s.exec(select(User).where(User.email == email)).one())


def _years_ago(years: int) -> str:
    today = utcnow().date()
    return date(today.year - years, today.month, min(today.day, 28)).isoformat()


def _add_child(person: Person, name: str, **overrides):
    return person.post(
        "/children",
        {
            "display_name": name,
            "date_of_birth": _years_ago(8),
            "relationship": "parent",
            "declaration": "y",
            **overrides,
        },
    )


def _child_id(site, name: str) -> int:
    with site.app.app_context():
        return db.session().exec(select(Subject).where(Subject.display_name == name)).one().id


def _act_as(person: Person, subject: str | int):
    return person.post("/act-as", {"subject": str(subject)}, form_page="/")


def _grant_face(person: Person):
    return person.post(
        "/grants/new?modality=face",
        {
            "modality": "face",
            "operations": ["face_swap"],
            "roles": ["source", "target"],
            "provider_scope": "all",
            "purpose": "School play video",
            "notice_version": NOTICE_VERSION,
            "agree": "y",
        },
        form_page="/grants/new?modality=face",
    )


def _grant_ids(page: str) -> list[str]:
    return re.findall(r"/grants/([0-9a-f]{32})/revoke", page)


def test_a_guardian_manages_a_child_and_other_guardians_cannot(site, photos):
    guardian = _sign_up(site, "hana@example.org", "Hana")
    other = _sign_up(site, "omar@example.org", "Omar")

    # Only a child under 14, and only with the guardian's declaration ticked (never pre-ticked).
    form = guardian.get("/children")
    assert "checked" not in re.search(r'<input[^>]*name="declaration"[^>]*>', form).group(0)
    assert _add_child(guardian, "Mei", declaration="").status_code == 400
    assert _add_child(guardian, "Mei", date_of_birth=_years_ago(15)).status_code == 400
    assert _add_child(guardian, "Mei").status_code == 302
    child_id = _child_id(site, "Mei")
    with site.app.app_context():
        s = db.session()
        link = s.exec(select(Guardianship).where(Guardianship.subject_id == child_id)).one()
        assert link.relationship == "parent" and "under 14" in link.declaration
        # The guardian's own subject is still "the subject of this user".
        hana = s.exec(select(User).where(User.email == "hana@example.org")).one()
        assert subject_of(s, hana).display_name == "Hana"

    # Adding the child selects it; the selector switches between "me" and the child.
    dashboard = guardian.get("/")
    assert "Hello Mei" in dashboard and "Mei (child)" in dashboard
    assert _act_as(guardian, "me").status_code == 302
    assert "Hello Hana" in guardian.get("/")
    assert _act_as(guardian, child_id).status_code == 302
    assert "Hello Mei" in guardian.get("/")

    # The photo upload enrolls the selected subject: the child.
    response = guardian.post(
        "/enroll", {"photos": [(photos["obama.jpg"].open("rb"), "mei.jpg")]}, form_page="/enroll"
    )
    assert response.status_code == 302
    with site.app.app_context():
        enrollment = db.session().exec(select(Enrollment)).all()[-1]
        assert enrollment.subject_id == child_id

    # Consent for the child, given by the guardian: the grant and its receipt say so.
    pass_step_up(site.app, _grant_face(guardian))
    [grant_id] = _grant_ids(guardian.get("/"))
    sign_receipts(site.app)
    receipt = guardian.client.get(f"/grants/{grant_id}/v1/receipt.json")
    assert receipt.status_code == 200
    body = json.loads(receipt.data)
    hana_ref = _own_subject(site, "hana@example.org").public_id
    with site.app.app_context():
        mei = db.session().get(Subject, child_id)
        assert body["piiPrincipalId"] == mei.public_id
    assert body["grant"]["guardian"]["reference"] == hana_ref
    assert body["grant"]["guardian"]["relationship"] == "parent"
    assert "guardian" in body["collectionMethod"]
    # The guardian's own consents are apart from the child's.
    _act_as(guardian, "me")
    assert _grant_ids(guardian.get("/")) == []
    _act_as(guardian, child_id)

    # Another guardian can neither select the child nor reach its grants, receipts or data.
    assert _act_as(other, child_id).status_code == 404
    assert other.client.get(f"/grants/{grant_id}/v1/receipt.json").status_code == 404
    token_page = other.get("/")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', token_page).group(1)
    revoke = other.client.post(f"/grants/{grant_id}/revoke", data={"csrf_token": token})
    assert revoke.status_code == 404
    assert other.client.get(f"/children/{child_id}/delete").status_code == 404
    # A forged selection in the session is checked on the next request and dropped.
    with other.client.session_transaction() as web_session:
        web_session[SESSION_KEY] = child_id
    assert other.client.get("/").status_code == 404
    with other.client.session_transaction() as web_session:
        assert SESSION_KEY not in web_session
    assert "Hello Omar" in other.get("/")
    with site.app.app_context():
        row = db.session().exec(select(ConsentGrant).where(ConsentGrant.grant_id == grant_id))
        assert [g.status for g in row] == ["active"]

    # The guardian revokes for the child; the withdrawal's receipt names the guardian too.
    assert guardian.post(f"/grants/{grant_id}/revoke", {}, form_page="/").status_code == 302
    sign_receipts(site.app)
    body = json.loads(guardian.client.get(f"/grants/{grant_id}/v2/receipt.json").data)
    assert body["grant"]["status"] == "revoked"
    assert body["grant"]["guardian"]["reference"] == hana_ref

    # The child's export goes through the guardian and names them.
    export = json.loads(guardian.client.get("/account/export.json").data)
    assert export["subject"]["reference"] == mei.public_id
    assert export["subject"]["guardian"]["reference"] == hana_ref
    assert [g["status"] for g in export["grants"]] == ["active", "revoked"]


def test_a_guardian_deletes_a_childs_data(site):
    guardian = _sign_up(site, "ines@example.org", "Ines")
    assert _add_child(guardian, "Leo", relationship="legal_guardian").status_code == 302
    child_id = _child_id(site, "Leo")
    with site.app.app_context(), db.unit_of_work() as s, factories.bound(s):
        factories.BiometricTemplateFactory(
            subject_id=child_id,
            modality=Modality.FACE.value,
            model="face_recognition/dlib-resnet-v1",
            sealed=(services().envelope, np.linspace(-0.2, 0.2, 128)),
        )
    pass_step_up(site.app, _grant_face(guardian))

    wrong = guardian.post(f"/children/{child_id}/delete", {"password": "not the password"})
    assert wrong.status_code == 400
    done = guardian.post(f"/children/{child_id}/delete", {"password": PASSWORD})
    assert done.status_code == 302
    with site.app.app_context():
        s = db.session()
        assert (
            s.exec(select(BiometricTemplate).where(BiometricTemplate.subject_id == child_id)).all()
            == []
        )
        grants = s.exec(select(ConsentGrant).where(ConsentGrant.subject_id == child_id)).all()
        assert sorted(g.status for g in grants) == ["active", "revoked"]
        assert all(g.guardian for g in grants)
    # The child is gone from the selector; the guardian is back to managing themselves.
    page = guardian.get("/")
    assert "Leo (child)" not in page and "Hello Ines" in page
    assert guardian.client.get(f"/children/{child_id}/delete").status_code == 404
