"""One decorator puts an operation in the OpenAPI document, with every status it can answer."""

from __future__ import annotations

import pytest
from flask import Blueprint, Flask
from pydantic import BaseModel

from consent_service.api_contract import schemas
from consent_service.api_contract.operations import api_operation, openapi_document
from consent_service.vocabulary import Scope


class Thing(BaseModel):
    name: str


class Page(BaseModel):
    limit: int = 10


def _app() -> Flask:
    bp = Blueprint("things", __name__, url_prefix="/api/v1")

    @bp.post("/things/<int:group>")
    @api_operation(
        "Make a thing", responses={201: Thing}, body=Thing, errors=(404,), scope=Scope.JOBS_WRITE
    )
    def make(group: int): ...

    @bp.get("/things")
    @api_operation("List things", responses={200: Thing}, query=Page, authenticated=False)
    def things(): ...

    @bp.get("/undocumented")
    def hidden(): ...

    app = Flask(__name__)
    app.register_blueprint(bp)
    return app


def test_a_decorated_view_is_documented_with_its_statuses():
    doc = openapi_document(_app())
    assert set(doc["paths"]) == {"/api/v1/things/{group}", "/api/v1/things"}
    make = doc["paths"]["/api/v1/things/{group}"]["post"]
    assert set(make["responses"]) == {"201", "401", "403", "404", "413", "415", "422", "429"}
    params = {p["name"]: p for p in make["parameters"]}
    assert params["group"]["schema"] == {"type": "integer"} and params["group"]["in"] == "path"
    assert params["Idempotency-Key"]["in"] == "header"
    assert make["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Thing"
    }
    assert make["security"] == [{"apiKey": ["jobs:write"]}, {"apiKeyHeader": ["jobs:write"]}]
    listing = doc["paths"]["/api/v1/things"]["get"]
    assert listing["security"] == [] and set(listing["responses"]) == {"200", "422"}
    assert listing["parameters"][0]["name"] == "limit" and listing["parameters"][0]["in"] == "query"
    assert doc["components"]["schemas"]["Thing"]["required"] == ["name"]


def test_an_operation_behind_a_key_must_name_its_scope():
    with pytest.raises(ValueError, match="name its scope"):
        api_operation("Anything", responses={200: Thing})
    with pytest.raises(ValueError, match="public"):
        api_operation("Open", responses={200: Thing}, authenticated=False, scope=Scope.LABELS)


class Things(schemas.Page):
    things: list[Thing]


def test_a_list_answers_a_page_and_takes_a_page_query_one_with_the_other():
    with pytest.raises(ValueError, match="PageQuery"):
        api_operation("List", responses={200: Things}, scope=Scope.JOBS_READ)
    with pytest.raises(ValueError, match="PageQuery"):
        api_operation(
            "List", responses={200: Thing}, query=schemas.PageQuery, scope=Scope.JOBS_READ
        )
    api_operation("List", responses={200: Things}, query=schemas.PageQuery, scope=Scope.JOBS_READ)


def test_counted_answers_declare_the_ratelimit_fields_and_a_list_its_link():
    bp = Blueprint("listed", __name__, url_prefix="/api/v1")

    @bp.get("/pages")
    @api_operation(
        "List things", responses={200: Things}, query=schemas.PageQuery, scope=Scope.JOBS_READ
    )
    def things(): ...

    app = _app()
    app.register_blueprint(bp)
    doc = openapi_document(app)
    listing = doc["paths"]["/api/v1/pages"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"limit", "cursor"}
    for status, answer in listing["responses"].items():
        names = set(answer.get("headers", {}))
        ratelimit = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
        assert ratelimit <= names if status != "401" else not ratelimit & names, status
    assert "Link" in listing["responses"]["200"]["headers"]
    assert "next_cursor" in doc["components"]["schemas"]["Things"]["properties"]
    assert (
        "RateLimit-Limit"
        in doc["paths"]["/api/v1/things/{group}"]["post"]["responses"]["201"]["headers"]
    )
    # A public operation that is not counted (no 429) says nothing about limits.
    public = doc["paths"]["/api/v1/things"]["get"]["responses"]
    assert not any("headers" in answer for answer in public.values())
