"""The public complaint form and the operators' actions on a complaint (CSRF on every POST)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length

from consent_service.i18n import LANGUAGE_NAMES
from consent_service.i18n.labels import COMPLAINT_KINDS, COMPLAINT_OUTCOMES
from consent_service.vocabulary import ComplaintKind, ComplaintOutcome


class ComplaintForm(FlaskForm):
    # Lengths and the address are checked once, by the service (`file_complaint`).
    kind = RadioField(
        _l("What is it about?"),
        choices=[SelectChoice(k.value, COMPLAINT_KINDS[k]) for k in ComplaintKind],
        default=ComplaintKind.EDITED_WITHOUT_CONSENT.value,
        validators=[DataRequired(_l("Choose what the complaint is about."))],
    )
    description = TextAreaField(_l("What happened?"))
    location = TextAreaField(_l("Where did you see it? (a web address, an app, a place)"))
    evidence = FileField(_l("Evidence (optional): a photo, video, recording or PDF"))
    named = TextAreaField(
        _l(
            "If you have it (optional): the decision token, the label's code (ReservedCode1) "
            "or the job id that came with the content"
        )
    )
    name = StringField(_l("Your name (optional)"), validators=[Length(max=200)])
    email = StringField(_l("Your e-mail address (we write to you there)"))
    language = SelectField(
        _l("Answer me in"),
        choices=[SelectChoice(tag, name) for tag, name in LANGUAGE_NAMES.items()],
    )


class AcknowledgeForm(FlaskForm):
    """Carries only the CSRF token."""


class AskProviderForm(FlaskForm):
    question = TextAreaField(
        _l("Question for the provider (sent with the complaint, not the complainant's address)"),
        validators=[DataRequired(), Length(max=5000)],
    )
    named = StringField(
        _l("Job id or decision token (when the complaint named none)"),
        validators=[Length(max=8000)],
    )


class ResolveForm(FlaskForm):
    outcome = RadioField(
        _l("Outcome"),
        choices=[SelectChoice(o.value, COMPLAINT_OUTCOMES[o]) for o in ComplaintOutcome],
        validators=[DataRequired()],
    )
    message = TextAreaField(
        _l("Message to the complainant (mailed in their language as written)"),
        validators=[DataRequired(), Length(max=5000)],
    )
    confirm = BooleanField(
        _l("The complainant is told now; a resolved complaint cannot be reopened."),
        validators=[DataRequired()],
    )
