"""The add-a-child form (with the guardian's unticked declaration) and the subject selector."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, HiddenField, RadioField, SelectChoice, StringField
from wtforms.validators import DataRequired, Length

from consent_service.guardians.service import DECLARATION, RELATIONSHIPS
from consent_service.i18n import labels


class ChildForm(FlaskForm):
    display_name = StringField(_l("The child's name"), validators=[DataRequired(), Length(max=200)])
    date_of_birth = DateField(_l("Date of birth"), validators=[DataRequired()])
    relationship = RadioField(
        _l("You are the child's"),
        choices=[SelectChoice(k, labels.RELATIONSHIPS.get(k, k)) for k in RELATIONSHIPS],
        validators=[DataRequired()],
    )
    # Never pre-ticked: the service refuses a child without the declaration.
    declaration = BooleanField(_l(DECLARATION))


class ActAsForm(FlaskForm):
    subject = HiddenField()  # "me" or a child's subject id
