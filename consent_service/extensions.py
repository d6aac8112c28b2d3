"""Flask extensions, created unbound here and attached to an app in `create_app`."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_bootstrap import Bootstrap5
from flask_login import LoginManager
from flask_wtf import CSRFProtect

login_manager = LoginManager()
login_manager.session_protection = "strong"
login_manager.login_view = "accounts.login"
login_manager.login_message = _l("Please sign in to see this page.")
# Flask-Login flashes localize_callback(login_message): str() renders the lazy message in the
# language of the request (a lazy string itself cannot be stored in the session).
login_manager.localize_callback = str

csrf = CSRFProtect()
# Bootstrap 5's CSS and JS, served by the app itself from the installed package
# (BOOTSTRAP_SERVE_LOCAL in create_app): no CDN, so the CSP stays 'self'.
bootstrap = Bootstrap5()
