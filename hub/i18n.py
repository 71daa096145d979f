"""Flask-Babel set-up: zh_CN first, English second; catalogues compiled at start-up."""
from __future__ import annotations

from pathlib import Path

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, current_app, request, session
from flask_babel import Babel, get_locale
from flask_login import current_user

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = ROOT / "translations"


def translations_by_msgid(locale: str = "zh_CN") -> dict[str, dict[str, list[str]]]:
    """msgid → {translation: [po files that give it]} over every package's catalogue."""
    found: dict[str, dict[str, list[str]]] = {}
    for po in sorted((SOURCE_DIR / locale).glob("*.po")):
        with po.open("rb") as fh:
            for msg in read_po(fh, locale=locale):
                if msg.id and msg.string:
                    msgid = msg.id if isinstance(msg.id, str) else msg.id[0]
                    text = msg.string if isinstance(msg.string, str) else msg.string[0]
                    found.setdefault(msgid, {}).setdefault(text, []).append(po.stem)
    return found


def conflicts(locale: str = "zh_CN") -> dict[str, dict[str, list[str]]]:
    """msgids that two packages translate differently (the merged catalogue can hold only one)."""
    return {k: v for k, v in translations_by_msgid(locale).items() if len(v) > 1}


def compile_catalogues(target: Path) -> None:
    """Merge every translations/<locale>/*.po into one messages.mo per locale.

    One .po per package keeps each package's strings next to its owner; no binary .mo is committed.
    """
    for locale_dir in sorted(p for p in SOURCE_DIR.iterdir() if p.is_dir()):
        merged = Catalog(locale=locale_dir.name)
        for po in sorted(locale_dir.glob("*.po")):
            with po.open("rb") as fh:
                for msg in read_po(fh, locale=locale_dir.name):
                    if msg.id and msg.string:
                        merged.add(msg.id, msg.string)
        # Babel resolves "zh_CN" to "zh_Hans_CN"; gettext looks the catalogue up under that name.
        for name in {locale_dir.name, str(Locale.parse(locale_dir.name))}:
            out = target / name / "LC_MESSAGES"
            out.mkdir(parents=True, exist_ok=True)
            with (out / "messages.mo").open("wb") as fh:
                write_mo(fh, merged)


def select_locale() -> str:

    langs = current_app.config["LANGUAGES"]
    wanted = request.args.get("lang")
    if wanted in langs:
        session["lang"] = wanted
        return wanted
    if session.get("lang") in langs:
        return session["lang"]
    if getattr(current_user, "is_authenticated", False) and getattr(current_user, "locale", None) in langs:
        return current_user.locale
    # Chinese first: pages ignore the browser's Accept-Language (the district's shared machines often
    # say en-US); the switch in the menu decides. API clients state their language explicitly.
    if request.path.startswith("/api/"):
        best = request.accept_languages.best_match(["zh", "zh-CN", "zh_CN", "en"])
        if best == "en":
            return "en"
    return current_app.config["BABEL_DEFAULT_LOCALE"]


_parsed: dict[str, Locale] = {}


def _selected_locale() -> Locale:
    """select_locale() as a parsed Locale: Babel's parse scans every known locale name (~0.1 ms a request)."""
    name = select_locale()
    locale = _parsed.get(name)
    if locale is None:
        locale = _parsed[name] = Locale.parse(name)
    return locale


def init_i18n(app: Flask) -> Babel:
    target = Path(app.instance_path) / "translations"
    compile_catalogues(target)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(target)
    babel = Babel(app, locale_selector=_selected_locale)

    @app.context_processor
    def _locale_helpers() -> dict[str, object]:

        def is_zh() -> bool:
            return str(get_locale()).startswith("zh")

        def localized(obj: object, attr: str = "name") -> str:
            """Chinese field, or its `_en` twin when the page is in English and one exists."""
            zh = getattr(obj, attr, "") or ""
            if is_zh():
                return zh
            return getattr(obj, f"{attr}_en", "") or zh

        return {"is_zh": is_zh, "localized": localized, "current_lang": str(get_locale())}

    return babel
