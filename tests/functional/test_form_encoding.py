"""Forms that are not UTF-8 text, to the API's multipart and to the pages: a clear 400 that says
why, never a 500 and never a form silently read as empty (werkzeug's own behaviour). A NUL in a
field or a file name too: PostgreSQL refuses to store one, so on it that used to be a 500 after
the view's work. Run on SQLite and on PostgreSQL."""

from __future__ import annotations

import io

import pytest
from PIL import Image

BOUNDARY = b"fuzzboundary"


def multipart(*parts: bytes) -> bytes:
    body = b"".join(b"--" + BOUNDARY + b"\r\n" + part + b"\r\n" for part in parts)
    return body + b"--" + BOUNDARY + b"--\r\n"


def field(name: bytes, value: bytes) -> bytes:
    return b'Content-Disposition: form-data; name="' + name + b'"\r\n\r\n' + value


def upload(name: bytes, filename: bytes, data: bytes) -> bytes:
    return (
        b'Content-Disposition: form-data; name="' + name + b'"; filename="' + filename + b'"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + data
    )


@pytest.fixture(scope="module")
def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 120, 90)).save(out, "JPEG")
    return out.getvalue()


def post_job(api, body: bytes):
    return api.client().post(
        "/api/v1/jobs",
        data=body,
        content_type=f"multipart/form-data; boundary={BOUNDARY.decode()}",
        headers=api.auth(),
    )


def assert_unreadable(response) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert "must be UTF-8" in response.get_json()["detail"]


@pytest.mark.parametrize(
    "parts",
    [
        pytest.param(
            lambda p: [field(b"operation", b"face_swap\xff"), upload(b"source", b"a.jpg", p)],
            id="value",
        ),
        pytest.param(
            lambda p: [field(b"operation", b"face_swap"), upload(b"source", b"\xe9t\xe9.jpg", p)],
            id="file-name-latin1",
        ),
        pytest.param(
            lambda p: [field(b"oper\xffation", b"face_swap"), upload(b"source", b"a.jpg", p)],
            id="field-name",
        ),
        pytest.param(
            lambda p: [field(b"operation", b"face_swap"), upload(b"source", b"a\x00.jpg", p)],
            id="nul-in-file-name",
        ),
        pytest.param(
            lambda p: [field(b"operation", b"face\x00swap"), upload(b"source", b"a.jpg", p)],
            id="nul-in-value",
        ),
    ],
)
def test_api_multipart_that_is_not_utf8_text_is_a_clear_400(api, photo, parts):
    assert_unreadable(post_job(api, multipart(*parts(photo))))


def test_api_multipart_part_without_a_name_is_no_field(api, photo):
    """A part whose Content-Disposition names no field (werkzeug keys it None; it was a 500,
    found by the API's fuzzer) is ignored, like any field the API does not read."""
    nameless = b"Content-Disposition: form-data\r\n\r\nx"
    response = post_job(
        api,
        multipart(nameless, field(b"operation", b"face_swap"), upload(b"source", b"a.jpg", photo)),
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    alone = post_job(api, multipart(nameless))
    assert alone.status_code == 422, alone.get_data(as_text=True)  # no operation, no media


def test_api_multipart_in_utf8_still_works_and_keeps_the_name(api, photo):
    name = "照片 é.jpg".encode()
    response = post_job(
        api, multipart(field(b"operation", b"face_swap"), upload(b"source", name, photo))
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["media"][0]["filename"] == "照片 é.jpg"


def test_a_page_form_that_is_not_utf8_is_a_400_page_saying_why(api):
    client = api.client()
    response = client.post(
        "/signup",
        data=b"email=a%40example.org&name=\xff\xfe",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "must be UTF-8 text" in page and "CSRF" not in page


def test_percent_escapes_that_are_not_utf8_stay_text_and_are_no_error(api):
    """`%FF` is kept as the text `%FF` (werkzeug): the form is read, so the usual checks answer."""
    response = api.client().post(
        "/signup", data=b"email=%FF%FE", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert "must be UTF-8 text" not in response.get_data(as_text=True)
