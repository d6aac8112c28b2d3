"""The person's side of consent requests: the inbox, one request, approve or decline. Thin:
every action is a service call. A link from a mail is remembered in this browser's session,
so the person can sign up, enroll and come back to it.

A guardian answers for the subject selected on the page (`acting_subject`: their own, or a
child's): the face check then uses the child's templates and the evidence names the guardian."""

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
from flask import (
    session as web_session,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required

from consent_service import db
from consent_service.accounts import step_up as step_ups
from consent_service.accounts.models import Subject, User
from consent_service.biometrics.service import template_count
from consent_service.consent import service as consent
from consent_service.consent.notice import (
    NOTICE_VERSION,
    notice,
    notice_language,
    spoken_statement,
)
from consent_service.consent_requests import service
from consent_service.consent_requests import step_up as answer_step_up
from consent_service.consent_requests.forms import AnswerForm, ApproveForm, DeclineForm
from consent_service.consent_requests.models import ConsentRequest
from consent_service.errors import DomainError
from consent_service.guardians import service as guardians
from consent_service.i18n import current_language
from consent_service.rows import row_id
from consent_service.runtime import services
from consent_service.vocabulary import Modality, Operation
from consent_service.web import acting_subject, guardian_evidence

bp = Blueprint("consent_requests", __name__)
LINKS_KEY = "consent_request_links"  # request id → link secret, in the signed session cookie


def _links() -> dict[str, str]:
    return dict(web_session.get(LINKS_KEY, {}))


def _remember_link(request_id: str, secret: str) -> None:
    links = _links()
    links[request_id] = secret
    web_session[LINKS_KEY] = dict(list(links.items())[-20:])


def _account(session) -> tuple[User, Subject, list[Subject]]:
    """The signed-in account, the subject it acts for (404 for a forged or stale selection)
    and every subject it may act for (its own first)."""
    user = session.merge(current_user._get_current_object())
    return user, acting_subject(session), guardians.managed_subjects(session, user)


def _load(session, request_id: str) -> tuple[ConsentRequest, User, Subject, list[Subject]]:
    req = session.get(ConsentRequest, request_id) if len(request_id) <= 32 else None
    user, subject, managed = _account(session)
    if req is None or not service.may_open(
        req, user, {row_id(s) for s in managed}, _links().get(request_id)
    ):
        abort(404)
    return req, user, subject, managed


def _shown_for(form: AnswerForm, subject: Subject, managed: list[Subject]) -> bool:
    """Whether the answer was posted from a page shown for `subject`. False for a page shown
    for another of the account's subjects (switched in another tab since); any other value
    is a tampered form: 404, as for another family's child everywhere else."""
    posted = (form.subject.data or "").strip()
    if not posted or posted == str(subject.id):
        return True
    if posted in {str(s.id) for s in managed}:
        return False
    abort(404)


def _switched_since() -> None:
    flash(
        _(
            "You switched to someone else since this page was opened. Check whom you are "
            "answering for, then answer again."
        ),
        "error",
    )


@bp.route("/requests")
@login_required
def inbox():
    session = db.session()
    user, subject, managed = _account(session)
    rows = service.inbox(session, user, subject, list(_links()))
    return render_template(
        "consent_requests/inbox.html",
        requests=[service.request_shown(session, r) for r in rows],
        child=subject if subject.id != managed[0].id else None,
    )


@bp.route("/requests/<request_id>")
def show(request_id: str):
    secret = request.args.get("k")
    if secret:
        _remember_link(request_id, secret[:100])
    if not current_user.is_authenticated:
        return render_template("consent_requests/signin.html", request_id=request_id)
    session = db.session()
    req, _user, subject, managed = _load(session, request_id)
    row = service.request_shown(session, req)
    elsewhere = service.named_elsewhere(req, subject, managed)
    answer = {"subject": subject.id}
    assert subject.id is not None  # the acting subject is a stored row
    shown = notice_language(current_language())
    return render_template(
        "consent_requests/request.html",
        req=row,
        notice=notice(row.modality, services().settings.controller_name_in(shown), shown),
        notice_version=NOTICE_VERSION,
        approve_form=ApproveForm(formdata=None, data=answer),
        decline_form=DeclineForm(formdata=None, data=answer),
        templates=template_count(session, row_id(subject), row.modality),
        # A guardian acting for a child answers for the child; the page says so.
        child=subject if subject.id != managed[0].id else None,
        # The request is about the account's other subject: select it first.
        elsewhere=elsewhere,
        elsewhere_is_me=elsewhere is not None and elsewhere.id == managed[0].id,
    )


@bp.route("/requests/<request_id>/approve", methods=["POST"])
@login_required
def approve(request_id: str):
    session = db.session()
    req, user, subject, managed = _load(session, request_id)
    form = ApproveForm()
    if not _shown_for(form, subject, managed):
        _switched_since()
        return redirect(url_for("consent_requests.show", request_id=request_id))
    if not form.validate_on_submit():
        flash(_("Tick the box to give your consent (or the form expired)."), "error")
        return redirect(url_for("consent_requests.show", request_id=request_id))
    svc = services()
    try:
        # Approving proves the person: a short live check of the account's own enrolled face
        # (voice for a voice request) first; the worker then approves (step_up.py), checking
        # the person against the request as before. Declining needs no check.
        service.check_answerable(
            session,
            svc.envelope,
            req,
            user,
            subject,
            service.Tolerances(svc.settings.face_tolerance, svc.settings.voice_tolerance),
        )
        evidence = consent.Evidence(
            actor=f"user:{user.id}",
            identity_method="live-step-up",
            language=notice_language(current_language()),  # the notice shown
            ip=request.remote_addr,
            user_agent=request.user_agent.string,
            # A guardian answering for a child is named, as on the grant form.
            guardian=guardian_evidence(session, subject),
        )
        provider = service.request_shown(session, req).provider
        operation = Operation(req.operation)
        action = step_ups.begin(
            session,
            user_id=row_id(user),
            subject_id=row_id(managed[0]),
            kind=answer_step_up.KIND,
            modality=Modality(req.modality or Modality.FACE.value),
            payload=answer_step_up.payload(
                req,
                subject,
                evidence,
                _("Approve the request of %(provider)s.", provider=provider),
            ),
            return_to=url_for("consent_requests.show", request_id=request_id),
            ttl_seconds=svc.settings.step_up_ttl,
            statement=spoken_statement([operation], operation.modality, [provider]),
        )
    except DomainError as exc:
        flash(exc.localized(), "error")
        return redirect(url_for("consent_requests.show", request_id=request_id))
    return redirect(url_for("live_enrollment.step_up_page", step_up_id=action.id))


@bp.route("/requests/<request_id>/decline", methods=["POST"])
@login_required
def decline(request_id: str):
    session = db.session()
    req, user, subject, managed = _load(session, request_id)
    form = DeclineForm()
    if not _shown_for(form, subject, managed):
        _switched_since()
        return redirect(url_for("consent_requests.show", request_id=request_id))
    if not form.validate_on_submit():
        flash(_("The form expired; please try again."), "error")
        return redirect(url_for("consent_requests.show", request_id=request_id))
    try:
        with db.savepoint(session):  # a refused answer redirects: keep none of it
            service.decline(
                session,
                services().audit_key,
                req,
                user,
                f"user:{user.id}",
                subject,
                guardian_evidence(session, subject),
            )
    except DomainError as exc:
        flash(exc.localized(), "error")
        return redirect(url_for("consent_requests.show", request_id=request_id))
    flash(_("Declined. Nothing was granted; the provider has been told."))
    return redirect(url_for("consent_requests.show", request_id=request_id))
