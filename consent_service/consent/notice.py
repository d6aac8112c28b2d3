"""The separate-consent notice shown before every grant: versioned, so each grant records which
words the person read (PIPL Arts 17, 30; DSP Art 14)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from babel.lists import format_list
from flask_babel import get_locale, gettext

from consent_service.i18n.labels import MODALITIES, OPERATIONS
from consent_service.vocabulary import Modality, Operation

NOTICE_VERSION = "2026-11-1"
NOTICE_LANGUAGE = "en"  # the default; every version exists in each of NOTICE_LANGUAGES
# BCP 47 tags. The Chinese text is the same notice, not a summary: one version covers both.
NOTICE_LANGUAGES = ("en", "zh-CN")

# (heading, text) pairs: who, what, why, how long, how to withdraw, consequences.
_SECTIONS: dict[Modality, tuple[tuple[str, str], ...]] = {}


def _sections(what: str, data: str) -> tuple[tuple[str, str], ...]:
    return (
        (
            "Who",
            "The AI media providers you choose below (or all providers, if you choose that) "
            f"may {what}. {{controller}} runs this registry and checks every planned edit "
            "before it happens.",
        ),
        (
            "What",
            f"Only the edit types and roles you tick. Consent Service keeps encrypted {data} "
            "templates to recognise you in the media providers submit, and tells them only "
            "whether an edit is allowed — never your biometric data or your identity.",
        ),
        ("Why", "For the purpose you write below, and for nothing else."),
        (
            "How long",
            "From the start date until the end date you set, or until you revoke it if you "
            "set none.",
        ),
        (
            "How to withdraw",
            "One click on “Revoke” on your dashboard. It takes effect for every check after "
            "that moment; edits already made under it stay lawful.",
        ),
        (
            "Consequences",
            f"Your {data} is sensitive personal information: an edit can put your likeness or "
            "voice where you never were. Refusing or revoking costs you nothing; without "
            "consent every such edit of you is stopped or needs your consent first.",
        ),
    )


_SECTIONS[Modality.FACE] = _sections("edit images or videos that show your face", "face")
_SECTIONS[Modality.VOICE] = _sections("clone, convert or edit recordings of your voice", "voice")


def _sections_zh(what: str, data: str) -> tuple[tuple[str, str], ...]:
    """The same notice in Simplified Chinese (《个人信息保护法》第十七条、第二十九条、第三十条)."""
    return (
        (
            "处理者与接收方",
            f"您在下方选择的人工智能媒体服务提供者（或在您选择“全部提供者”时的所有提供者）"
            f"可以{what}。{{controller}}负责运营本登记系统，并在每一次编辑发生之前对其进行核验。",
        ),
        (
            "处理内容",
            f"仅限您勾选的编辑类型和角色。本服务以加密方式保存您的{data}特征模板，用于在提供者"
            "提交的媒体中识别您，并且只告知提供者该编辑是否被允许，绝不向其提供您的生物识别信息"
            "或身份。",
        ),
        ("处理目的", "仅用于您在下方填写的目的，不作任何其他用途。"),
        (
            "存续期限",
            "自开始日期起至您设定的结束日期止；如未设定结束日期，则持续至您撤回同意时止。",
        ),
        (
            "如何撤回",
            "在“我的同意”页面点击一次“撤回”即可。撤回对此后的每一次核验生效；"
            "撤回前基于您的同意已进行的编辑，其效力不受影响。",
        ),
        (
            "后果说明",
            f"您的{data}属于敏感个人信息：编辑可能使您的容貌或声音出现在您从未到过的场合。"
            "拒绝或撤回同意不会给您带来任何不利；未经您的同意，任何此类编辑都将被阻止，"
            "或须先征得您的单独同意。",
        ),
    )


_SECTIONS_ZH: dict[Modality, tuple[tuple[str, str], ...]] = {
    Modality.FACE: _sections_zh("编辑显示您人脸的图像或视频", "人脸"),
    Modality.VOICE: _sections_zh("克隆、转换或编辑您的声音录音", "声纹"),
}
_TEXTS = {"en": _SECTIONS, "zh-CN": _SECTIONS_ZH}


def notice_language(language: str | None) -> str:
    """The notice language shown for a page language (`zh_CN`, `zh-CN`, `zh` → `zh-CN`)."""
    tag = (language or "").replace("_", "-").lower()
    return "zh-CN" if tag == "zh" or tag.startswith("zh-") else NOTICE_LANGUAGE


def notice(
    modality: Modality, controller: str, language: str = NOTICE_LANGUAGE
) -> list[tuple[str, str]]:
    """The notice for one modality in one language, as (heading, text) pairs."""
    sections = _TEXTS[notice_language(language)][modality]
    return [(h, t.replace("{controller}", controller)) for h, t in sections]


def notice_digest(version: str = NOTICE_VERSION, language: str = NOTICE_LANGUAGE) -> str | None:
    """SHA-256 of the notice text of this version and language (None for another version or
    language): lets a receipt prove which words were shown."""
    if version != NOTICE_VERSION or language not in NOTICE_LANGUAGES:
        return None
    body = {m.value: _TEXTS[language][m] for m in Modality}
    raw = json.dumps(body, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(raw).hexdigest()


def spoken_statement(
    operations: Sequence[Operation], modality: Modality, providers: Sequence[str] | None
) -> str:
    """The sentence a person reads aloud in the live check a grant (or a consent request's
    approval) waits for, naming what they consent to, in the current locale: the edit types,
    the face or voice, and the providers (None: any provider). The recording keeps it (the
    step-up's live session), so an operator can hear that they said it."""
    locale = get_locale() or "en"
    what = format_list([str(OPERATIONS[op]) for op in operations], locale=locale)
    who = format_list(list(providers), locale=locale) if providers else gettext("any provider")
    return gettext(
        "I consent to %(operations)s with my %(modality)s, by %(providers)s.",
        operations=what,
        modality=MODALITIES[modality],
        providers=who,
    )
