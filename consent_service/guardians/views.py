"""Guardian pages: add a child under 14 and switch the people's pages between "me" and a child.

The selection is kept and checked by `consent_service.web.acting_subject`; a child's erasure is
one of the people's rights pages (`rights/views.py`)."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as web_session
from flask_babel import gettext as _
from flask_login import current_user, login_required

from consent_service import db
from consent_service.accounts import service as accounts
from consent_service.errors import DomainError, NotFound
from consent_service.guardians import service
from consent_service.guardians.forms import ActAsForm, ChildForm
from consent_service.runtime import services
from consent_service.web import SESSION_KEY, safe_next

bp = Blueprint("guardians", __name__)


@bp.app_context_processor
def _selector():
    def guardian_selector() -> dict:
        """What the dashboard's "me / child" selector shows; empty for an account without
        children (the selector is then not drawn)."""
        if not current_user.is_authenticated:
            return {}
        session = db.session()
        children = service.children_of(session, current_user)
        return {
            "children": children,
            "selected": web_session.get(SESSION_KEY),
            "form": ActAsForm(formdata=None),
        }

    return {"guardian_selector": guardian_selector}


@bp.route("/children", methods=["GET", "POST"])
@login_required
def children():
    session = db.session()
    form = ChildForm()
    if form.validate_on_submit():
        try:
            child = service.add_child(
                session,
                services().audit_key,
                current_user,
                form.display_name.data or "",
                form.date_of_birth.data,
                form.relationship.data or "",
                bool(form.declaration.data),
            )
        except DomainError as exc:
            flash(exc.localized(), "error")
        else:
            web_session[SESSION_KEY] = child.id
            flash(
                _(
                    "%(name)s added. You are now managing their face and consent.",
                    name=child.display_name,
                )
            )
            return redirect(url_for("rights.dashboard"))
    status = 400 if request.method == "POST" else 200
    return render_template(
        "guardians/children.html",
        form=form,
        children=service.children_of(session, current_user),
        relationships=service.RELATIONSHIPS,
        age_limit=service.CHILD_AGE_LIMIT,
    ), status


@bp.route("/act-as", methods=["POST"])
@login_required
def act_as():
    form = ActAsForm()
    if not form.validate_on_submit():
        flash(_("The form expired; please try again."), "error")
        return redirect(url_for("rights.dashboard"))
    choice = form.subject.data or "me"
    if choice == "me":
        web_session.pop(SESSION_KEY, None)
    else:
        if not choice.isdigit():
            abort(404)
        try:
            accounts.acting_subject(db.session(), current_user, int(choice))
        except NotFound:
            abort(404)
        web_session[SESSION_KEY] = int(choice)
    # Back to the page the selector was on (same-site paths only), else the dashboard.
    return redirect(safe_next(request.form.get("next")))
