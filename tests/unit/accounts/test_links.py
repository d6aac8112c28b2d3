"""Mailed links: bound to their purpose, refused when forged, expired or made for another use."""

from __future__ import annotations

import time

import pytest

from consent_service.accounts import links
from consent_service.errors import InvalidRequest

SECRET = "a test secret key, not a real one"


def test_a_link_opens_only_for_its_purpose_and_its_key():
    token = links.sign(SECRET, links.VERIFY, {"u": 7, "e": "a@example.org"})
    assert links.load(SECRET, links.VERIFY, token, 60) == {"u": 7, "e": "a@example.org"}
    for purpose, secret in ((links.RESET, SECRET), (links.INVITE, SECRET), (links.VERIFY, "x")):
        with pytest.raises(InvalidRequest):
            links.load(secret, purpose, token, 60)
    with pytest.raises(InvalidRequest):
        links.load(SECRET, links.VERIFY, token[:-2] + "xx", 60)


def test_a_link_expires(monkeypatch):
    token = links.sign(SECRET, links.RESET, {"u": 1, "p": "stamp"})
    later = time.time() + 3601
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(InvalidRequest):
        links.load(SECRET, links.RESET, token, 3600)


def test_the_password_stamp_changes_with_the_password():
    assert links.password_stamp("$argon2id$a") != links.password_stamp("$argon2id$b")
