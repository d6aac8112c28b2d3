"""Accounts people and operators can trust (issue 9, item 1), through the real app: no account
enumeration by sign-up or reset, a verified address before anything that binds the person,
throttled sign-in, sessions that end on sign-out, reset and password change, TOTP, invitations
that never adopt a password."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.exc import NoResultFound
from sqlmodel import select

from consent_service import db
from consent_service.accounts.models import User
from consent_service.mail import read_outbox
from consent_service.operators.service import add_operator
from consent_service.runtime import services
from tests.support import (
    GRANT_FORM,
    Person,
    accept_invitation,
    csrf_token,
    invitation_path,
    mailed_link,
    pass_step_up,
    set_up_two_factor,
    sign_in,
    totp_code,
    verified_sign_up,
)

PASSWORD = "a long enough password"
NEW_PAGES = ("/login", "/signup", "/reset", "/account/password", "/account/two-factor")


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app()


def _user(site, email: str) -> User:
    with site.app.app_context():
        return db.session().exec(select(User).where(User.email == email)).one()


def _mails_to(site, email: str) -> list[dict]:
    return [m for m in read_outbox(site.settings.mail_outbox_dir) if m["to"] == email]


def _answer(person: Person, path: str, data: dict, email: str):
    """Status, target and the page it leads to, with the address itself taken out."""
    response = person.post(path, data)
    page = person.client.get(response.headers.get("Location", "/")).get_data(as_text=True)
    page = re.sub(r'name="csrf_token"[^>]*>', "", page).replace(email, "ADDRESS")
    return response.status_code, response.headers.get("Location"), page


def test_sign_up_answers_alike_for_a_new_and_a_taken_address(site):
    verified_sign_up(Person(site.client()), "taken@example.org", PASSWORD)
    before = len(_mails_to(site, "taken@example.org"))

    new = _answer(
        Person(site.client()),
        "/signup",
        {"email": "new@example.org", "password": "x" * 12},
        "new@example.org",
    )
    taken = _answer(
        Person(site.client()),
        "/signup",
        {"email": "taken@example.org", "password": "x" * 12},
        "taken@example.org",
    )
    assert new == taken
    assert new[0] == 302 and new[1] == "/login"
    # Neither visitor is signed in; the owner of the taken address hears of it by mail.
    mails = _mails_to(site, "taken@example.org")[before:]
    assert len(mails) == 1 and "/reset/" in mails[0]["body"]
    assert "/verify/" in _mails_to(site, "new@example.org")[-1]["body"]
    # The password typed on the taken address's sign-up was never adopted.
    assert sign_in(Person(site.client()), "taken@example.org", "x" * 12).status_code == 200
    assert sign_in(Person(site.client()), "taken@example.org", PASSWORD).status_code == 302


def test_reset_answers_alike_and_the_link_works_once_ending_every_session(site):
    verified_sign_up(Person(site.client()), "rita@example.org", PASSWORD)
    other_browser = Person(site.client())
    assert sign_in(other_browser, "rita@example.org", PASSWORD).status_code == 302
    stolen = site.client()
    stolen.set_cookie("session", other_browser.client.get_cookie("session").value)
    assert stolen.get("/").status_code == 200

    known = _answer(
        Person(site.client()), "/reset", {"email": "rita@example.org"}, "rita@example.org"
    )
    unknown = _answer(
        Person(site.client()), "/reset", {"email": "nobody@example.org"}, "nobody@example.org"
    )
    assert known == unknown and known[0] == 302
    assert _mails_to(site, "nobody@example.org") == []

    link = mailed_link(site.client(), "rita@example.org", "/reset/")
    visitor = Person(site.client())
    assert visitor.post(link, {"password": "a brand new password"}).status_code == 302
    assert (
        visitor.client.get(link).status_code == 400
    )  # once only: the password it replaced is gone
    for cookie_holder in (other_browser.client, stolen):
        assert cookie_holder.get("/").status_code != 200
    assert sign_in(Person(site.client()), "rita@example.org", PASSWORD).status_code == 200
    assert (
        sign_in(Person(site.client()), "rita@example.org", "a brand new password").status_code
        == 302
    )
    forged = Person(site.client()).client.get(link[:-4] + "AAAA")
    assert forged.status_code == 400


def test_an_unverified_account_cannot_grant_and_verifies_only_signed_in_as_itself(site):
    person = Person(site.client())
    assert (
        person.post("/signup", {"email": "uma@example.org", "password": PASSWORD}).status_code
        == 302
    )
    link = mailed_link(site.client(), "uma@example.org", "/verify/")
    # Opened without signing in: the sign-in page, nothing verified.
    anonymous = site.client().get(link)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert not _user(site, "uma@example.org").is_verified
    # Opened signed in as someone else: refused.
    other = verified_sign_up(Person(site.client()), "oscar@example.org", PASSWORD)
    assert other.client.get(link).status_code == 400
    assert not _user(site, "uma@example.org").is_verified

    assert sign_in(person, "uma@example.org", PASSWORD).status_code == 302
    home = person.get("/")
    assert "Verify your e-mail address" in home and "Send the link again" in home
    refused = person.post("/grants/new", GRANT_FORM, form_page="/grants/new?modality=face")
    assert "Verify your e-mail address first" in refused.get_data(as_text=True)
    assert "You have granted nothing" in person.get("/")
    again = person.post("/verify/send", {}, form_page="/")
    assert again.status_code == 302
    assert (
        person.client.get(mailed_link(site.client(), "uma@example.org", "/verify/")).status_code
        == 302
    )
    assert _user(site, "uma@example.org").is_verified
    pass_step_up(
        site.app, person.post("/grants/new", GRANT_FORM, form_page="/grants/new?modality=face")
    )
    assert "You have granted nothing" not in person.get("/")


def test_sign_in_is_throttled_per_account_and_per_address(make_api_app):
    # An app of its own, with low limits: its client address ends up throttled.
    site = make_api_app(login_rate_limit_account="4/hour", login_rate_limit_address="12/hour")
    verified_sign_up(Person(site.client()), "tom@example.org", PASSWORD)
    for _ in range(4):
        assert (
            sign_in(Person(site.client()), "tom@example.org", "wrong password!").status_code == 200
        )
    # The account is locked for now, even with the right password; an unknown address the same.
    locked = sign_in(Person(site.client()), "tom@example.org", PASSWORD)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in locked.get_data(as_text=True)
    for _ in range(4):
        sign_in(Person(site.client()), "ghost@example.org", "wrong password!")
    ghost = sign_in(Person(site.client()), "ghost@example.org", "wrong password!")
    assert ghost.status_code == 429 and ghost.headers["Retry-After"]
    # Per client address: many accounts from one address (8 failures above, 4 more reach 12).
    for n in range(4):
        sign_in(Person(site.client()), f"spray{n}@example.org", "wrong password!")
    sprayed = sign_in(Person(site.client()), "spray9@example.org", "wrong password!")
    assert sprayed.status_code == 429
    other_address = Person(site.app.test_client())
    other_address.client.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert sign_in(other_address, "spray9@example.org", "wrong password!").status_code == 200


def _refusal(person: Person, path: str, data: dict, email: str):
    """Status, Retry-After and the page shown, with the address and the CSRF token taken out."""
    response = person.post(path, data)
    page = response.get_data(as_text=True)
    page = re.sub(r'name="csrf_token"[^>]*>', "", page).replace(email, "ADDRESS")
    return response.status_code, response.headers.get("Retry-After"), page


def test_account_mails_are_throttled_per_address_and_per_client_alike_for_any_address(
    make_api_app,
):
    # An app of its own, with low limits: its client address ends up throttled.
    site = make_api_app(mail_rate_limit_address="3/hour", mail_rate_limit_client="12/hour")
    verified_sign_up(Person(site.client()), "kai@example.org", PASSWORD)  # mail 1 for kai
    for email in ("kai@example.org", "kai@example.org", "nobody@example.org"):
        assert Person(site.client()).post("/reset", {"email": email}).status_code == 302
    for _ in range(2):
        assert (
            Person(site.client()).post("/reset", {"email": "nobody@example.org"}).status_code == 302
        )
    # Three mails asked for each address: the fourth is refused, the same way for both.
    known = _refusal(
        Person(site.client()), "/reset", {"email": "kai@example.org"}, "kai@example.org"
    )
    unknown = _refusal(
        Person(site.client()), "/reset", {"email": "nobody@example.org"}, "nobody@example.org"
    )
    # Retry-After counts down in seconds: the two answers may straddle a second's boundary.
    assert (known[0], known[2]) == (unknown[0], unknown[2])
    assert abs(int(known[1]) - int(unknown[1])) <= 1
    assert known[0] == 429 and int(known[1]) > 0 and "Too many mails were asked" in known[2]
    assert len([m for m in _mails_to(site, "kai@example.org") if "/reset/" in m["body"]]) == 2
    # Sign-up counts too: a taken and a new address answer alike when refused.
    taken = _refusal(
        Person(site.client()),
        "/signup",
        {"email": "kai@example.org", "password": "x" * 12},
        "kai@example.org",
    )
    new = _refusal(
        Person(site.client()),
        "/signup",
        {"email": "nobody@example.org", "password": "x" * 12},
        "nobody@example.org",
    )
    assert (taken[0], taken[2]) == (new[0], new[2]) and taken[0] == 429
    assert abs(int(taken[1]) - int(new[1])) <= 1  # the same second's boundary, as above
    with site.app.app_context():  # refused before anything was made
        assert (
            db.session().exec(select(User).where(User.email == "nobody@example.org")).first()
            is None
        )
    # Per client address: 12 asked from this one (10 above, refused ones count), then 429.
    for n in range(2):
        answer = Person(site.client()).post("/reset", {"email": f"spray{n}@example.org"})
        assert answer.status_code == 302
    sprayed = Person(site.client()).post("/reset", {"email": "spray9@example.org"})
    assert sprayed.status_code == 429 and sprayed.headers["Retry-After"]
    elsewhere = Person(site.app.test_client())
    elsewhere.client.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert elsewhere.post("/reset", {"email": "spray9@example.org"}).status_code == 302


def test_a_captured_cookie_never_works_after_sign_out_or_a_password_change(site):
    person = verified_sign_up(Person(site.client()), "cleo@example.org", PASSWORD)
    copied = site.client()
    copied.set_cookie("session", person.client.get_cookie("session").value)
    assert copied.get("/").status_code == 200
    changed = person.post(
        "/account/password", {"current": PASSWORD, "password": "another long password"}
    )
    assert changed.status_code == 302
    assert person.client.get("/").status_code == 200  # this browser goes on
    assert copied.get("/").status_code != 200  # every other session ended
    wrong = person.post("/account/password", {"current": "not it at all", "password": "y" * 12})
    assert wrong.status_code == 400

    copied.set_cookie("session", person.client.get_cookie("session").value)
    assert copied.get("/").status_code == 200
    assert person.post("/logout", {}, form_page="/").status_code == 302
    assert copied.get("/").status_code != 200


def test_totp_is_optional_for_people_and_each_code_works_once(site):
    person = verified_sign_up(Person(site.client()), "tess@example.org", PASSWORD)
    secret = set_up_two_factor(person)
    page = person.get("/account/two-factor")
    assert "10 recovery codes left" in page
    fresh = Person(site.client())
    response = sign_in(fresh, "tess@example.org", PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/login/code"
    assert fresh.client.get("/").status_code == 302  # not signed in without the code
    assert fresh.post("/login/code", {"code": "000000"}).status_code == 200
    assert fresh.client.get("/").status_code == 302
    code = totp_code(secret, ahead=1)  # the set-up used the current step
    assert fresh.post("/login/code", {"code": code}).status_code == 302
    assert fresh.client.get("/").status_code == 200
    # The same code again, in another browser: refused.
    again = Person(site.client())
    sign_in(again, "tess@example.org", PASSWORD)
    assert again.post("/login/code", {"code": code}).status_code == 200
    assert again.client.get("/").status_code == 302
    # Turning it off takes the password, not only a session.
    fresh.post("/account/two-factor/off", {"password": "not my password"}, "/account/two-factor")
    assert _user(site, "tess@example.org").has_totp
    fresh.post("/account/two-factor/off", {"password": PASSWORD}, "/account/two-factor")
    assert not _user(site, "tess@example.org").has_totp


def test_recovery_codes_work_once(site):
    person = verified_sign_up(Person(site.client()), "remy@example.org", PASSWORD)
    page = person.get("/account/two-factor")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    shown = person.post("/account/two-factor", {"code": totp_code(secret)}).get_data(as_text=True)
    codes = re.findall(r"<li><code>([0-9a-f]{6}-[0-9a-f]{6})</code></li>", shown)
    assert len(codes) == 10
    first = Person(site.client())
    sign_in(first, "remy@example.org", PASSWORD)
    assert first.post("/login/code", {"code": codes[0]}).status_code == 302
    second = Person(site.client())
    sign_in(second, "remy@example.org", PASSWORD)
    assert second.post("/login/code", {"code": codes[0]}).status_code == 200
    assert "9 recovery codes left" in first.get("/account/two-factor")


def test_an_operator_invitation_never_adopts_a_pre_registered_password(site):
    squatter = Person(site.client())
    assert (
        squatter.post(
            "/signup", {"email": "ops@example.org", "password": "squatter's pass"}
        ).status_code
        == 302
    )
    with site.app.app_context(), db.unit_of_work() as s:
        _, invitation = add_operator(s, services().audit_key, "ops@example.org")
    assert not invitation.new_account  # an existing account: it must accept, verified
    path = invitation_path(site.app, invitation)
    assert sign_in(squatter, "ops@example.org", "squatter's pass").status_code == 302
    page = squatter.client.get(path)
    refused = squatter.client.post(
        path, data={"csrf_token": csrf_token(page.get_data(as_text=True))}
    )
    assert refused.status_code == 403  # nothing accepted
    assert "Verify your e-mail address first" in refused.get_data(as_text=True)
    assert not _user(site, "ops@example.org").is_operator
    assert squatter.client.get("/operator/").status_code == 403
    # Anonymous visitors of an existing account's invitation are asked to sign in.
    anonymous = site.client().get(path)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_an_operator_is_sent_to_set_up_totp_and_needs_it_for_the_console(site):
    person = verified_sign_up(Person(site.client()), "olga@example.org", PASSWORD)
    with site.app.app_context(), db.unit_of_work() as s:
        _, invitation = add_operator(s, services().audit_key, "olga@example.org")
    accept_invitation(person, invitation_path(site.app, invitation))
    assert _user(site, "olga@example.org").is_operator
    console = person.client.get("/operator/")
    assert console.status_code == 302 and console.headers["Location"].startswith(
        "/account/two-factor"
    )
    secret = set_up_two_factor(person)
    assert person.client.get("/operator/").status_code == 200
    later = Person(site.client())
    assert sign_in(later, "olga@example.org", PASSWORD).headers["Location"] == "/login/code"
    assert later.post("/login/code", {"code": totp_code(secret, ahead=1)}).status_code == 302
    assert later.client.get("/operator/").status_code == 200
    # Operators cannot turn it off.
    person.post("/account/two-factor/off", {}, form_page="/account/two-factor")
    assert _user(site, "olga@example.org").has_totp


def test_new_forms_need_csrf_and_pages_carry_the_security_headers(site):
    person = verified_sign_up(Person(site.client()), "hedy@example.org", PASSWORD)
    for path in NEW_PAGES:
        response = person.client.get(path)
        assert response.status_code == 200, path
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    for path, data in (
        ("/signup", {"email": "csrf@example.org", "password": PASSWORD}),
        ("/reset", {"email": "hedy@example.org"}),
        ("/account/password", {"current": PASSWORD, "password": "z" * 12}),
        ("/account/two-factor", {"code": "123456"}),
        ("/verify/send", {}),
        ("/login", {"email": "hedy@example.org", "password": PASSWORD}),
    ):
        assert site.client().post(path, data=data).status_code == 400, path
    with pytest.raises(NoResultFound):  # the tokenless sign-up made nothing
        _user(site, "csrf@example.org")
