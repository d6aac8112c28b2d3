"""The registry of documented API operations and the OpenAPI 3.1 document built from it.

Documenting an operation is one decorator under the route, next to the view:

    @bp.get("/jobs/<job_id>")
    @api_operation("Read a job", responses={200: JobPublic}, errors=(404,), scope=Scope.JOBS_READ)
    @require_provider
    def get_job(job_id): ...

(Under the route decorator: Flask registers the function the decorators below it return.)

Path, method and path parameters come from Flask's routing; request and response schemas from
the pydantic models the view validates with; 401, 403 and 429 are added to operations that need
an API key, 413, 415 and 422 to operations with a body or an Idempotency-Key, 400 to multipart
ones (a form that cannot be read); the RateLimit fields to every answer of an operation counted
against a limit, and `Link` to a list's.

A view reads its body with `request_body(Model)`, which reads it as the media type declared
here (a body of another type is a 415 saying which one the operation takes, with its fields),
and a list answers a `Page` after a `PageQuery` (see `pagination`).

The scope is declared here and only here: `web.require_provider` reads it from this spec to
refuse a key without it (403), and the document states it. An operation that needs a key must
name its scope (`api_operation` refuses to decorate it otherwise). OpenAPI 3.1 lets a security
requirement of any scheme list the "role names" it needs (3.0 allowed that only for OAuth2), so
each operation's `security` names its scope: `[{"apiKey": ["jobs:read"]}, ...]`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

from flask import Flask, current_app, request
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from consent_service.api_contract import idempotency
from consent_service.api_contract.schemas import Page, PageQuery, Problem
from consent_service.errors import UnsupportedMediaType
from consent_service.vocabulary import Scope

API_TITLE = "Consent Service provider API"
API_VERSION = "1.0.0"
SECURITY_SCHEME = "apiKey"
HEADER_SCHEME = "apiKeyHeader"  # the same key in `X-API-Key`, for clients that cannot set Bearer
MULTIPART = "multipart/form-data"
JSON = "application/json"
_RULE_ARG = re.compile(r"<(?:([^:<>]+):)?([^<>]+)>")


@dataclass(frozen=True)
class ApiOperation:
    summary: str
    responses: dict[int, type[BaseModel] | None]
    body: type[BaseModel] | None = None
    media_type: str = "application/json"
    errors: tuple[int, ...] = ()
    authenticated: bool = True
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    query: type[BaseModel] | None = None
    scope: Scope | None = None  # what the key must be allowed (None only when public)
    files: tuple[str, ...] = ()  # media types of a success answer that is a file, not JSON

    def error_statuses(self, method: str) -> list[int]:
        statuses = set(self.errors)
        if self.authenticated:
            statuses |= {401, 403, 429}
        if self.body is not None:
            statuses |= {413, 415, 422}
        if self.media_type == MULTIPART:
            statuses.add(400)  # a form that cannot be read (errors_http.UnreadableForm)
        if self.query is not None:
            statuses.add(422)
        if method == "post":
            statuses.add(422)  # a malformed Idempotency-Key
        return sorted(statuses - set(self.responses))

    @property
    def rate_limited(self) -> bool:
        """Counted against a limit: every operation behind a key, and the public ones that
        declare a 429 (counted per client address)."""
        return self.authenticated or 429 in self.errors

    @property
    def paginated(self) -> bool:
        return any(m is not None and issubclass(m, Page) for m in self.responses.values())


def api_operation(
    summary: str,
    *,
    responses: dict[int, type[BaseModel] | None],
    body: type[BaseModel] | None = None,
    media_type: str = "application/json",
    errors: tuple[int, ...] = (),
    authenticated: bool = True,
    description: str = "",
    tags: tuple[str, ...] = (),
    query: type[BaseModel] | None = None,
    scope: Scope | None = None,
    files: tuple[str, ...] = (),
):
    """Put a view in the OpenAPI document (decorate the view, under its route decorator).

    `responses` maps each success status to its body model (None: no body); `body` and `query`
    are the models the view validates its JSON or form body and its query string with;
    `files`, the media types of a success answer that is a file (its `responses` entry None);
    `errors` lists the problem statuses the view itself raises (e.g. 404); `scope` is what a
    key must be allowed to call it (required unless `authenticated=False`)."""
    if authenticated and scope is None:
        raise ValueError(f"The API operation {summary!r} needs a key: name its scope.")
    if not authenticated and scope is not None:
        raise ValueError(f"The API operation {summary!r} is public: it has no scope.")
    if media_type not in (JSON, MULTIPART):
        raise ValueError(f"The API operation {summary!r}: bodies are {JSON} or {MULTIPART}.")
    spec = ApiOperation(
        summary,
        responses,
        body,
        media_type,
        errors,
        authenticated,
        description,
        tuple(tags),
        query,
        scope,
        tuple(files),
    )
    if spec.paginated != (query is not None and issubclass(query, PageQuery)):
        raise ValueError(
            f"The API operation {summary!r}: a list answers a Page and takes a PageQuery "
            "(limit and cursor), one with the other."
        )

    def mark(view):
        view.api_operation = spec
        return view

    return mark


def current_operation() -> ApiOperation | None:
    """The `api_operation` of the view serving this request, if it has one."""
    spec = getattr(current_app.view_functions.get(request.endpoint or ""), "api_operation", None)
    return spec if isinstance(spec, ApiOperation) else None


M = TypeVar("M", bound=BaseModel)


def request_body(model: type[M]) -> M:
    """The request's body validated by `model`, read as the media type the operation declares
    (a multipart model reads the form with its `from_request(form, files)`). A body of another
    type is a 415 naming the type the operation takes and its fields; an invalid one a 422."""
    spec = current_operation()
    if spec is None or spec.body is not model:
        raise RuntimeError(f"{request.endpoint} reads a {model.__name__} it does not declare")
    if spec.media_type == MULTIPART:
        if request.mimetype != MULTIPART:
            raise _unsupported(spec, model)
        return model.from_request(request.form, request.files)  # type: ignore[attr-defined]
    if not request.is_json:
        raise _unsupported(spec, model)
    return model.model_validate(request.get_json(silent=True))


def _unsupported(spec: ApiOperation, model: type[BaseModel]) -> UnsupportedMediaType:
    if spec.media_type == MULTIPART:
        takes = "a multipart/form-data form (files as fields named by their role)"
    else:
        takes = "a JSON object (application/json)"
    return UnsupportedMediaType(
        "This operation takes %(takes)s with the fields %(fields)s; the request sent %(sent)s.",
        accept=spec.media_type,
        post=request.method == "POST",
        takes=takes,
        fields=", ".join(model.model_fields),
        sent=request.mimetype or "no Content-Type",
    )


def documented_routes(app: Flask):
    """(Flask rule, method, spec) of every documented route, in a stable order."""
    found = []
    for rule in app.url_map.iter_rules():
        spec = getattr(app.view_functions.get(rule.endpoint), "api_operation", None)
        if spec is None:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule, method.lower(), spec))
    return sorted(found, key=lambda item: (item[0].rule, item[1]))


def _path(rule) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for converter, name in _RULE_ARG.findall(rule.rule):
        schema = {"type": "integer"} if converter == "int" else {"type": "string"}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _RULE_ARG.sub(lambda m: "{" + m.group(2) + "}", rule.rule), params


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            **({"description": prop["description"]} if "description" in prop else {}),
            "schema": {k: v for k, v in prop.items() if k not in ("title", "description")},
        }
        for name, prop in schema.get("properties", {}).items()
    ]


# draft-ietf-httpapi-ratelimit-headers-06's fields, on every answer to a counted request. Not
# `required`: a 401 is answered before the key is counted, and an unreachable store of counts
# lets requests through uncounted.
RATE_LIMIT_HEADERS: dict[str, dict[str, Any]] = {
    "RateLimit-Limit": {
        "description": "Requests allowed in the window (`API_RATE_LIMIT`).",
        "schema": {"type": "integer", "minimum": 1},
    },
    "RateLimit-Remaining": {
        "description": "Requests left in the current window.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Reset": {
        "description": "Seconds until the window ends and the quota is whole again.",
        "schema": {"type": "integer", "minimum": 1},
    },
    "RateLimit-Policy": {
        "description": "The quota and its window in seconds: `120;w=60`.",
        "schema": {"type": "string"},
    },
}
LINK_HEADER = {
    "Link": {
        "description": 'The next page, `<url>; rel="next"`, while one follows.',
        "schema": {"type": "string"},
    }
}


def _problem_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": HTTPStatus(status).phrase,
        "content": {"application/problem+json": {"schema": {"$ref": _ref("Problem")}}},
    }
    if status == 429:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds until the API key may be used again.",
                "schema": {"type": "integer", "minimum": 1},
                "required": True,
            }
        }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}
    if status == 415:
        response["description"] = (
            "Unsupported Media Type: the body is not of the type the operation takes (named in "
            "the problem's `accepted_media_type`, with its fields in `detail`)."
        )
    if status == 403:
        response["description"] = (
            "Forbidden: the API key lacks the scope this operation needs (named in the "
            "problem's `required_scope`)."
        )
    return response


def _ref(name: str) -> str:
    return f"#/components/schemas/{name}"


def openapi_document(app: Flask) -> dict[str, Any]:
    routes = documented_routes(app)
    models: set[tuple[type[BaseModel], JsonSchemaMode]] = {(Problem, "serialization")}
    for _rule, _method, spec in routes:
        models |= {(m, "serialization") for m in spec.responses.values() if m is not None}
        if spec.body is not None:
            models.add((spec.body, "validation"))
    refs, top = models_json_schema(
        sorted(models, key=lambda m: (m[0].__name__, m[1])), ref_template=_ref("{model}")
    )
    paths: dict[str, dict[str, Any]] = {}
    for rule, method, spec in routes:
        path, params = _path(rule)
        operation: dict[str, Any] = {
            "operationId": f"{method}_{rule.endpoint.replace('.', '_')}",
            "summary": spec.summary,
            "responses": {},
        }
        if spec.description:
            operation["description"] = spec.description
        if spec.tags:
            operation["tags"] = list(spec.tags)
        if method == "post":
            params = [
                *params,
                {
                    "name": idempotency.HEADER,
                    "in": "header",
                    "required": False,
                    "description": "Repeat a POST safely: the same key answers with the "
                    "resource the first request created (200) instead of creating another.",
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": idempotency.MAX_LENGTH,
                        "pattern": "^[!-~]+$",
                    },
                },
            ]
        if spec.query is not None:
            params = [*params, *_query_parameters(spec.query)]
        if params:
            operation["parameters"] = params
        if spec.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {spec.media_type: {"schema": refs[(spec.body, "validation")]}},
            }
        operation["security"] = (
            [{SECURITY_SCHEME: [spec.scope.value]}, {HEADER_SCHEME: [spec.scope.value]}]
            if spec.scope is not None
            else []
        )
        for status, model in sorted(spec.responses.items()):
            described: dict[str, Any] = {"description": HTTPStatus(status).phrase}
            if model is not None:
                described["content"] = {
                    "application/json": {"schema": refs[(model, "serialization")]}
                }
            elif spec.files:
                binary = {"schema": {"type": "string", "format": "binary"}}
                described["content"] = {media_type: binary for media_type in spec.files}
            if spec.paginated:
                described["headers"] = dict(LINK_HEADER)
            operation["responses"][str(status)] = described
        for status in spec.error_statuses(method):
            operation["responses"][str(status)] = _problem_response(status)
        if spec.rate_limited:
            for status, answer in operation["responses"].items():
                if status != "401":  # answered before the key is counted
                    answer["headers"] = {**answer.get("headers", {}), **RATE_LIMIT_HEADERS}
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": API_TITLE,
            "version": API_VERSION,
            "description": "Gate every planned face or voice edit before it runs. Errors are "
            "RFC 9457 problem details (application/problem+json).",
        },
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key: `Authorization: Bearer cs_...`. Each key is "
                    "allowed some scopes (" + ", ".join(f"`{s.value}`" for s in Scope) + "); "
                    "each operation's security requirement names the one it needs, and a key "
                    "without it is answered 403. An expired key is answered 401.",
                },
                HEADER_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "The same API key in a header of its own.",
                },
            },
        },
    }
