"""The public check page's form: one file (CSRF like every POST of the site)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired


class CheckForm(FlaskForm):
    file = FileField(
        _l("A photo or video (JPEG, PNG or MP4)"),
        validators=[FileRequired(_l("Choose a file to check."))],
    )
