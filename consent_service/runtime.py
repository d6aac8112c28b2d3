"""The running app's service container, for views and tasks (built by `create_app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from consent_service.services import Services


def services() -> Services:
    return current_app.extensions["consent_services"]
