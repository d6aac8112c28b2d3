"""The portal's forms: every POST is a Flask-WTF form (CSRF token); the job filter is a GET
form without one (it changes nothing)."""

from __future__ import annotations

from flask_babel import gettext, ngettext
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    URLField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from consent_service.consent.forms import AtLeastOne, MultiCheckbox
from consent_service.i18n.labels import ASSURANCES, DECISIONS, JOB_STATUSES, OPERATIONS
from consent_service.vocabulary import (
    Assurance,
    Operation,
    Scope,
    WebhookEvent,
)

# What each scope lets a key do, for the people choosing them.
SCOPE_HELP = {
    Scope.JOBS_WRITE: _l("submit jobs and set the minimum assurance"),
    Scope.JOBS_READ: _l("read jobs, their decisions and the minimum assurance"),
    Scope.CONSENT_REQUESTS: _l("ask people for consent and read those requests"),
    Scope.WEBHOOKS_ADMIN: _l("configure the webhook and read its deliveries"),
    Scope.LABELS: _l("embed and look up AIGC labels"),
}
# Rotation overlaps offered, in hours (the setting's default is added when it is another).
OVERLAP_HOURS = (0, 1, 24, 72, 168)


def _scope_label(scope: Scope) -> LazyString:
    """The scope's code (what the API and its document say) and, in the page's language, what
    it lets a key do."""
    return LazyString(lambda: f"{scope.value}: {SCOPE_HELP[scope]}")


class NewKeyForm(FlaskForm):
    name = StringField(
        _l("Name (what uses the key, e.g. “render farm eu-1”)"),
        validators=[DataRequired(), Length(max=200)],
    )
    scopes = MultiCheckbox(
        _l("Scopes (what the key may do)"),
        choices=[SelectChoice(s.value, _scope_label(s)) for s in Scope],
        validators=[AtLeastOne(_l("Choose at least one scope."))],
        # A job integration's pair; admins tick more when the key does more.
        default=[Scope.JOBS_WRITE.value, Scope.JOBS_READ.value],
    )
    expires_in_days = IntegerField(
        _l("Expires after (days; leave empty for never)"),
        validators=[Optional(), NumberRange(min=1, max=3650)],
    )

    def chosen_scopes(self) -> list[Scope]:
        return [Scope(v) for v in self.scopes.data or []]


class RotateKeyForm(FlaskForm):
    """The successor gets the old key's name and scopes; the old key works on for `overlap`."""

    # The choices are set by `offer`; a value not among them is refused by the field itself.
    overlap = SelectField(_l("Keep the old key working for"), coerce=int)

    def offer(self, default_hours: int) -> RotateKeyForm:
        hours = sorted({*OVERLAP_HOURS, default_hours})
        self.overlap.choices = [SelectChoice(h, _overlap_label(h)) for h in hours]
        if self.overlap.data is None:
            self.overlap.data = default_hours
        return self


def _overlap_label(hours: int) -> str:
    if hours == 0:
        return gettext("no time: it stops now")
    if hours % 24 == 0:
        return ngettext("%(num)d day", "%(num)d days", hours // 24)
    return ngettext("%(num)d hour", "%(num)d hours", hours)


class RevokeKeyForm(FlaskForm):
    """Only the CSRF token: the key is named by the URL."""


class WebhookForm(FlaskForm):
    url = URLField(
        _l("URL the events are POSTed to"), validators=[DataRequired(), Length(max=2000)]
    )
    # Event names are codes the receiver's code reads: shown as they are sent.
    events = MultiCheckbox(
        _l("Events"),
        choices=[SelectChoice(e.value, e.value) for e in WebhookEvent],
        validators=[AtLeastOne(_l("Choose at least one event."))],
    )
    active = BooleanField(_l("Active (send events)"))
    rotate_secret = BooleanField(_l("Issue a new signing secret (the old one stops working)"))


def _choices(labels) -> list[SelectChoice]:
    """ "Any", then each code with its words in the page's language (the code is the value)."""
    return [SelectChoice("", _l("any")), *(SelectChoice(c.value, w) for c, w in labels.items())]


class JobFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search form

    status = SelectField(_l("Status"), choices=_choices(JOB_STATUSES), validators=[Optional()])
    decision = SelectField(_l("Decision"), choices=_choices(DECISIONS), validators=[Optional()])
    operation = SelectField(_l("Operation"), choices=_choices(OPERATIONS), validators=[Optional()])
    created_from = DateField(_l("From (UTC day)"), validators=[Optional()])
    created_to = DateField(_l("To (UTC day, included)"), validators=[Optional()])


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
