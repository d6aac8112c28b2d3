"""Labels end to end through the real app: a decided job's token, `consent-service label embed`
on a real photo, the file read back by stock c2pa-python and by `consent-service label read`
(which asks the running service over HTTP), the provider's label endpoint and the public check
page; then the person revokes the grant, and every reader says so."""

from __future__ import annotations

import hashlib
import io

import c2pa
import pytest
from click.testing import CliRunner
from PIL import Image
from urllib3 import encode_multipart_formdata

from consent_service import db
from consent_service.cli import main
from consent_service.cli_support import AppLoader
from consent_service.client import ApiError, ConsentClient
from consent_service.consent import service as consent
from consent_service.gate.models import Decision
from consent_service.labels.provenance import CONSENT_ASSERTION
from consent_service.providers.service import create_provider, issue_key
from consent_service.runtime import services
from consent_service.vocabulary import Scope
from tests.support import allow_job, csrf_token, serve


@pytest.fixture(scope="module")
def api(make_api_app):
    return make_api_app()


@pytest.fixture(scope="module")
def server(api):
    """The app served over HTTP, as `label read` reaches a service."""
    with serve(api.app) as base:
        yield base


def _decided_job(api) -> tuple[str, str, int, str]:
    """A job of provider A allowed by a grant: (job id, token, subject id, grant id)."""
    client = api.client()
    body, content_type = encode_multipart_formdata(
        [("operation", "face_swap"), ("source", ("a.jpg", b"not decoded here"))]
    )
    job_id = client.post(
        "/api/v1/jobs", data=body, content_type=content_type, headers=api.auth()
    ).get_json()["id"]
    subject_id, grant_id = allow_job(api.app, job_id)
    with api.app.app_context():
        token = db.session().get(Decision, job_id).token
    return job_id, token, subject_id, grant_id


def _cli(api, *args):
    return CliRunner().invoke(main, list(args), obj=AppLoader(lambda: api.app))


def _check_page(api, data: bytes, name: str):
    client = api.client()
    page = client.get("/labels/check")
    assert page.status_code == 200
    return client.post(
        "/labels/check",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "file": (io.BytesIO(data), name),
        },
        content_type="multipart/form-data",
    )


def test_a_labelled_photo_reads_valid_until_the_grant_is_revoked(api, server, photos, tmp_path):
    job_id, token, subject_id, grant_id = _decided_job(api)
    digest = hashlib.sha256(token.encode()).hexdigest()
    # The job's own label now names the token by its digest, as GB 45438's ReservedCode1.
    job = api.client().get(f"/api/v1/jobs/{job_id}", headers=api.auth()).get_json()
    assert job["label"]["AIGC"]["ReservedCode1"] == digest
    assert set(job["label"]["AIGC"]) == {
        "Label",
        "ContentProducer",
        "ProduceID",
        "ReservedCode1",
        "ContentPropagator",
        "PropagateID",
        "ReservedCode2",
    }

    out = tmp_path / "labelled.jpg"
    photo = str(photos["obama.jpg"])
    embedded = _cli(api, "label", "embed", photo, "--token", token, "-o", str(out))
    assert embedded.exit_code == 0, embedded.output
    assert digest in embedded.output

    # Stock c2pa-python, nothing of ours: the consent assertion, signature intact.
    with c2pa.Reader(str(out)) as reader:
        manifest = reader.get_active_manifest()
        assert reader.get_validation_state() == "Valid"
    consent_assertion = next(
        a["data"] for a in manifest["assertions"] if a["label"] == CONSENT_ASSERTION
    )
    assert consent_assertion["decision"] == "allow"
    assert consent_assertion["operation"] == "face_swap"
    assert consent_assertion["token_sha256"] == digest
    assert consent_assertion["status_url"].endswith(f"/api/v1/decisions/{digest}/status")

    read = _cli(api, "label", "read", str(out), "--service", server)
    assert read.exit_code == 0, read.output
    assert "status: valid" in read.output and '"ReservedCode1": "' + digest in read.output

    # The provider's endpoint labels the same way; a key without `labels` may not.
    data, content_type = encode_multipart_formdata(
        [("file", ("out.jpg", photos["obama2.jpg"].read_bytes()))]
    )
    answer = api.client().post(
        f"/api/v1/jobs/{job_id}/label", data=data, content_type=content_type, headers=api.auth()
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    assert answer.mimetype == "image/jpeg"
    via_api = tmp_path / "via-api.jpg"
    via_api.write_bytes(answer.get_data())
    assert "status: valid" in _cli(api, "label", "read", str(via_api), "--service", server).output
    assert (
        api.client()
        .post(
            f"/api/v1/jobs/{job_id}/label",
            data=data,
            content_type=content_type,
            headers=api.auth(api.other_key),
        )
        .status_code
        == 404
    )
    with api.app.app_context(), db.unit_of_work() as s:
        provider = create_provider(s, "Jobs Only")
        jobs_only = issue_key(s, provider, scopes=[Scope.JOBS_READ])
    refused = api.client().post(
        f"/api/v1/jobs/{job_id}/label",
        data=data,
        content_type=content_type,
        headers=api.auth(jobs_only),
    )
    assert refused.status_code == 403 and refused.get_json()["required_scope"] == "labels"

    # Anyone drops the file on the public page.
    page = _check_page(api, out.read_bytes(), "labelled.jpg")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-label="found" data-status="valid"' in html
    assert "Made under consent, and the consent still stands" in html
    unlabelled = _check_page(api, photos["biden.jpg"].read_bytes(), "biden.jpg")
    assert 'data-label="none"' in unlabelled.get_data(as_text=True)

    # The person revokes: every reader of the same file says so.
    with api.app.app_context(), db.unit_of_work() as s:
        consent.revoke(s, services().audit_key, subject_id, grant_id, consent.Evidence("t", "t"))
    read = _cli(api, "label", "read", str(out), "--service", server)
    assert read.exit_code == 3, read.output
    assert "status: consent_withdrawn since" in read.output
    local = _cli(api, "label", "read", str(out), "--local", "--json")
    assert '"status": "consent_withdrawn"' in local.output
    html = _check_page(api, out.read_bytes(), "labelled.jpg").get_data(as_text=True)
    assert 'data-status="consent_withdrawn"' in html and "consent withdrawn" in html
    # And no new label is written for it.
    again = _cli(api, "label", "embed", str(photos["obama.jpg"]), "--token", token, "-o", str(out))
    assert again.exit_code == 1 and "no longer stands (consent_withdrawn)" in again.output
    assert (
        api.client()
        .post(
            f"/api/v1/jobs/{job_id}/label", data=data, content_type=content_type, headers=api.auth()
        )
        .status_code
        == 409
    )


def test_the_python_client_labels_a_file(api, server, photos, tmp_path):
    job_id, token, *_ = _decided_job(api)
    client = ConsentClient(server, api.key)
    labelled = tmp_path / "client.png"
    picture = io.BytesIO()
    Image.open(photos["obama3.jpg"]).save(picture, "PNG")
    (tmp_path / "out.png").write_bytes(picture.getvalue())
    labelled.write_bytes(client.label(job_id, tmp_path / "out.png"))
    with c2pa.Reader(str(labelled)) as reader:
        assertions = {a["label"]: a["data"] for a in reader.get_active_manifest()["assertions"]}
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert assertions[CONSENT_ASSERTION]["token_sha256"] == digest
    with pytest.raises(ApiError) as refused:
        ConsentClient(server, api.other_key).label(job_id, tmp_path / "out.png")
    assert refused.value.status == 404


def test_a_forged_or_foreign_token_gets_no_label(api, photos, tmp_path):
    out = tmp_path / "x.jpg"
    photo = str(photos["obama.jpg"])
    forged = _cli(api, "label", "embed", photo, "--token", "a.b.c", "-o", str(out))
    assert forged.exit_code == 1 and not out.exists()


def test_the_openapi_document_states_the_label_operation(api):
    document = api.client().get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/api/v1/jobs/{job_id}/label"]["post"]
    assert operation["security"][0] == {"apiKey": ["labels"]}
    assert set(operation["responses"]["200"]["content"]) == {"image/jpeg", "image/png", "video/mp4"}
    assert {"404", "409", "403"} <= set(operation["responses"])


def test_the_check_page_speaks_chinese_and_refuses_other_files(api):
    client = api.client()
    zh = client.get("/labels/check", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "查验标识" in zh.get_data(as_text=True)
    refused = _check_page(api, b"%PDF-1.7 not a picture", "x.pdf")
    assert refused.status_code == 422
    assert "JPEG, PNG or MP4" in refused.get_data(as_text=True)


def test_without_a_usable_certificate_the_endpoint_answers_503(make_api_app, photos, tmp_path):
    broken = make_api_app(label_cert=tmp_path / "missing.pem", label_key=tmp_path / "missing.key")
    job_id, *_ = _decided_job(broken)
    data, content_type = encode_multipart_formdata(
        [("file", ("out.jpg", photos["obama.jpg"].read_bytes()))]
    )
    answer = broken.client().post(
        f"/api/v1/jobs/{job_id}/label", data=data, content_type=content_type, headers=broken.auth()
    )
    assert answer.status_code == 503
    assert "no label certificate" in answer.get_json()["detail"]
