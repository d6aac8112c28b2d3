"""A person in the browser (Flask's test client, every form with its CSRF token): sign up,
enroll a face through the real worker, grant consent, revoke it."""

from __future__ import annotations

import re
import time

import pytest

from tests.support import Person, pass_step_up, verified_sign_up

pytestmark = pytest.mark.e2e


def test_sign_up_enroll_grant_revoke(stack, strangers):
    person = Person(stack.client())
    # Sign up, sign in, open the mailed link: then the enrollment page.
    verified_sign_up(person, "erin@example.org", "correct horse battery", display_name="Erin")

    with open(strangers[3], "rb") as photo:
        response = person.post(
            "/enroll", {"photos": [(photo, "me.jpg")]}, content_type="multipart/form-data"
        )
    assert response.status_code == 302
    status_page = response.headers["Location"]
    deadline = time.monotonic() + 120
    while "Checking your photos" in (page := person.get(status_page)):
        assert time.monotonic() < deadline, "enrollment never finished"
        time.sleep(0.3)
    assert "1 face template made" in page, page

    page = person.get("/grants/new")
    boxes = re.findall(r"<input[^>]*checkbox[^>]*>", page)
    assert boxes and not [b for b in boxes if "checked" in b]  # nothing pre-ticked
    refused = person.post(
        "/grants/new", {"operations": "face_swap", "roles": "source", "provider_scope": "all"}
    )
    assert refused.status_code == 400  # the consent box was not ticked
    response = person.post(
        "/grants/new",
        {
            "operations": ["face_swap"],
            "roles": ["source", "target"],
            "provider_scope": "all",
            "agree": "y",
            "valid_until": "2099-12-31",
        },
    )
    pass_step_up(stack.app, response)  # the live check has tests of its own
    dashboard = person.get("/")
    assert "face swap" in dashboard and "active (v1)" in dashboard and "2099-12-31" in dashboard

    grant_id = re.search(r"/grants/([0-9a-f]{32})/revoke", dashboard).group(1)
    tokenless = stack.client().post(f"/grants/{grant_id}/revoke")
    assert "active (v1)" in person.get("/")  # a forged POST without the token changes nothing
    assert tokenless.status_code in (302, 400, 401)
    response = person.post(f"/grants/{grant_id}/revoke", {}, form_page="/")
    assert response.status_code == 302
    assert "revoked (v2)" in person.get("/")


def test_sign_out_kills_the_session_cookie(stack):
    person = Person(stack.client())
    verified_sign_up(person, "frank@example.org", "another long password")
    cookie = stack.client()
    cookie.set_cookie("session", person.client.get_cookie("session").value)
    assert cookie.get("/").status_code == 200
    assert person.post("/logout", {}, form_page="/").status_code == 302
    assert cookie.get("/").status_code == 302  # the copied cookie no longer signs anyone in


def test_pages_send_security_headers(stack):
    for path in ("/login", "/signup"):
        headers = stack.client().get(path).headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
