"""The web app factory: blueprints, the unit of work, Celery and the error pages wired once.

Also the context every worker task runs in."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, redirect, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

from consent_service import api_contract, db, errors_http, i18n
from consent_service.audit.views import bp as audit_bp
from consent_service.biometrics.live_views import bp as live_enrollment_bp
from consent_service.biometrics.views import bp as biometrics_bp
from consent_service.complaints.api import bp as complaints_api_bp
from consent_service.complaints.views import bp as complaints_bp
from consent_service.consent import step_up as grant_step_up  # noqa: F401  carries out grants after their live check
from consent_service.consent.api import bp as consent_api_bp
from consent_service.consent.views import bp as consent_bp
from consent_service.consent_requests import step_up as answer_step_up  # noqa: F401  approves requests after their live check
from consent_service.consent_requests.api import bp as consent_requests_api_bp
from consent_service.consent_requests.views import bp as consent_requests_bp
from consent_service.extensions import bootstrap, csrf, login_manager
from consent_service.gate import revocations  # noqa: F401  connects the gate to consent's grant_revoked
from consent_service.gate.api import bp as api_bp
from consent_service.guardians.views import bp as guardians_bp
from consent_service.labels.api import bp as labels_api_bp
from consent_service.labels.views import bp as labels_bp
from consent_service.observability import logs
from consent_service.observability.views import bp as observability_bp
from consent_service.operators.probes import bp as probes_bp
from consent_service.operators.views import bp as operators_bp
from consent_service.portal.views import bp as portal_bp
from consent_service.retention.views import bp as retention_bp
from consent_service.rights.views import bp as rights_bp
from consent_service.services import Services
from consent_service.settings import Settings
from consent_service.tasking import celery_init_app
from consent_service.tokens.views import bp as tokens_bp
from consent_service.web.language import bp as i18n_bp
from consent_service.web.signin import bp as accounts_bp
from consent_service.webhooks.views import bp as webhooks_bp

_HERE = Path(__file__).resolve().parent
# Installed wheels carry the templates inside the package; a source checkout keeps them at the top.
TEMPLATE_DIR = next(p for p in (_HERE / "templates", _HERE.parent / "templates") if p.is_dir())


def create_web_app(settings: Settings | None = None, **overrides) -> Flask:
    """The web process's app (granian, `consent-service serve`): it holds only the public
    decision and checkpoint keys, never a private one; signing is the workers'."""
    return create_app(settings, signing=False, **overrides)


def create_app(settings: Settings | None = None, *, signing: bool = True, **overrides) -> Flask:
    """Build the app: the context every worker task and CLI command runs in (`signing`: it may
    load the private signing keys), or the web's (`create_web_app`)."""
    settings = settings or Settings()
    logs.configure(settings)  # JSON lines in production, before anything logs
    settings.home.mkdir(parents=True, exist_ok=True)
    secrets = settings.resolved_secrets()
    # Named after the package, as before the factory had a module of its own (Celery takes it).
    app = Flask("consent_service", template_folder=str(TEMPLATE_DIR))
    app.config.update(
        SECRET_KEY=secrets.get("secret_key"),  # None in a gallery shard: nothing there signs
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.is_production,
        WTF_CSRF_TIME_LIMIT=None,
        BOOTSTRAP_SERVE_LOCAL=True,
    )
    app.config.update(overrides)
    # First: its id is bound before any other hook runs, and its answer hook runs last, so the
    # request line logs the status actually sent (after the unit of work's own answer).
    logs.init_app(app)
    if settings.proxy_hops:
        # The client's address, scheme and host as the proxies in front saw them: rate limits,
        # sign-in throttles and grant evidence name the person, not the proxy; Secure cookies
        # and external URLs follow the HTTPS the person used. Only the last `proxy_hops` entries
        # are believed: anything before them the client itself may have written.
        hops = settings.proxy_hops
        proxied = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
        app.wsgi_app = proxied  # type: ignore[method-assign]  # Flask's documented way to add middleware
    engine = db.make_engine(settings.sqlalchemy_url)
    app.extensions["consent_services"] = Services(
        settings=settings, secrets=secrets, engine=engine, signing=signing
    )
    db.init_app(app, engine)
    login_manager.init_app(app)
    csrf.init_app(app)
    bootstrap.init_app(app)
    i18n.init_app(app, settings.home)
    celery_init_app(app, settings)
    for bp in (accounts_bp, biometrics_bp, consent_bp, api_bp):
        app.register_blueprint(bp)
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(consent_requests_api_bp)
    app.register_blueprint(consent_requests_bp)
    app.register_blueprint(operators_bp)
    app.register_blueprint(probes_bp)
    app.register_blueprint(live_enrollment_bp)
    app.register_blueprint(i18n_bp)
    app.register_blueprint(portal_bp)  # staff pages: session + CSRF like the people's pages
    app.register_blueprint(guardians_bp)
    app.register_blueprint(rights_bp)
    app.register_blueprint(retention_bp)
    app.register_blueprint(complaints_bp)
    app.register_blueprint(complaints_api_bp)
    app.register_blueprint(labels_bp)  # the public check page: CSRF like every form
    app.register_blueprint(labels_api_bp)
    app.register_blueprint(consent_api_bp)
    csrf.exempt(api_bp)  # API clients authenticate with keys, not cookies
    csrf.exempt(webhooks_bp)
    csrf.exempt(consent_requests_api_bp)  # keys, not cookies, like the rest of the API
    csrf.exempt(complaints_api_bp)
    csrf.exempt(labels_api_bp)  # keys, not cookies
    app.register_blueprint(tokens_bp)
    csrf.exempt(tokens_bp)  # a JSON endpoint with no session behind it
    app.register_blueprint(audit_bp)
    csrf.exempt(audit_bp)  # public and read-only, like the JWKS
    app.register_blueprint(observability_bp)  # GET /metrics: a bearer token, no session
    csrf.exempt(observability_bp)
    errors_http.init_app(app)
    api_contract.init_app(app, settings)
    # Browsers ask for /favicon.ico whatever the page links: the one icon is the SVG.
    app.add_url_rule(
        "/favicon.ico", "favicon", lambda: redirect(url_for("static", filename="favicon.svg"))
    )
    return app
