"""The provider API's contract: its OpenAPI 3.1 document (built from the same pydantic models
that validate requests and responses), the docs page, problem+json errors and rate limits."""

from __future__ import annotations

from flask import Flask

from consent_service.api_contract import ratelimit
from consent_service.api_contract.views import bp
from consent_service.settings import Settings


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions["api_rate_limiter"] = ratelimit.from_settings(settings)
    app.extensions["signin_throttle"] = ratelimit.SignInThrottle.from_settings(settings)
    app.extensions["mail_throttle"] = ratelimit.MailThrottle.from_settings(settings)
    app.after_request(ratelimit.add_headers)
    app.register_blueprint(bp)
