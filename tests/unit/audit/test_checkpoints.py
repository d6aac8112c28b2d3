"""Signed checkpoints: the note format, its signature, the verifier key, and where the signing
key comes from (its own setting; generated in development only)."""

from __future__ import annotations

import base64
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consent_service.audit import merkle
from consent_service.audit.checkpoints import (
    Checkpoint,
    CheckpointError,
    CheckpointKeyError,
    SignerKey,
    VerifierKey,
    add_checkpoint_key,
    load_signer,
    load_verifiers,
    new_key_text,
    parse_note,
    split_notes,
    verifiers_file_for,
    verifiers_path,
)
from consent_service.settings import InsecureSettings, Settings

ORIGIN = "consent.example.com/audit"


@pytest.fixture
def signer() -> SignerKey:
    return SignerKey(ORIGIN, Ed25519PrivateKey.generate())


def checkpoint(size: int = 7, stamp: int = 1_764_000_000) -> Checkpoint:
    return Checkpoint(ORIGIN, size, merkle.leaf_hash(str(size).encode()), stamp)


def test_the_note_is_a_c2sp_checkpoint_and_parses_back(signer):
    cp = checkpoint()
    note = cp.sign(signer)
    body, signatures = note.split("\n\n")
    assert body.split("\n") == [ORIGIN, "7", cp.root_b64, "timestamp 1764000000"]
    assert signatures.startswith(f"\u2014 {ORIGIN} ")
    raw = base64.b64decode(signatures.split(" ")[2])
    assert raw[:4] == signer.verifier.key_id and len(raw) == 4 + 64
    assert parse_note(note, [signer.verifier]) == cp


def test_a_note_signed_by_another_key_or_altered_is_refused(signer):
    note = checkpoint().sign(signer)
    stranger = SignerKey(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(CheckpointError, match="not signed by a known"):
        parse_note(note, [stranger.verifier])
    with pytest.raises(CheckpointError):
        parse_note(note.replace("\n7\n", "\n8\n"), [signer.verifier])
    with pytest.raises(CheckpointError):
        parse_note(note.replace("timestamp 1764000000", "timestamp 1764000001"), [signer.verifier])
    forged = checkpoint(size=8).sign(stranger)  # a stranger's signature under our key's id
    forged = forged.replace(
        base64.b64encode(stranger.verifier.key_id).decode()[:5],
        base64.b64encode(signer.verifier.key_id).decode()[:5],
    )
    with pytest.raises(CheckpointError):
        parse_note(forged, [signer.verifier])
    with pytest.raises(CheckpointError):
        parse_note(note.split("\n\n")[0] + "\n", [signer.verifier])


def test_the_verifier_key_round_trips_and_its_id_is_checked(signer):
    text = signer.verifier.vkey()
    name, key_id, _ = text.split("+", 2)
    assert (name, key_id) == (ORIGIN, signer.verifier.key_id.hex())
    assert VerifierKey.parse(text).vkey() == text
    with pytest.raises(CheckpointError):
        VerifierKey.parse(text.replace(key_id, "00000000"))


def test_split_notes_finds_each_note_of_a_file(signer):
    notes = [checkpoint(size).sign(signer) for size in (1, 2, 5)]
    assert split_notes("".join(notes)) == notes
    assert [parse_note(n, [signer.verifier]).size for n in split_notes("".join(notes))] == [1, 2, 5]


class TestKey:
    def test_development_generates_one_key_in_the_home_folder_and_keeps_it(self, tmp_path):
        settings = Settings(consent_service_home=tmp_path, public_url="https://cs.example.org")
        first = load_signer(settings)
        assert first.name == "cs.example.org/audit"
        key_file = tmp_path / "audit-checkpoint.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert load_signer(settings).verifier.vkey() == first.verifier.vkey()

    def test_production_refuses_to_go_on_without_a_key(self, tmp_path):
        settings = Settings(consent_service_home=tmp_path, consent_service_env="production")
        with pytest.raises(InsecureSettings, match="AUDIT_CHECKPOINT_KEY"):
            load_signer(settings)

    def test_the_key_inline_in_a_file_or_as_pem(self, tmp_path):
        text = new_key_text()
        inline = load_signer(Settings(consent_service_home=tmp_path, audit_checkpoint_key=text))
        path = tmp_path / "k"
        path.write_text(text + "\n")
        in_file = load_signer(
            Settings(consent_service_home=tmp_path, audit_checkpoint_key=str(path))
        )
        assert inline.verifier.vkey() == in_file.verifier.vkey()
        pem = inline.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        as_pem = load_signer(Settings(consent_service_home=tmp_path, audit_checkpoint_key=pem))
        assert as_pem.verifier.vkey() == inline.verifier.vkey()

    def test_the_key_is_derived_from_no_other_secret(self, tmp_path):
        # Two homes with the same TEMPLATE_KEK and SECRET_KEY get unrelated checkpoint keys.
        common = {"template_kek": base64.b64encode(b"k" * 32).decode(), "secret_key": "s" * 32}
        one = load_signer(Settings(consent_service_home=tmp_path / "a", **common))
        two = load_signer(Settings(consent_service_home=tmp_path / "b", **common))
        assert one.verifier.vkey() != two.verifier.vkey()

    @pytest.mark.parametrize("bad", ["c2hvcnQ=", "/no/such/file"])
    def test_a_bad_key_is_a_clear_error(self, tmp_path, bad):
        with pytest.raises(CheckpointKeyError):
            load_signer(Settings(consent_service_home=tmp_path, audit_checkpoint_key=bad))


class TestVerifierKeys:
    """The public half the web reads: `<key file>.pub`, one verifier key per line."""

    def test_a_rotation_writes_every_verifier_key_beside_the_key_file(self, tmp_path):
        path = tmp_path / "checkpoint.key"
        first = add_checkpoint_key(path, ORIGIN)
        second = add_checkpoint_key(path, ORIGIN)
        public = verifiers_file_for(path)
        assert public.name == "checkpoint.key.pub"
        assert stat.S_IMODE(public.stat().st_mode) == 0o644
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert public.read_text() == first.verifier.vkey() + "\n" + second.verifier.vkey() + "\n"
        assert new_key_text() not in public.read_text()

    def test_production_reads_them_with_the_key_file_absent(self, tmp_path):
        path = tmp_path / "checkpoint.key"
        signer = add_checkpoint_key(path, ORIGIN)
        path.unlink()
        settings = Settings(
            consent_service_env="production",
            audit_checkpoint_key=str(path),
            audit_log_origin=ORIGIN,
        )
        assert [k.vkey() for k in load_verifiers(settings)] == [signer.verifier.vkey()]
        with pytest.raises(CheckpointKeyError):
            load_signer(settings)

    def test_inline_or_named_and_refused_when_absent(self, tmp_path):
        keys = [SignerKey(ORIGIN, Ed25519PrivateKey.generate()).verifier for _ in range(2)]
        text = " ".join(k.vkey() for k in keys)
        inline = Settings(consent_service_env="production", audit_checkpoint_public_keys=text)
        assert verifiers_path(inline) is None
        assert [k.vkey() for k in load_verifiers(inline)] == text.split()
        named = tmp_path / "witness-keys"
        named.write_text(text.replace(" ", "\n"))
        from_file = Settings(
            consent_service_env="production", audit_checkpoint_public_keys=str(named)
        )
        assert [k.vkey() for k in load_verifiers(from_file)] == text.split()
        for settings in (
            Settings(consent_service_env="production", consent_service_home=tmp_path / "h"),
            Settings(consent_service_env="production", audit_checkpoint_key=new_key_text()),
        ):
            with pytest.raises(InsecureSettings, match="AUDIT_CHECKPOINT_PUBLIC_KEYS"):
                load_verifiers(settings)
        named.write_text("not a key\n")
        with pytest.raises(CheckpointKeyError):
            load_verifiers(from_file)

    def test_development_generates_the_key_with_its_verifier_file(self, tmp_path):
        settings = Settings(consent_service_home=tmp_path, audit_log_origin=ORIGIN)
        verifiers = load_verifiers(settings)
        assert [k.vkey() for k in verifiers] == [load_signer(settings).verifier.vkey()]
        assert (tmp_path / "audit-checkpoint.key.pub").exists()
