"""The answer to a consent request: approve (with its own unticked box) or decline."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField
from wtforms.validators import DataRequired


class ApproveForm(FlaskForm):
    agree = BooleanField(
        _l("I have read the notice and give my separate consent to exactly this request."),
        validators=[DataRequired(_l("Tick the box to give your consent."))],
    )


class DeclineForm(FlaskForm):
    """Carries only the CSRF token: declining is one click."""
