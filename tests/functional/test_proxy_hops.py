"""Behind a reverse proxy (PROXY_HOPS): the address the app holds a person to is the one the
proxy saw, in the sign-in throttle and in a grant's evidence; only the last PROXY_HOPS entries of
X-Forwarded-For are believed; with PROXY_HOPS=0 (the default) the header is ignored, since any
client may send it."""

from __future__ import annotations

import pytest
from sqlmodel import select

from consent_service import db
from consent_service.consent.models import ConsentGrant
from tests.support import GRANT_FORM, Person, pass_step_up, verified_sign_up

PASSWORD = "a long enough password"


def _failed_sign_in(site, forwarded_for: str | None):
    person = Person(site.client())
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return person.post(
        "/login", {"email": "nobody@example.org", "password": "wrong password"}, headers=headers
    )


@pytest.fixture(scope="module")
def behind_caddy(make_api_app):
    """One proxy in front (docker-compose's Caddy); two failed sign-ins per address an hour."""
    return make_api_app(proxy_hops=1, login_rate_limit_address="2/hour")


@pytest.fixture(scope="module")
def no_proxy(make_api_app):
    return make_api_app(login_rate_limit_address="2/hour")


def test_the_sign_in_throttle_counts_each_client_behind_the_proxy(behind_caddy):
    for _ in range(2):
        assert _failed_sign_in(behind_caddy, "203.0.113.7").status_code == 200
    assert _failed_sign_in(behind_caddy, "203.0.113.7").status_code == 429
    # Another person behind the same proxy is not locked out by the first one's failures.
    assert _failed_sign_in(behind_caddy, "203.0.113.8").status_code == 200


def test_only_the_last_hop_is_believed(behind_caddy):
    # The client wrote its own X-Forwarded-For; Caddy appended the address it really came from.
    for spoofed in ("198.51.100.1", "198.51.100.2"):
        answer = _failed_sign_in(behind_caddy, f"{spoofed}, 203.0.113.20")
        assert answer.status_code == 200
    assert _failed_sign_in(behind_caddy, "198.51.100.3, 203.0.113.20").status_code == 429


def test_without_proxy_hops_forwarded_for_is_ignored(no_proxy):
    for forwarded in ("203.0.113.30", "203.0.113.31"):
        assert _failed_sign_in(no_proxy, forwarded).status_code == 200
    # A third "client" is the same test client at 127.0.0.1, whatever the header says.
    assert _failed_sign_in(no_proxy, "203.0.113.32").status_code == 429


@pytest.mark.parametrize(("hops", "expected_ip"), [(1, "203.0.113.50"), (0, "127.0.0.1")])
def test_a_grant_s_evidence_names_the_client_address(make_api_app, hops, expected_ip):
    site = make_api_app(proxy_hops=hops)
    client = site.client()
    # Every request of this person comes through the proxy (Flask-Login's session protection
    # would end a session whose address changed).
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.50"
    person = verified_sign_up(Person(client), "grantor@example.org", PASSWORD)
    answer = person.post("/grants/new", GRANT_FORM, form_page="/grants/new?modality=face")
    grant_id = pass_step_up(site.app, answer)["grant_id"]
    with site.app.app_context():
        grant = db.session().exec(select(ConsentGrant).where(ConsentGrant.grant_id == grant_id))
        assert {row.ip for row in grant} == {expected_ip}
