"""Keyset pagination for every list operation: a page of `limit` items after an opaque cursor
(the sort key of the page's last item), the next cursor in the body and in a `Link` header.

A list reads `PageQuery` from the query string, asks its service for `limit + 1` items after
`decode(query.cursor)`, and answers with `page_response`. Keyset rather than offsets, so an
item written while a client pages (deliveries are written all the time) neither repeats nor
hides another one."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from flask import Response, jsonify, request, url_for

from consent_service.api_contract.schemas import Page, PageQuery
from consent_service.errors import InvalidRequest
from consent_service.timeutil import as_utc

T = TypeVar("T")

# A sort key: the newest-first lists order by (created_at, id), both descending.
Position = tuple[datetime, str]


def query() -> PageQuery:
    """The request's `limit` and `cursor` (422 when out of range)."""
    return PageQuery.model_validate(request.args.to_dict())


def encode(position: Position) -> str:
    created_at, item_id = position
    raw = json.dumps([as_utc(created_at).isoformat(), item_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str | None) -> Position | None:
    """The position a cursor this API gave stands for; anything else is a 422."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, item_id = json.loads(raw)
        if not isinstance(created_at, str) or not isinstance(item_id, str):
            raise ValueError(cursor)
        return as_utc(datetime.fromisoformat(created_at)), item_id
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidRequest(
            "`cursor` is not one this API gave: pass the `next_cursor` of the page before, "
            "or leave it out for the first page."
        ) from exc


def split(rows: Sequence[T], limit: int) -> tuple[list[T], bool]:
    """The page (the first `limit` of `limit + 1` rows asked for) and whether more follow."""
    return list(rows[:limit]), len(rows) > limit


def page_response(body: Page) -> Response:
    """The page as JSON, with `Link: <same list, next cursor>; rel="next"` when one follows."""
    response = jsonify(body.model_dump(mode="json"))
    if body.next_cursor is not None:
        values: dict[str, Any] = {
            **(request.view_args or {}),
            **request.args.to_dict(),
            "cursor": body.next_cursor,
        }
        target = url_for(request.endpoint or "", **values)
        response.headers["Link"] = f'<{target}>; rel="next"'
    return response
