"""A curl command and a Python (requests) snippet for each operation of the OpenAPI document,
made from the document itself (its path, parameters, request body and security), so the API page
shows an example for every operation and none drifts from what the service takes; and the
document's descriptions (small Markdown: `code`, **bold**, [links](url)) as safe HTML."""

from __future__ import annotations

import json
import re
from typing import Any

from markupsafe import Markup, escape

# The shell and Python names the examples read the service's address and key from.
BASE_VARIABLE = "CONSENT_SERVICE_URL"
KEY_VARIABLE = "CONSENT_SERVICE_API_KEY"
_PATH_PARAMETER = re.compile(r"\{(\w+)\}")


def examples(document: dict[str, Any], method: str, path: str, op: dict[str, Any]) -> dict:
    """{"curl": ..., "python": ...} for one operation."""
    body = _body(document, op)
    return {
        "curl": _curl(method, path, op, body),
        "python": _python(method, path, op, body),
    }


def inline_markdown(text: str | None) -> Markup:
    """The document's descriptions as HTML: escaped first, then `code`, **bold** and
    [text](http… or /…) links; nothing else is interpreted."""
    html = str(escape(text or ""))
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
    html = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html)
    html = re.sub(r"\[([^\]]+)\]\(((?:https?://|/)[^)\s\"]+)\)", r'<a href="\2">\1</a>', html)
    # Built from escaped text by the three patterns above, whose groups cannot hold a quote.
    return Markup(html)  # noqa: S704  # nosec B704


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _body(document: dict[str, Any], op: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(media type, {field: example value, or a file name for a file field}) of the request
    body: its required fields and its files."""
    content = op.get("requestBody", {}).get("content", {})
    if not content:
        return None
    media_type, spec = next(iter(content.items()))
    schema = _resolve(document, spec["schema"])
    required = set(schema.get("required", []))
    fields: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        prop = _resolve(document, prop)
        is_file = prop.get("format") == "binary" or prop.get("items", {}).get("format") == "binary"
        if is_file:
            fields[name] = _File(f"{name}.jpg")
        elif name in required:
            fields[name] = _example(document, prop)
    return media_type, fields


class _File(str):
    """A file field's example: the name of a file to send."""


def _example(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    schema = _resolve(document, schema)
    if "example" in schema:
        return schema["example"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "anyOf" in schema:
        return _example(document, next(s for s in schema["anyOf"] if s.get("type") != "null"))
    kind = schema.get("type")
    if kind == "array":
        return [_example(document, schema.get("items", {}))]
    if kind == "object":
        required = schema.get("required", [])
        props = schema.get("properties", {})
        return {name: _example(document, props[name]) for name in required if name in props}
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if schema.get("format") == "uri":
        return "https://example.org/consent-events"
    if schema.get("format") == "email":
        return "person@example.org"
    return "…"


def _path_and_query(path: str, op: dict[str, Any], style: str) -> str:
    """The path with its parameters as variables (shell: ${JOB_ID}; Python: {job_id}) and the
    required query parameters."""
    if style == "shell":
        filled = _PATH_PARAMETER.sub(lambda m: "${" + m.group(1).upper() + "}", path)
    else:
        filled = path
    query = [
        f"{p['name']}={_example({}, p.get('schema', {}))}"
        for p in op.get("parameters", [])
        if p["in"] == "query" and p.get("required")
    ]
    return filled + ("?" + "&".join(query) if query else "")


def _curl(method: str, path: str, op: dict[str, Any], body) -> str:
    lines = [f'curl -X {method} "${BASE_VARIABLE}{_path_and_query(path, op, "shell")}"']
    if op.get("security"):
        lines.append(f'-H "Authorization: Bearer ${KEY_VARIABLE}"')
    if body:
        media_type, fields = body
        if media_type == "multipart/form-data":
            for name, value in fields.items():
                lines.append(
                    f"-F {name}=@{value}" if isinstance(value, _File) else f"-F {name}={value}"
                )
        else:
            lines.append(f'-H "Content-Type: {media_type}"')
            lines.append(f"-d '{json.dumps(fields, ensure_ascii=False)}'")
    return " \\\n  ".join(lines)


def _python(method: str, path: str, op: dict[str, Any], body) -> str:
    url = _path_and_query(path, op, "python")
    arguments = [f'f"{{BASE}}{url}"' if "{" in url else f'BASE + "{url}"']
    if op.get("security"):
        arguments.append('headers={"Authorization": f"Bearer {API_KEY}"}')
    if body:
        media_type, fields = body
        if media_type == "multipart/form-data":
            data = {k: v for k, v in fields.items() if not isinstance(v, _File)}
            files = [
                f'("{k}", ("{v}", Path("{v}").read_bytes()))'
                for k, v in fields.items()
                if isinstance(v, _File)
            ]
            arguments.append(f"data={data!r}")
            if files:
                arguments.append(f"files=[{', '.join(files)}]")
        else:
            arguments.append(f"json={fields!r}")
    arguments.append("timeout=30")
    parameters = sorted(set(_PATH_PARAMETER.findall(path)))
    uses_files = bool(body) and any(isinstance(v, _File) for v in body[1].values())
    lines = [
        "import os",
        *(["from pathlib import Path"] if uses_files else []),
        "",
        "import requests",
        "",
        f'BASE = os.environ.get("{BASE_VARIABLE}", "http://127.0.0.1:5000")',
    ]
    if op.get("security"):
        lines.append(f'API_KEY = os.environ["{KEY_VARIABLE}"]')
    lines += [f'{name} = "…"  # the {name.replace("_", " ")}' for name in parameters]
    call = f"answer = requests.{method.lower()}(\n    " + ",\n    ".join(arguments) + ",\n)"
    return "\n".join([*lines, call, "answer.raise_for_status()", _python_result(op)])


def _python_result(op: dict[str, Any]) -> str:
    """Print a JSON answer; save any other (a labelled file) to a file."""
    ok: dict[str, Any] = next((r for s, r in op["responses"].items() if s.startswith("2")), {})
    types = list(ok.get("content", {}))
    if not types or any(t.endswith("json") for t in types):
        return "print(answer.json())" if types else "print(answer.status_code)"
    return 'open("answer.bin", "wb").write(answer.content)'
