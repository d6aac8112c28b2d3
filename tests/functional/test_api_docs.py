"""The API page people read (/api/v1/docs): the document's descriptions rendered (no raw
Markdown), and for every operation a curl command and a Python snippet made from the document;
the Python snippets of the operations that need no ids are run, as printed, against a live
server and answer."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterator
from contextlib import redirect_stdout

import pytest
from PIL import Image

from consent_service.api_contract.examples import BASE_VARIABLE, KEY_VARIABLE, inline_markdown
from tests.support import serve

SECTION = re.compile(r'<section class="api-operation" id="[^"]*">(.*?)</section>', re.S)


@pytest.fixture(scope="module")
def api(make_api_app):
    return make_api_app()


@pytest.fixture(scope="module")
def url(api) -> Iterator[str]:
    with serve(api.app) as base:
        yield base


def _examples(api) -> list[tuple[str, str, str]]:
    """(heading, curl, python) of each operation on the page."""
    page = api.client().get("/api/v1/docs").get_data(as_text=True)
    found = []
    for section in SECTION.findall(page):
        heading = html.unescape(
            re.sub(r"<[^>]+>", "", re.search(r"<h4>(.*?)</h4>", section).group(1))
        )
        curl = re.search(r'<pre class="example-curl"[^>]*><code>(.*?)</code>', section, re.S)
        python = re.search(r'<pre class="example-python"[^>]*><code>(.*?)</code>', section, re.S)
        assert curl and python, heading
        found.append((heading, html.unescape(curl.group(1)), html.unescape(python.group(1))))
    return found


def test_descriptions_are_rendered_not_shown_as_markdown(api):
    page = api.client().get("/api/v1/docs").get_data(as_text=True)
    text = re.sub(r"<pre\b.*?</pre>", "", page, flags=re.S)
    assert "`" not in html.unescape(re.sub(r"<[^>]+>", "", text))
    assert "<code>Idempotency-Key</code>" in page or "<code>" in page
    assert str(inline_markdown("a `b` **c** [d](/e) <script>")) == (
        'a <code>b</code> <strong>c</strong> <a href="/e">d</a> &lt;script&gt;'
    )
    assert "href" not in str(inline_markdown("[x](javascript:alert(1))"))


def test_every_operation_has_a_curl_and_a_python_example(api):
    document = api.client().get("/api/v1/openapi.json").get_json()
    count = sum(len(methods) for methods in document["paths"].values())
    examples = _examples(api)
    assert len(examples) == count
    by_heading = {h.split(" — ")[0]: (c, p) for h, c, p in examples}
    curl, python = by_heading["POST /api/v1/jobs"]
    assert f"${BASE_VARIABLE}/api/v1/jobs" in curl and f"${KEY_VARIABLE}" in curl
    assert "-F operation=face_swap" in curl and "-F source=@source.jpg" in curl
    assert 'files=[("source", ("source.jpg", Path("source.jpg").read_bytes()))' in python
    curl, python = by_heading["GET /api/v1/jobs/{job_id}"]
    assert "/api/v1/jobs/${JOB_ID}" in curl and 'f"{BASE}/api/v1/jobs/{job_id}"' in python
    curl, _ = by_heading["GET /.well-known/jwks.json"]
    assert "Authorization" not in curl  # public operations take no key


def test_the_python_examples_run_as_printed(api, url, tmp_path, monkeypatch):
    monkeypatch.setenv(BASE_VARIABLE, url)
    monkeypatch.setenv(KEY_VARIABLE, api.key)
    monkeypatch.chdir(tmp_path)
    for name in ("source.jpg", "target.jpg"):
        Image.new("RGB", (64, 64), "white").save(tmp_path / name)
    # The operations that answer on a new instance without an id from an earlier answer.
    runnable = {
        "GET /.well-known/jwks.json",
        "GET /api/v1/assurance-minimums",
        "POST /api/v1/jobs",
        "GET /api/v1/webhook/deliveries",
    }
    ran = []
    for heading, _, python in _examples(api):
        method_path = heading.split(" — ")[0]
        if method_path not in runnable:
            continue
        out = io.StringIO()
        with redirect_stdout(out):
            exec(compile(python, method_path, "exec"), {})  # noqa: S102 - the page's own example
        assert out.getvalue().strip(), method_path
        ran.append(method_path)
    assert sorted(ran) == sorted(runnable)
