"""The portal's forms: every POST is a Flask-WTF form (CSRF token); the job filter is a GET
form without one (it changes nothing)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, SelectChoice, SelectField, StringField, URLField
from wtforms.validators import DataRequired, Length, Optional

from consent_service.consent.forms import AtLeastOne, MultiCheckbox
from consent_service.vocabulary import DecisionKind, JobStatus, Operation, WebhookEvent


class NewKeyForm(FlaskForm):
    name = StringField(
        "Name (what uses the key, e.g. “render farm eu-1”)",
        validators=[DataRequired(), Length(max=200)],
    )


class RevokeKeyForm(FlaskForm):
    """Only the CSRF token: the key is named by the URL."""


class WebhookForm(FlaskForm):
    url = URLField("URL the events are POSTed to", validators=[DataRequired(), Length(max=2000)])
    events = MultiCheckbox(
        "Events",
        choices=[SelectChoice(e.value, e.value) for e in WebhookEvent],
        validators=[AtLeastOne("Choose at least one event.")],
    )
    active = BooleanField("Active (send events)")
    rotate_secret = BooleanField("Issue a new signing secret (the old one stops working)")


def _choices(values) -> list[SelectChoice]:
    return [SelectChoice("", "any"), *(SelectChoice(v.value, v.value) for v in values)]


class JobFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search form

    status = SelectField("Status", choices=_choices(JobStatus), validators=[Optional()])
    decision = SelectField("Decision", choices=_choices(DecisionKind), validators=[Optional()])
    operation = SelectField("Operation", choices=_choices(Operation), validators=[Optional()])
    created_from = DateField("From (UTC day)", validators=[Optional()])
    created_to = DateField("To (UTC day, included)", validators=[Optional()])
