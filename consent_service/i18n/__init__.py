"""Languages of the people's pages: zh-CN and en (Flask-Babel). The locale comes from the signed-in
account, else the switch's cookie, else the browser's Accept-Language, else English."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, request
from flask_babel import Babel, get_locale
from flask_login import current_user

from consent_service.i18n.labels import label

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
# Babel's locale names, and the BCP 47 tags of the same languages (<html lang>, stored choices).
LOCALES = {"en": "en", "zh_CN": "zh-CN"}
DEFAULT_LOCALE = "en"
COOKIE = "lang"

babel = Babel()


def locale_name(value: str | None) -> str | None:
    """`zh-CN`, `zh_CN`, `zh` → `zh_CN`; `en…` → `en`; anything else → None."""
    if not value:
        return None
    tag = value.strip().replace("_", "-").lower()
    if tag == "zh" or tag.startswith("zh-"):
        return "zh_CN"
    if tag == "en" or tag.startswith("en-"):
        return "en"
    return None


def select_locale() -> str:
    if current_user and current_user.is_authenticated:
        chosen = locale_name(getattr(current_user, "language", None))
        if chosen:
            return chosen
    chosen = locale_name(request.cookies.get(COOKIE))
    if chosen:
        return chosen
    # Werkzeug falls back to the primary subtag, so `zh`, `zh-TW` and `zh-Hans` all pick zh_CN.
    best = request.accept_languages.best_match(["zh-CN", "en"])
    return locale_name(best) or DEFAULT_LOCALE


def current_language() -> str:
    """The BCP 47 tag of the language this request is shown in (`en` or `zh-CN`)."""
    locale = get_locale()
    if locale is None:
        return DEFAULT_LOCALE
    name = f"{locale.language}_{locale.territory}" if locale.territory else locale.language
    return LOCALES.get(name, DEFAULT_LOCALE)


def compile_catalogs(source: Path = TRANSLATIONS, target: Path = TRANSLATIONS) -> Path:
    """Compile every messages.po whose .mo is missing or older than it. The .mo files are build
    output (not committed), so the app compiles on start-up and can never serve stale ones; where
    the package folder is read-only they go to `target`. Each .mo goes under Babel's full name of
    its locale (`zh_CN` → `zh_Hans_CN`), the folder Flask-Babel looks in."""
    for po in source.glob("*/LC_MESSAGES/messages.po"):
        name = str(Locale.parse(po.parent.parent.name))
        mo = target / name / "LC_MESSAGES" / "messages.mo"
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as f:
            catalog = read_po(f, locale=po.parent.parent.name)
        mo.parent.mkdir(parents=True, exist_ok=True)
        tmp = mo.with_suffix(".mo.tmp")
        with tmp.open("wb") as f:
            write_mo(f, catalog, use_fuzzy=False)
        tmp.replace(mo)  # atomic: a worker starting at the same time never reads half a file
    return target


def words(items: Iterable[object]) -> str:
    """A list in the page's language: "face swap, face reenactment"; "换脸、人脸驱动"."""
    separator = "、" if current_language().startswith("zh") else ", "
    return separator.join(str(item) for item in items)


def init_app(app: Flask, home: Path) -> None:
    try:
        directory = compile_catalogs()
    except OSError:  # an installed, read-only package: compile into the service's home
        directory = compile_catalogs(target=home / "translations")
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(directory)
    babel.init_app(app, locale_selector=select_locale)
    # `{{ grant.operations|map("label")|words }}`, `{{ req.status|label("request") }}`
    app.add_template_filter(label, "label")
    app.add_template_filter(words, "words")

    @app.context_processor
    def _language():
        return {"current_language": current_language(), "languages": LANGUAGE_NAMES}

    @app.after_request
    def _vary(response):
        # A page's words depend on these: no shared cache may hand one reader's language to another.
        if response.mimetype == "text/html":
            response.vary.update(("Accept-Language", "Cookie"))
        return response


# Each language named in itself, for the switch.
LANGUAGE_NAMES = {"en": "English", "zh-CN": "简体中文"}
