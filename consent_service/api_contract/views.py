"""The API's description: the OpenAPI document as JSON and as a page people read."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, render_template

from consent_service.api_contract.examples import (
    BASE_VARIABLE,
    KEY_VARIABLE,
    examples,
    inline_markdown,
)
from consent_service.api_contract.operations import openapi_document

bp = Blueprint("api_contract", __name__, url_prefix="/api/v1")
bp.add_app_template_filter(inline_markdown, "inline_markdown")


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(openapi_document(current_app))


@bp.get("/docs")
def docs():
    document = openapi_document(current_app)
    return render_template(
        "api_contract/docs.html",
        doc=document,
        base_variable=BASE_VARIABLE,
        key_variable=KEY_VARIABLE,
        **_outline(document),
    )


def _type_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_type_name(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    if schema.get("type") == "array":
        return f"list of {_type_name(schema.get('items', {}))}"
    if schema.get("format") == "binary":
        return "file"
    return str(schema.get("format") or schema.get("type") or "any")


def _fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "type": _type_name(prop),
            "required": name in required,
            "description": prop.get("description", ""),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _header_names(headers: dict[str, Any]) -> list[str]:
    """An answer's header names, the four RateLimit fields (on nearly every answer) as one."""
    names = [name for name in headers if not name.startswith("RateLimit-")]
    return names + (["RateLimit-*"] if len(names) < len(headers) else [])


def _outline(document: dict[str, Any]) -> dict[str, Any]:
    """The document arranged for reading: operations in order, then each schema's fields."""
    operations = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            body = next(iter(op.get("requestBody", {}).get("content", {}).items()), None)
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "op": op,
                    "examples": examples(document, method.upper(), path, op),
                    "secured": bool(op.get("security")),
                    # The scope its security requirement names (every scheme names the same).
                    "scope": next(iter(op["security"][0].values()), [None])[0]
                    if op.get("security")
                    else None,
                    "body": {"media_type": body[0], "type": _type_name(body[1]["schema"])}
                    if body
                    else None,
                    "responses": [
                        {
                            "status": status,
                            "description": r["description"],
                            "types": [
                                f"{media}: {_type_name(c['schema'])}"
                                for media, c in r.get("content", {}).items()
                            ],
                            "headers": _header_names(r.get("headers", {})),
                        }
                        for status, r in op["responses"].items()
                    ],
                }
            )
    schemas = [
        {
            "name": name,
            "description": s.get("description", ""),
            "fields": _fields(s),
            "values": s.get("enum", []),
        }
        for name, s in sorted(document["components"]["schemas"].items())
    ]
    return {"operations": operations, "schemas": schemas}
