"""The answer to a consent request: approve (with its own unticked box) or decline."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField
from wtforms.validators import DataRequired


class AnswerForm(FlaskForm):
    # The subject the page was shown for (the account's own or a child's): an answer posted
    # after switching to someone else in another tab is refused rather than given for them.
    subject = HiddenField()


class ApproveForm(AnswerForm):
    agree = BooleanField(
        _l("I have read the notice and give my separate consent to exactly this request."),
        validators=[DataRequired(_l("Tick the box to give your consent."))],
    )


class DeclineForm(AnswerForm):
    """Carries only the CSRF token and the subject: declining is one click."""
