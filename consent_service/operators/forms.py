"""Operator console forms: every action is a POST with a CSRF token."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    RadioField,
    SelectChoice,
    StringField,
    TextAreaField,
)
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
        _l("Outcome"),
        choices=[
            SelectChoice(
                Resolution.AWARD_CLAIMANT.value,
                _l("Award to the new account (the old one's removed)"),
            ),
            SelectChoice(
                Resolution.KEEP_HOLDER.value,
                _l("Keep with the existing account (new ones destroyed)"),
            ),
            SelectChoice(
                Resolution.REJECT_BOTH.value, _l("Reject both (every template of it destroyed)")
            ),
        ],
        validators=[DataRequired()],
    )
    note = TextAreaField(_l("Note (kept in the audit log)"), validators=[Length(max=2000)])


class ApproveRecordingForm(FlaskForm):
    note = TextAreaField(_l("Note (kept in the audit log)"), validators=[Length(max=2000)])
    document_seen = BooleanField(_l("An identity document was seen and matches the face"))


class RejectRecordingForm(FlaskForm):
    reason = TextAreaField(
        _l("Why (the person is told)"), validators=[DataRequired(), Length(max=2000)]
    )


class PurposeForm(FlaskForm):
    """Add a purpose to the vocabulary (or bring a retired one back with new labels)."""

    code = StringField(
        _l("Code (lower case, e.g. satire)"),
        validators=[DataRequired(), Length(min=2, max=64)],
    )
    label_en = StringField(_l("English label"), validators=[DataRequired(), Length(max=200)])
    label_zh = StringField(_l("Chinese label"), validators=[DataRequired(), Length(max=200)])


class RetirePurposeForm(FlaskForm):
    """Retire a purpose: refused for new jobs and grants; grants that name it keep it."""
