"""The ids a log line carries (`request_id`, `task_id`, `job_id`, ...): bound for the duration of
a request or a task, read by the log filter (`observability.logs`). Foundation: any layer binds."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

# One immutable mapping per context: binding copies it, so a thread or task never sees another's.
_ids: ContextVar[dict[str, str]] = ContextVar("consent_service_log_ids", default={})  # noqa: B039 - never mutated


def current() -> dict[str, str]:
    """The ids bound now (a copy)."""
    return dict(_ids.get())


def bind(**ids: str | None) -> Token[dict[str, str]]:
    """Add `ids` (None values are skipped) to the context until `unbind(token)`."""
    return _ids.set({**_ids.get(), **{k: v for k, v in ids.items() if v is not None}})


def unbind(token: Token[dict[str, str]]) -> None:
    _ids.reset(token)


@contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """`with bound(job_id=...)`: the lines logged inside carry the ids."""
    token = bind(**ids)
    try:
        yield
    finally:
        unbind(token)


class ContextFilter(logging.Filter):
    """Copies the bound ids onto each record (`record.request_id`, ...), for any formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _ids.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        record.log_ids = dict(_ids.get())
        return True
