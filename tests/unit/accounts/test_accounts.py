"""Sign-up and sign-in: argon2id hashes, one account per address, sessions that can be ended."""

from __future__ import annotations

import pytest

from consent_service.accounts import service as accounts
from consent_service.errors import AccountExists, InvalidRequest

EMAIL = "li.wei@example.org"
PASSWORD = "correct horse battery"


@pytest.fixture
def user(session):
    user = accounts.sign_up(session, EMAIL, PASSWORD, display_name="Li Wei")
    session.commit()
    return user


def test_sign_up_stores_an_argon2id_hash_not_the_password(user):
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_sign_up_creates_the_subject_the_account_protects(session, user):
    subject = accounts.subject_of(session, user)
    assert subject.user_id == user.id
    assert subject.display_name == "Li Wei"
    assert subject.protect_only is False


def test_right_password_signs_in(reopen, user):
    with reopen() as s:
        found = accounts.authenticate(s, EMAIL, PASSWORD)
    assert found is not None and found.id == user.id


def test_address_is_matched_case_and_space_insensitively(session, user):
    assert accounts.authenticate(session, "  Li.Wei@EXAMPLE.org ", PASSWORD).id == user.id


def test_wrong_password_is_refused(session, user):
    for password in ("correct horse battery!", "Correct horse battery", ""):
        assert accounts.authenticate(session, EMAIL, password) is None, password


def test_unknown_or_malformed_address_is_refused_like_a_wrong_password(session, user):
    for email in ("nobody@example.org", "not an address", ""):
        assert accounts.authenticate(session, email, PASSWORD) is None, email


def test_second_account_for_an_address_is_refused(session, user):
    for email in (EMAIL, " LI.WEI@example.org"):
        with pytest.raises(AccountExists):
            accounts.sign_up(session, email, "another long password")


def test_short_password_is_refused(session):
    with pytest.raises(InvalidRequest, match="at least 10 characters"):
        accounts.sign_up(session, "new@example.org", "123456789")
    assert accounts.find_user(session, "new@example.org") is None


@pytest.mark.parametrize("email", ["", "no-at-sign", "two@@example.org", "a@b", "x y@example.org"])
def test_malformed_address_is_refused(session, email):
    with pytest.raises(InvalidRequest, match="valid e-mail"):
        accounts.sign_up(session, email, PASSWORD)


def test_session_id_loads_its_user(reopen, user):
    with reopen() as s:
        loaded = accounts.load_user(s, user.get_id())
    assert loaded is not None and loaded.id == user.id


def test_rotated_session_token_logs_out_old_sessions(session, reopen, user):
    old_id = user.get_id()
    accounts.end_all_sessions(user)
    session.commit()
    with reopen() as s:
        assert accounts.load_user(s, old_id) is None
        assert accounts.load_user(s, user.get_id()).id == user.id


def test_malformed_or_unknown_session_ids_load_nobody(session, user):
    token = user.session_token
    for value in ("", "abc", str(user.id), f"{user.id}:", f":{token}", f"x:{token}", f"99:{token}"):
        assert accounts.load_user(session, value) is None, value
