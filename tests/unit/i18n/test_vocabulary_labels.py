"""The words shown for DESIGN.md's codes: every code has them in both languages, the `label`
filter renders them in the page's language, and anything it does not know passes through."""

from __future__ import annotations

import pytest
from babel.messages.pofile import read_po
from flask import render_template_string
from flask_babel import force_locale

from consent_service.complaints.service import Clock
from consent_service.i18n import TRANSLATIONS
from consent_service.i18n.labels import KINDS, LABELS, label
from consent_service.vocabulary import (
    DecisionKind,
    DeliveryStatus,
    EnrollmentStatus,
    GrantStatus,
    JobStatus,
    LiveSessionStatus,
    Modality,
    Operation,
    Outcome,
    ReviewStatus,
    Role,
    StaffRole,
)


def test_every_vocabulary_code_has_a_label():
    for vocabulary in (Operation, Role, Modality, DecisionKind, Outcome):
        assert {c.value for c in vocabulary} <= set(LABELS), vocabulary
    for kind, vocabulary in (
        ("grant", GrantStatus),
        ("job", JobStatus),
        ("enrollment", EnrollmentStatus),
        ("staff_role", StaffRole),
        ("delivery", DeliveryStatus),
        ("clock", Clock),
        ("live", LiveSessionStatus),
        ("review", ReviewStatus),
    ):
        assert set(KINDS[kind]) == {c.value for c in vocabulary}, kind
    assert set(KINDS["request"]) == {"pending", "approved", "declined", "expired"}
    # A decision's other reason codes (consent/policy.py, gate/pipeline.py).
    assert {"all_consented", "no_face_found", "no_voice_found", "rejected_input"} <= set(LABELS)


def test_every_label_has_a_chinese_translation(babel_app):
    with (TRANSLATIONS / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f, locale="zh_CN")
    words = [*LABELS.values(), *(w for kind in KINDS.values() for w in kind.values())]
    with force_locale("en"):
        english = {str(w) for w in words}  # the msgids
    untranslated = [m for m in sorted(english) if not (catalog.get(m) and catalog.get(m).string)]
    assert untranslated == []


@pytest.mark.parametrize(
    ("code", "kind", "en", "zh"),
    [
        ("face_swap", None, "face swap", "换脸"),
        ("voice_cloning", None, "voice cloning", "声音克隆"),
        ("face_reenactment", None, "face reenactment", "人脸驱动"),
        ("target", None, "target", "目标"),
        ("deny", None, "denied", "拒绝"),
        ("revoked", None, "consent revoked", "同意已撤回"),
        ("not_covered", None, "not covered by a grant", "不在授权范围内"),
        # One code, two meanings: the kind picks the words.
        ("pending", "request", "awaiting your answer", "待您答复"),
        ("pending", "enrollment", "in progress", "处理中"),
        ("expired", "request", "expired", "已过期"),
    ],
)
def test_the_filter_renders_words_in_the_page_language(babel_app, code, kind, en, zh):
    source = "{{ code|label(kind) }}" if kind else "{{ code|label }}"
    with babel_app.test_request_context():
        for locale, words in (("en", en), ("zh_CN", zh)):
            with force_locale(locale):
                assert render_template_string(source, code=code, kind=kind) == words


def test_unknown_codes_and_other_values_pass_through(babel_app):
    with babel_app.test_request_context(), force_locale("zh_CN"):
        page = render_template_string(
            '{{ "teleport"|label }}|{{ "Acme"|label }}|{{ none|label }}|{{ 3|label }}'
            '|{{ "face_morph"|label("enrollment") }}|{{ codes|map("label")|join(", ") }}',
            codes=["face_swap", "hologram"],
        )
        assert label("teleport") == "teleport" and label("queued", "job") == "排队中"
    assert page == "teleport|Acme||3|face_morph|换脸, hologram"
    # Escaped like any other value: a code never becomes markup.
    with babel_app.test_request_context(), force_locale("en"):
        assert render_template_string("{{ x|label }}", x="<b>") == "&lt;b&gt;"
