"""Every API answer is a model that refuses fields it does not declare: what the service builds
is exactly what the OpenAPI document describes (`additionalProperties: false`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from consent_service.api_contract.operations import documented_routes, openapi_document
from consent_service.api_contract.schemas import Problem
from consent_service.consent_requests.schemas import ConsentRequestPublic
from consent_service.webhooks.schemas import DeliveryPublic, WebhookPublic


def _models(model: type[BaseModel]) -> set[type[BaseModel]]:
    """The model and every model its fields hold (lists and optionals included)."""
    found = {model}
    for field in model.model_fields.values():
        stack = [field.annotation]
        while stack:
            kind = stack.pop()
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                found |= _models(kind)
            stack.extend(getattr(kind, "__args__", ()))
    return found


@pytest.fixture(scope="module")
def api(make_api_app):
    return make_api_app()


def test_every_documented_answer_refuses_undeclared_fields(api):
    answers: set[type[BaseModel]] = set()
    for _rule, _method, spec in documented_routes(api.app):
        for model in spec.responses.values():
            if model is not None:
                answers |= _models(model)
    assert {WebhookPublic, DeliveryPublic, ConsentRequestPublic} <= answers
    # Problem details are open by RFC 9457 (extension members); every other answer is closed.
    assert [
        m.__name__ for m in answers - {Problem} if m.model_config.get("extra") != "forbid"
    ] == []
    schemas = openapi_document(api.app)["components"]["schemas"]
    for model in answers - {Problem}:
        assert schemas[model.__name__]["additionalProperties"] is False, model.__name__


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (
            WebhookPublic,
            {"url": "https://example.org/hook", "events": ["job.decided"], "active": True},
        ),
        (
            DeliveryPublic,
            {
                "id": "d1",
                "event": "job.decided",
                "status": "pending",
                "attempts": 0,
                "last_status_code": None,
                "last_error": None,
                "next_attempt_at": None,
                "delivered_at": None,
                "job_id": None,
            },
        ),
        (
            ConsentRequestPublic,
            {
                "id": "r1",
                "status": "pending",
                "job_id": None,
                "email": "someone@example.org",
                "operation": "face_swap",
                "roles": ["source"],
                "purpose": "",
                "message": "",
                "valid_until": None,
                "expires_at": datetime(2030, 1, 1, tzinfo=UTC),
                "answered_at": None,
                "grant_id": None,
            },
        ),
    ],
)
def test_an_undeclared_field_is_refused(model, fields):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    stamps = {"created_at": now} | ({"updated_at": now} if model is WebhookPublic else {})
    model(**fields, **stamps)  # the declared fields make a valid answer
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model(**fields, **stamps, face_ciphertext="never sent")
