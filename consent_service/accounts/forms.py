"""Sign-up and sign-in forms (Flask-WTF, so every POST carries a CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length


class SignUpForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=320)])
    display_name = StringField(_l("Your name"), validators=[Length(max=200)])
    password = PasswordField(
        _l("Password (at least 10 characters)"),
        validators=[DataRequired(), Length(min=10, max=1000)],
    )


class SignInForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=320)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1000)])


class DeleteAccountForm(FlaskForm):
    password = PasswordField(
        _l("Your password, to confirm"), validators=[DataRequired(), Length(max=1000)]
    )


class EmailForm(FlaskForm):
    """Ask for a password-reset link."""

    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=320)])


class NewPasswordForm(FlaskForm):
    password = PasswordField(
        _l("New password (at least 10 characters)"),
        validators=[DataRequired(), Length(min=10, max=1000)],
    )


class ChangePasswordForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=1000)])
    password = PasswordField(
        _l("New password (at least 10 characters)"),
        validators=[DataRequired(), Length(min=10, max=1000)],
    )


class CodeForm(FlaskForm):
    code = StringField(
        _l("Code from your app (or a recovery code)"),
        validators=[DataRequired(), Length(max=32)],
    )


class PasswordConfirmForm(FlaskForm):
    """An action that weakens the account (two-factor sign-in off) asks for the password."""

    password = PasswordField(
        _l("Your password, to confirm"), validators=[DataRequired(), Length(max=1000)]
    )


class ConfirmForm(FlaskForm):
    """A button only (send the link again, accept, turn off): the CSRF token is the content."""


class NoticeDigestForm(FlaskForm):
    """One button: switch the daily digest mail of attempt notices to the value in `on`
    ("1" or "0")."""

    on = HiddenField()


class DigestOffForm(FlaskForm):
    """The unsubscribe page's one button. No CSRF token: the signed link is what authorises it,
    and a mail client's one-click POST (RFC 8058) carries none."""

    class Meta:
        csrf = False
