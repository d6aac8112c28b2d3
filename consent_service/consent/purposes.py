"""The purpose vocabulary the operator maintains (`consent-service purposes`): the codes a job
states and a grant covers, each with an English and a Chinese label.

The default set (seeded by migration 0033) follows where likenesses and voices are actually
edited, and where a person is likely to answer differently:

- `entertainment`: consumer apps, filters, games; most face swaps happen here;
- `advertising`: a likeness used to sell something, where portrait rights (PRC Civil Code
  Art. 1019) make people most careful;
- `film_production`: film, television and dubbing, the professional use with contracts;
- `education`: teaching and training material;
- `research`: research and model testing, often asked for and rarely visible to the person;
- `accessibility`: e.g. a synthetic voice for someone losing theirs, a purpose people grant
  narrowly;
- `news`: journalism, which the Deep Synthesis Provisions (Art. 6) single out because a
  synthetic likeness in the news misleads most.

Codes are retired, never deleted: grants and jobs keep naming them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlmodel import Session, col, select

from consent_service.audit import service as audit
from consent_service.consent.models import Purpose
from consent_service.crypto import KeySource
from consent_service.errors import InvalidRequest

DEFAULT_PURPOSES: tuple[tuple[str, str, str], ...] = (
    (
        "entertainment",
        "Entertainment (apps, filters, games, personal fun)",
        "娱乐（应用、滤镜、游戏、个人娱乐）",
    ),
    ("advertising", "Advertising and marketing", "广告与营销"),
    ("film_production", "Film, television and dubbing", "影视制作与配音"),
    ("education", "Education and training", "教育与培训"),
    ("research", "Research and model testing", "科学研究与模型测试"),
    (
        "accessibility",
        "Accessibility (e.g. a voice for someone who lost theirs)",
        "无障碍（例如为失声者重建声音）",
    ),
    ("news", "News and journalism", "新闻报道"),
)
_CODE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


def vocabulary(session: Session, *, retired: bool = False) -> list[Purpose]:
    """The purposes in force (with `retired`, every purpose ever added), by code."""
    query = select(Purpose).order_by(col(Purpose.code))
    if not retired:
        query = query.where(col(Purpose.active).is_(True))
    return list(session.exec(query))


def require_active(session: Session, codes: Iterable[str]) -> list[str]:
    """`codes`, sorted and without repeats, once each is a purpose in force; an unknown or
    retired code is an InvalidRequest naming it."""
    wanted = sorted(set(codes))
    if not wanted:
        return []
    active = {p.code for p in vocabulary(session)}
    for code in wanted:
        if code not in active:
            raise InvalidRequest(
                "Unknown or retired purpose: %(code)s. The purposes in force are listed at "
                "GET /api/v1/purposes.",
                code=code,
            )
    return wanted


def add(
    session: Session, audit_key: KeySource, code: str, label_en: str, label_zh: str, actor: str
) -> Purpose:
    """Add a purpose, or bring a retired one back (with these labels). Audited."""
    if not _CODE.match(code):
        raise InvalidRequest(
            "A purpose code is 2 to 64 lower-case letters, digits or underscores, starting "
            "with a letter."
        )
    if not label_en.strip() or not label_zh.strip():
        raise InvalidRequest("A purpose needs an English and a Chinese label.")
    row = session.get(Purpose, code)
    if row is not None and row.active:
        raise InvalidRequest("The purpose %(code)s exists already.", code=code)
    if row is None:
        row = Purpose(code=code, label_en="", label_zh="")
    row.label_en, row.label_zh, row.active = label_en.strip()[:200], label_zh.strip()[:200], True
    session.add(row)
    session.flush()
    audit.append(
        session,
        audit_key,
        "purpose.added",
        actor,
        {"code": code, "label_en": row.label_en, "label_zh": row.label_zh},
    )
    return row


def retire(session: Session, audit_key: KeySource, code: str, actor: str) -> Purpose:
    """Refuse the code for new jobs and grants from now on; grants that name it keep covering
    it (the person chose it). Audited; a no-op for a retired code."""
    row = session.get(Purpose, code)
    if row is None:
        raise InvalidRequest("Unknown purpose: %(code)s.", code=code)
    if row.active:
        row.active = False
        session.add(row)
        session.flush()
        audit.append(session, audit_key, "purpose.retired", actor, {"code": code})
    return row


def labels(purposes: Sequence[Purpose], language: str) -> dict[str, str]:
    """Code → label in `language` (`zh…`: the Chinese one, else the English one)."""
    chinese = language.lower().startswith("zh")
    return {p.code: (p.label_zh if chinese else p.label_en) for p in purposes}
