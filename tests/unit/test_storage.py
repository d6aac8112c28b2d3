"""The local media store: encrypted files bound to their key, gone after delete."""

from __future__ import annotations

import secrets

import pytest
from cryptography.exceptions import InvalidTag

from consent_service.crypto import Envelope
from consent_service.storage import LocalMediaStore

MEDIA = b"\xff\xd8\xff\xe0 a person's photo, every byte of it private " * 50


def test_put_then_get_returns_the_bytes(store):
    key = store.put(MEDIA)
    assert key.isalnum()
    assert store.get(key) == MEDIA


def test_keys_are_unique(store):
    assert len({store.put(MEDIA) for _ in range(20)}) == 20


def test_files_on_disk_hold_no_plaintext_and_no_leftovers(store):
    key = store.put(MEDIA)
    files = [p for p in store.root.rglob("*") if p.is_file()]
    assert [p.name for p in files] == [key]  # no temporary file left behind
    on_disk = files[0].read_bytes()
    assert b"private" not in on_disk
    assert MEDIA[:24] not in on_disk


def test_get_after_delete_raises_key_error(store):
    key = store.put(MEDIA)
    store.delete(key)
    assert not (store.root / key).exists()
    with pytest.raises(KeyError):
        store.get(key)


def test_delete_is_idempotent(store):
    key = store.put(MEDIA)
    store.delete(key)
    store.delete(key)
    store.delete(secrets.token_hex(16))


def test_unknown_key_raises_key_error(store):
    store.put(MEDIA)
    with pytest.raises(KeyError):
        store.get(secrets.token_hex(16))


@pytest.mark.parametrize(
    "key",
    ["../victim", "..", "/etc/passwd", "sub/victim", "victim\x00", "", ".hidden", "a b", "..\\x"],
)
def test_keys_that_could_leave_the_folder_are_refused(store, tmp_path, key):
    store.put(MEDIA)
    victim = tmp_path / "victim"
    victim.write_bytes(b"not yours")
    with pytest.raises(KeyError):
        store.get(key)
    with pytest.raises(KeyError):
        store.delete(key)
    assert victim.read_bytes() == b"not yours"


def test_file_renamed_to_another_key_does_not_open(store):
    first, second = store.put(MEDIA), store.put(b"other media")
    (store.root / first).replace(store.root / second)
    with pytest.raises(InvalidTag):
        store.get(second)


def test_another_stores_key_cannot_read_the_files(store):
    key = store.put(MEDIA)
    thief = LocalMediaStore(store.root, Envelope(secrets.token_bytes(32)))
    with pytest.raises(InvalidTag):
        thief.get(key)
