"""The printable receipt page through the real app, in both languages: before a worker has
signed the receipt it says the signed copy is being prepared and offers no download; once signed
it shows every field with its Kantara / ISO names, the JWS and how to check it, and the JWS
downloaded verifies against the published JWKS (and with `consent-service receipts verify`)."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from consent_service.cli import main
from consent_service.cli_support import AppLoader
from consent_service.rights.receipts import RECEIPT_TYP, verify_receipt
from consent_service.tokens.service import keys_from_jwks
from tests.support import Person, pass_step_up, sign_receipts, verified_sign_up

PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app(
        controller_name="Example Registry Ltd", controller_contact="privacy@example.org"
    )


def _grant(site, email: str, language: str = "en") -> tuple[Person, str]:
    person = verified_sign_up(Person(site.client()), email, PASSWORD)
    if language != "en":
        person.post("/language", {"lang": language, "next": "/"}, form_page="/")
    pass_step_up(
        site.app,
        person.post(
            "/grants/new",
            {
                "operations": ["face_swap", "face_reenactment"],
                "roles": ["source"],
                "provider_scope": "all",
                "purpose": "A birthday video",
                "agree": "y",
                "notice_version": "2026-11-1",
            },
        ),
    )
    dashboard = person.get("/")
    [grant_id] = re.findall(r"/grants/([0-9a-f]{32})/revoke", dashboard)
    assert f"/grants/{grant_id}/v1/receipt" in dashboard  # the dashboard links the page
    return person, grant_id


def test_the_page_says_the_signed_copy_is_coming_then_shows_it(site, tmp_path, monkeypatch):
    person, grant_id = _grant(site, "ria@example.org")
    page_url = f"/grants/{grant_id}/v1/receipt"

    pending = person.get(page_url)
    assert 'id="receipt-pending"' in pending and 'data-signed="no"' in pending
    assert "being prepared" in pending
    assert "A birthday video" in pending  # what it will say is shown already
    assert ".jws" not in pending
    for suffix in (".json", ".jws"):
        answer = person.client.get(f"{page_url}{suffix}")
        assert answer.status_code == 409 and answer.headers["Retry-After"] == "30"

    assert sign_receipts(site.app) == 1
    page = person.get(page_url)
    assert 'data-signed="yes"' in page and "receipt-pending" not in page
    for name in ("consentReceiptID", "piiPrincipalId", "collectionMethod", "pii_principal_id"):
        assert f"<code>{name}" in page  # each field named as the standards name it
    assert "Example Registry Ltd" in page and "privacy@example.org" in page
    assert "face reenactment, face swap" in page and "(face_reenactment, face_swap)" in page
    assert "consent given" in page
    assert "@media print" not in page  # print styles live in the stylesheet
    assert "consent-service receipts verify" in page and "/.well-known/jwks.json" in page

    jws_answer = person.client.get(f"{page_url}.jws")
    assert jws_answer.status_code == 200 and jws_answer.mimetype == "application/jose"
    jws = jws_answer.get_data(as_text=True)
    assert jws in page
    content = json.loads(person.get(f"{page_url}.json"))
    jwks = person.client.get("/.well-known/jwks.json").get_json()
    verified, kid = verify_receipt(jws, keys_from_jwks(jwks))
    assert verified == content  # the JSON served is exactly what was signed
    assert kid in page and RECEIPT_TYP in page
    assert content["iso27560"]["record_id"] == grant_id and content["grant"]["version"] == 1

    # The endpoint that checks decision tokens refuses a receipt, though the same keys sign both.
    refused = person.client.post(
        "/api/v1/decisions/verify", json={"token": jws, "accept_expired": True}
    )
    assert refused.status_code == 422 and "typ" in refused.get_json()["detail"]

    # The CLI checks the downloaded file against the service's keys and prints what it says.
    saved = tmp_path / "receipt.jws"
    saved.write_text(jws)
    monkeypatch.setenv("CONSENT_SERVICE_HOME", str(site.settings.consent_service_home))
    result = CliRunner().invoke(
        main, ["receipts", "verify", str(saved)], obj=AppLoader(lambda: site.app)
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["receipt"] == content
    saved.write_text(jws.replace(".", ".x", 1))
    result = CliRunner().invoke(
        main, ["receipts", "verify", str(saved)], obj=AppLoader(lambda: site.app)
    )
    assert result.exit_code == 1 and "invalid:" in result.output


def test_the_page_in_chinese(site):
    person, grant_id = _grant(site, "lin@example.org", language="zh-CN")
    sign_receipts(site.app)
    page = person.get(f"/grants/{grant_id}/v1/receipt")
    assert '<html lang="zh-CN">' in page
    assert "同意回执" in page and "如何核验" in page
    assert "换脸" in page  # the edit types in words of the page's language
    assert "consentReceiptID" in page  # the standards' field names stay as they are


def test_nobody_else_reaches_a_receipt(site):
    person, grant_id = _grant(site, "sam@example.org")
    sign_receipts(site.app)
    other = verified_sign_up(Person(site.client()), "tom@example.org", PASSWORD)
    for suffix in ("", ".json", ".jws"):
        assert other.client.get(f"/grants/{grant_id}/v1/receipt{suffix}").status_code == 404
    assert person.client.get(f"/grants/{grant_id}/v9/receipt").status_code == 404
