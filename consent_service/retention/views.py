"""The public retention schedule (/retention), generated from the settings in force."""

from __future__ import annotations

from flask import Blueprint, render_template

from consent_service.retention.schedule import days_text, schedule
from consent_service.runtime import services

bp = Blueprint("retention", __name__)


@bp.get("/retention")
def page():
    return render_template(
        "retention/index.html", classes=schedule(services().settings), days_text=days_text
    )
