"""The people's side end to end with the real worker: a person grants with the full scope in the
browser, revokes, downloads a receipt for each version, sees real gate jobs in the ledger,
switches protect-only on, exports their data and deletes the account."""

from __future__ import annotations

import re

import pytest

from consent_service import db
from consent_service.audit.service import verify
from consent_service.runtime import services
from tests.e2e.conftest import Api
from tests.support import Person, pass_step_up, signed_receipt, templates_of, verified_sign_up

pytestmark = pytest.mark.e2e

PASSWORD = "my face is my own"


def test_grant_revoke_receipts_ledger_protect_export_delete(stack, photos):
    provider_id, key = stack.provider("People Studio")
    api = Api(stack.client(), key)
    person = Person(stack.client())
    email = "olga@example.org"
    verified_sign_up(person, email, PASSWORD)
    enrollment = stack.enroll(email, photos["obama.jpg"])
    assert enrollment.status == "completed", enrollment.error
    subject_id = enrollment.subject_id

    response = person.post(
        "/grants/new?modality=face",
        {
            "operations": ["face_swap", "face_reenactment"],
            "roles": ["source", "target"],
            "provider_scope": "chosen",
            "providers": [provider_id],
            "purpose": "A birthday video",
            "valid_until": "2099-12-31",
            "notice_version": "2026-11-1",
            "agree": "y",
        },
        form_page="/grants/new?modality=face",
    )
    pass_step_up(stack.app, response)  # the live check has tests of its own
    grant_id = re.search(r"/grants/([0-9a-f]{32})/revoke", person.get("/")).group(1)

    allowed = api.gate(source=[photos["obama2.jpg"]])
    assert allowed["decision"] == "allow"

    assert person.post(f"/grants/{grant_id}/revoke", {}, form_page="/").status_code == 302
    # The worker signs each version's receipt after its commit.
    receipts = [
        signed_receipt(person.client, f"/grants/{grant_id}/v{v}/receipt.json") for v in (1, 2)
    ]
    assert [
        (r["grant"]["status"], r["iso27560"]["events"][0]["event_state"]) for r in receipts
    ] == [
        ("active", "consent given"),
        ("revoked", "consent withdrawn"),
    ]
    assert receipts[0]["iso27560"]["purposes"][0]["recipient_third_parties"] == [
        {"id": provider_id, "name": "People Studio"}
    ]
    assert receipts[1]["iso27560"]["purposes"][0]["processing_method"]["edit_types"] == [
        "face_reenactment",
        "face_swap",
    ]

    blocked = api.gate(source=[photos["obama2.jpg"]])
    assert (blocked["decision"], blocked["findings"][0]["outcome"]) == ("deny", "revoked")

    assert person.post("/protect-only", {"on": "1"}, form_page="/").status_code == 302
    protected = api.gate(target=[photos["obama3.jpg"]])
    assert (protected["decision"], protected["findings"][0]["outcome"]) == ("deny", "protected")

    ledger = person.get("/activity")
    for job in (allowed, blocked, protected):
        assert job["id"][:12] in ledger
    assert "allowed (everyone consented)" in ledger
    assert "blocked: denied (you: consent revoked)" in ledger
    assert "blocked: denied (you: protect-only mode)" in ledger

    export = person.client.get("/account/export.json")
    data = export.get_json()
    assert [(g["version"], g["status"]) for g in data["grants"]] == [(1, "active"), (2, "revoked")]
    assert len(data["receipts"]) == 2 and data["subject"]["protect_only"] is True
    assert {e["job_id"] for e in data["ledger"]} == {allowed["id"], blocked["id"], protected["id"]}
    assert len(data["templates"]) == 1
    raw = export.get_data(as_text=True)
    assert "ciphertext" not in raw and "embedding" not in raw

    assert person.post("/account/delete", {"password": PASSWORD}).status_code == 302
    with stack.app.app_context():
        s = db.session()
        assert templates_of(s, subject_id) == []
        assert verify(s, services().audit_key).ok
    after = api.gate(source=[photos["obama2.jpg"]])
    assert (after["decision"], after["findings"][0]["outcome"]) == ("needs_consent", "unenrolled")
    login = Person(stack.client()).post("/login", {"email": email, "password": PASSWORD})
    assert "Wrong e-mail address or password" in login.get_data(as_text=True)
