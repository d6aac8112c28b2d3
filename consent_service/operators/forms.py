"""Operator console forms: every action is a POST with a CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, RadioField, SelectChoice, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length

from consent_service.operators.service import Resolution
from consent_service.vocabulary import ProviderStatus


class ProviderStatusForm(FlaskForm):
    status = HiddenField(
        validators=[
            DataRequired(),
            AnyOf([ProviderStatus.ACTIVE.value, ProviderStatus.SUSPENDED.value]),
        ]
    )


class ResolveDisputeForm(FlaskForm):
    resolution = RadioField(
        "Outcome",
        choices=[
            SelectChoice(
                Resolution.AWARD_CLAIMANT.value, "Award to the new account (the old one's removed)"
            ),
            SelectChoice(
                Resolution.KEEP_HOLDER.value, "Keep with the existing account (new ones destroyed)"
            ),
            SelectChoice(
                Resolution.REJECT_BOTH.value, "Reject both (every template of it destroyed)"
            ),
        ],
        validators=[DataRequired()],
    )
    note = TextAreaField("Note (kept in the audit log)", validators=[Length(max=2000)])


class ApproveRecordingForm(FlaskForm):
    note = TextAreaField("Note (kept in the audit log)", validators=[Length(max=2000)])
    document_seen = BooleanField("An identity document was seen and matches the face")


class RejectRecordingForm(FlaskForm):
    reason = TextAreaField(
        "Why (the person is told)", validators=[DataRequired(), Length(max=2000)]
    )
