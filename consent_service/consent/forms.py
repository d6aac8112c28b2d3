"""The grant form: its own page, an unticked consent box, one grant per scope."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, StopValidation, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from consent_service.i18n.labels import OPERATION_DESCRIPTIONS, ROLE_DESCRIPTIONS
from consent_service.vocabulary import Modality


class MultiCheckbox(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class AtLeastOne:
    """Like DataRequired, without its `required` flag: on a group of checkboxes that flag makes
    the browser demand that every box be ticked."""

    def __init__(self, message: str):
        self.message = message

    def __call__(self, form, field) -> None:
        if not field.data:
            raise StopValidation(self.message)


class GrantForm(FlaskForm):
    # Chosen by the link that opened the form (`?modality=voice`): it picks the notice shown.
    modality = HiddenField(default=Modality.FACE.value)
    operations = MultiCheckbox(
        _l("Edit types"),
        choices=[],  # the edit types of the chosen modality, set by the view
        validators=[AtLeastOne(_l("Choose at least one edit type."))],
    )
    roles = MultiCheckbox(
        _l("My role"),
        choices=[SelectChoice(r.value, label) for r, label in ROLE_DESCRIPTIONS.items()],
        validators=[AtLeastOne(_l("Choose at least one role."))],
    )
    provider_scope = RadioField(
        _l("Which providers"),
        choices=[
            SelectChoice("chosen", _l("Only the providers I choose below")),
            SelectChoice("all", _l("All providers")),
        ],
        default="chosen",
    )
    providers = MultiCheckbox(_l("Providers"), choices=[])
    purpose_scope = RadioField(
        _l("For which purposes"),
        choices=[
            SelectChoice("all", _l("Every purpose")),
            SelectChoice("chosen", _l("Only the purposes I choose below")),
        ],
        default="all",
    )
    purposes = MultiCheckbox(_l("Purposes"), choices=[])  # the vocabulary, set by the view
    purpose = TextAreaField(_l("Purpose (what you allow it for)"), validators=[Length(max=1000)])
    valid_from = DateField(_l("From (leave empty for today)"), validators=[Optional()])
    valid_until = DateField(_l("Until (leave empty for no end date)"), validators=[Optional()])
    # The notice version the page showed; the grant records it.
    notice_version = HiddenField()
    # The language of the notice the page showed (`en`, `zh-CN`); the grant records it.
    notice_language = HiddenField()
    agree = BooleanField(
        _l("I have read the notice above and give my separate consent to this processing."),
        validators=[DataRequired(_l("Tick the box to give consent."))],
    )

    def validate_purposes(self, field) -> None:
        if self.purpose_scope.data == "chosen" and not field.data:
            raise ValidationError(_l("Choose the purposes this grant is for, or every purpose."))

    def chosen_purposes(self) -> list[str]:
        """The purpose codes ticked; none when the grant is for every purpose."""
        return list(self.purposes.data or []) if self.purpose_scope.data == "chosen" else []


class RefusalForm(FlaskForm):
    """An explicit "no" to one provider, for the edits of one modality."""

    modality = HiddenField(default=Modality.FACE.value)
    provider = SelectField(
        _l("Provider you refuse"),
        choices=[],  # the active providers, set by the view
        validators=[DataRequired(_l("Choose the provider you refuse."))],
    )
    operations = MultiCheckbox(_l("Edit types (none ticked: every edit type)"), choices=[])


class RevokeForm(FlaskForm):
    """Carries only the CSRF token: revoking is one click."""


class ProtectOnlyForm(FlaskForm):
    """One button: switch protect-only mode to the value in `on` ("1" or "0")."""

    on = HiddenField()


class DestroyOnWithdrawalForm(FlaskForm):
    """One button: set the choice to destroy templates on the last withdrawal to `on`."""

    on = HiddenField()


def operation_choices(modality: Modality) -> list[SelectChoice]:
    return [
        SelectChoice(o.value, label)
        for o, label in OPERATION_DESCRIPTIONS.items()
        if o.modality is modality
    ]
