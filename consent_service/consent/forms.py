"""The grant form: its own page, an unticked consent box, one grant per scope."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, StopValidation
from wtforms.widgets import CheckboxInput, ListWidget

from consent_service.vocabulary import Modality, Operation, Role

OPERATION_LABELS = {
    Operation.FACE_SWAP: "Face swap: put my face into other images or videos",
    Operation.FACE_REENACTMENT: "Face reenactment: animate my face, lip-sync, change expression",
    Operation.FACE_ATTRIBUTE_EDIT: "Face attribute edit: change age, hair, make-up…",
    Operation.FACE_GENERATION: "Face generation: new images in my likeness",
    Operation.VOICE_CLONING: "Voice cloning: synthesise speech in my voice",
    Operation.VOICE_CONVERSION: "Voice conversion: turn someone's speech into my voice",
    Operation.VOICE_EDITING: "Voice editing: edit a recording of me",
}


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
        "Edit types",
        choices=[],  # the edit types of the chosen modality, set by the view
        validators=[AtLeastOne("Choose at least one edit type.")],
    )
    roles = MultiCheckbox(
        "My role",
        choices=[
            SelectChoice(Role.SOURCE.value, "Source: my face or voice is taken and put elsewhere"),
            SelectChoice(Role.TARGET.value, "Target: content I appear in is edited"),
        ],
        validators=[AtLeastOne("Choose at least one role.")],
    )
    provider_scope = RadioField(
        "Which providers",
        choices=[
            SelectChoice("chosen", "Only the providers I choose below"),
            SelectChoice("all", "All providers"),
        ],
        default="chosen",
    )
    providers = MultiCheckbox("Providers", choices=[])
    purpose = TextAreaField("Purpose (what you allow it for)", validators=[Length(max=1000)])
    valid_from = DateField("From (leave empty for today)", validators=[Optional()])
    valid_until = DateField("Until (leave empty for no end date)", validators=[Optional()])
    # The notice version the page showed; the grant records it.
    notice_version = HiddenField()
    agree = BooleanField(
        "I have read the notice above and give my separate consent to this processing.",
        validators=[DataRequired("Tick the box to give consent.")],
    )


class RevokeForm(FlaskForm):
    """Carries only the CSRF token: revoking is one click."""


class ProtectOnlyForm(FlaskForm):
    """One button: switch protect-only mode to the value in `on` ("1" or "0")."""

    on = HiddenField()


def operation_choices(modality: Modality) -> list[SelectChoice]:
    return [
        SelectChoice(o.value, label)
        for o, label in OPERATION_LABELS.items()
        if o.modality is modality
    ]
