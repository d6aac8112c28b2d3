"""Flask extensions, created unbound here and attached to an app in `create_app`."""

from __future__ import annotations

from flask_login import LoginManager
from flask_wtf import CSRFProtect

login_manager = LoginManager()
login_manager.session_protection = "strong"
login_manager.login_view = "accounts.login"

csrf = CSRFProtect()
