"""Labels in real files: a photo (JPEG, and the same photo as PNG) and an MP4 made with ffmpeg,
labelled and read back by our reader and by stock c2pa-python; what a reader must notice (an
altered file, another file's XMP, a file of another kind); and the signing credentials."""

from __future__ import annotations

import io
import json
import shutil
import subprocess

import av
import c2pa
import pytest
from PIL import Image

from consent_service.errors import MediaRejected
from consent_service.labels import credentials, service, xmp
from consent_service.labels.provenance import AIGC_ASSERTION, CONSENT_ASSERTION
from consent_service.settings import InsecureSettings, Settings

DIGEST = "5d" * 32


def _label(digest: str = DIGEST) -> service.Label:
    return service.Label(
        aigc={
            "Label": "1",
            "ContentProducer": "Acme",
            "ProduceID": "job1",
            "ReservedCode1": digest,
            "ContentPropagator": "",
            "PropagateID": "",
            "ReservedCode2": "",
        },
        consent={
            "decision": "allow",
            "operation": "face_swap",
            "token_sha256": digest,
            "status_url": service.status_url("https://consent.example", digest),
            "issued_at": "2026-01-01T00:00:00+00:00",
        },
    )


@pytest.fixture(scope="module")
def creds(tmp_path_factory) -> credentials.LabelCredentials:
    return credentials.load(Settings(consent_service_home=tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="module")
def jpeg(photos) -> bytes:
    return photos["obama.jpg"].read_bytes()


@pytest.fixture(scope="module")
def png(jpeg) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def mp4(photos, tmp_path_factory) -> bytes:
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "Debian's ffmpeg makes the test clip (apt-get install ffmpeg)"
    out = tmp_path_factory.mktemp("clip") / "clip.mp4"
    subprocess.run(  # noqa: S603 - a fixed command line on a test file
        [
            ffmpeg, "-loglevel", "error", "-y", "-loop", "1", "-i", str(photos["obama.jpg"]),
            "-t", "1", "-r", "5", "-vf", "scale=320:-2", "-pix_fmt", "yuv420p",
            "-c:v", "libx264", str(out),
        ],
        check=True,
    )  # fmt: skip
    return out.read_bytes()


def _stock_manifest(data: bytes, media_type: str) -> tuple[dict, str]:
    """What stock c2pa-python reads (no code of ours): the active manifest and its state."""
    with c2pa.Reader(media_type, io.BytesIO(data)) as reader:
        return reader.get_active_manifest(), reader.get_validation_state()


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_a_labelled_photo_carries_the_xmp_label_and_a_signed_manifest(kind, request, creds):
    original = request.getfixturevalue(kind)
    labelled, media_type = service.embed(original, _label(), creds, title=f"photo.{kind}")
    assert media_type == f"image/{kind}"
    # GB 45438's AIGC object in the XMP packet, all seven fields.
    assert xmp.read(original) is None
    assert xmp.read(labelled) == _label().aigc
    assert b"http://www.tc260.org.cn/ns/AIGC/1.0/" in labelled
    # Stock c2pa-python reads the manifest: our assertions, signature and hashes intact; the
    # development certificate is trusted by nobody, which is the only failure it reports.
    manifest, state = _stock_manifest(labelled, media_type)
    assertions = {a["label"]: a["data"] for a in manifest["assertions"]}
    assert assertions[CONSENT_ASSERTION] == _label().consent
    assert assertions[AIGC_ASSERTION] == {"AIGC": _label().aigc}
    assert state == "Valid"
    found = service.read(labelled)
    assert (found.aigc_in, found.digest, found.signed, found.consistent) == (
        "xmp",
        DIGEST,
        True,
        True,
    )
    assert found.manifest is not None
    assert found.manifest.failures == ["signingCredential.untrusted"]
    assert "Consent Service" in found.manifest.signer
    # Still the same picture.
    before, after = Image.open(io.BytesIO(original)), Image.open(io.BytesIO(labelled))
    assert after.size == before.size
    assert after.convert("RGB").tobytes() == before.convert("RGB").tobytes()


def test_a_labelled_mp4_carries_the_label_in_its_manifest(mp4, creds):
    labelled, media_type = service.embed(mp4, _label(), creds, title="clip.mp4")
    assert media_type == "video/mp4"
    manifest, state = _stock_manifest(labelled, media_type)
    assertions = {a["label"]: a["data"] for a in manifest["assertions"]}
    assert assertions[AIGC_ASSERTION]["AIGC"]["ReservedCode1"] == DIGEST
    assert assertions[CONSENT_ASSERTION]["token_sha256"] == DIGEST
    assert state == "Valid"
    found = service.read(labelled)
    assert (found.aigc_in, found.digest, found.signed) == ("c2pa", DIGEST, True)
    with av.open(io.BytesIO(labelled)) as container:  # still a playable video
        assert sum(1 for _ in container.decode(video=0)) == 5


def test_an_altered_labelled_file_no_longer_checks_out(jpeg, creds):
    labelled, _ = service.embed(jpeg, _label(), creds, title="photo.jpg")
    altered = bytearray(labelled)
    altered[-100] ^= 0xFF  # inside the image data the manifest hashed
    found = service.read(bytes(altered))
    assert found.digest == DIGEST  # the label is still there to read
    assert found.manifest is not None and found.manifest.validation_state == "Invalid"
    assert not found.signed


def test_another_files_xmp_label_does_not_match_the_manifest(jpeg, creds):
    labelled, _ = service.embed(jpeg, _label(), creds, title="photo.jpg")
    swapped = xmp.embed(labelled, _label("77" * 32).aigc)
    found = service.read(swapped)
    assert found.aigc is not None and found.aigc["ReservedCode1"] == "77" * 32
    assert not found.consistent and not found.signed


def test_embedding_twice_keeps_one_xmp_packet(jpeg, png):
    for original in (jpeg, png):
        once = xmp.embed(original, _label("11" * 32).aigc)
        twice = xmp.embed(once, _label("22" * 32).aigc)
        assert twice.count(b"TC260:AIGC>") == 2  # one element: its opening and closing tags
        assert xmp.read(twice)["ReservedCode1"] == "22" * 32


def test_an_unlabelled_photo_reads_as_no_label(jpeg):
    found = service.read(jpeg)
    assert (found.aigc, found.consent, found.manifest, found.digest) == (None, None, None, None)


def test_other_files_are_refused(creds):
    with pytest.raises(MediaRejected):
        service.embed(b"%PDF-1.7 not a picture", _label(), creds, title="x.pdf")
    with pytest.raises(MediaRejected):
        service.read(b"GIF89a")


def test_development_credentials_are_made_once_owner_only(tmp_path):
    settings = Settings(consent_service_home=tmp_path)
    first, again = credentials.load(settings), credentials.load(settings)
    assert first == again and first.development and first.algorithm == "es256"
    assert (tmp_path / credentials.DEV_FILE).stat().st_mode & 0o777 == 0o600


def test_production_refuses_missing_and_development_credentials(tmp_path):
    with pytest.raises(InsecureSettings):
        credentials.load(Settings(consent_service_home=tmp_path, consent_service_env="production"))
    pem = credentials.development_pem()
    marker = b"-----BEGIN CERTIFICATE-----"
    key, _, chain = pem.partition(marker)
    (tmp_path / "cert.pem").write_bytes(marker + chain)
    (tmp_path / "key.pem").write_bytes(key)
    given = {"label_cert": tmp_path / "cert.pem", "label_key": tmp_path / "key.pem"}
    assert credentials.load(Settings(consent_service_home=tmp_path, **given)).development
    with pytest.raises(InsecureSettings, match="development certificate"):
        credentials.load(
            Settings(consent_service_home=tmp_path, consent_service_env="production", **given)
        )


def test_a_key_that_is_not_the_certificates_is_refused(tmp_path):
    marker = b"-----BEGIN CERTIFICATE-----"
    _, _, chain = credentials.development_pem().partition(marker)
    other_key, _, _ = credentials.development_pem().partition(marker)
    (tmp_path / "cert.pem").write_bytes(marker + chain)
    (tmp_path / "key.pem").write_bytes(other_key)
    settings = Settings(
        consent_service_home=tmp_path,
        label_cert=tmp_path / "cert.pem",
        label_key=tmp_path / "key.pem",
    )
    with pytest.raises(credentials.LabelCredentialsError, match="not the key"):
        credentials.load(settings)


def test_the_label_names_the_status_url_of_the_digest():
    assert json.loads(json.dumps(_label().consent))["status_url"] == (
        f"https://consent.example/api/v1/decisions/{DIGEST}/status"
    )
