"""The grant form: its own page, an unticked consent box, one grant per scope."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from consent_service.vocabulary import Operation, Role

OPERATION_LABELS = {
    Operation.FACE_SWAP: "Face swap: put my face into other images or videos",
    Operation.FACE_REENACTMENT: "Face reenactment: animate my face, lip-sync, change expression",
    Operation.FACE_ATTRIBUTE_EDIT: "Face attribute edit: change age, hair, make-up…",
    Operation.FACE_GENERATION: "Face generation: new images in my likeness",
}


class MultiCheckbox(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class GrantForm(FlaskForm):
    operations = MultiCheckbox(
        "Edit types",
        choices=[SelectChoice(o.value, label) for o, label in OPERATION_LABELS.items()],
        validators=[DataRequired("Choose at least one edit type.")],
    )
    roles = MultiCheckbox(
        "My role",
        choices=[
            SelectChoice(Role.SOURCE.value, "Source: my likeness is taken and put elsewhere"),
            SelectChoice(Role.TARGET.value, "Target: content I appear in is edited"),
        ],
        validators=[DataRequired("Choose at least one role.")],
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
    valid_until = DateField("Until (leave empty for no end date)", validators=[Optional()])
    agree = BooleanField(
        "I have read the notice above and give my separate consent to this processing of my face.",
        validators=[DataRequired("Tick the box to give consent.")],
    )


class RevokeForm(FlaskForm):
    """Carries only the CSRF token: revoking is one click."""
