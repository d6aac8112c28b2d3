"""The portal's forms: every POST is a Flask-WTF form (CSRF token); the job filter is a GET
form without one (it changes nothing)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, SelectChoice, SelectField, StringField, URLField
from wtforms.validators import DataRequired, Length, Optional

from consent_service.consent.forms import AtLeastOne, MultiCheckbox
from consent_service.i18n.labels import ASSURANCES, OPERATIONS
from consent_service.vocabulary import Assurance, DecisionKind, JobStatus, Operation, WebhookEvent


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


class AssuranceForm(FlaskForm):
    """One choice per operation (a field named after it, added below): the least assurance its
    jobs need."""

    def minimums(self) -> dict[Operation, Assurance | None]:
        """The whole set chosen: None for "any level"."""
        return {
            op: Assurance(self[op.value].data) if self[op.value].data else None for op in Operation
        }


for _operation in Operation:
    setattr(
        AssuranceForm,
        _operation.value,
        SelectField(
            OPERATIONS[_operation],
            choices=[
                SelectChoice("", _l("any level")),
                *(SelectChoice(a.value, ASSURANCES[a]) for a in Assurance),
            ],
            validators=[Optional()],
        ),
    )
