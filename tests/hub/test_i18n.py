"""Every user-facing string has its Chinese text, and no two packages translate one msgid differently."""
from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir

from hub.i18n import conflicts, translations_by_msgid

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None, "_l": None, "N_": None}


def _msgids() -> dict[str, str]:
    found: dict[str, str] = {}
    method_map = [("templates/**.html", "jinja2"), ("hub/**.py", "python"), ("marketplace/**.py", "python"),
                  ("challenges/**.py", "python"), ("evaluator/**.py", "python")]
    for filename, lineno, message, _comments, _ctx in extract_from_dir(
            str(ROOT), method_map, keywords=KEYWORDS, options_map={"templates/**.html": {}}):
        msgid = message if isinstance(message, str) else message[0]
        # `gettext(info["key"])` makes the extractor report the dict key: not a message.
        if msgid and msgid.strip() and not msgid.isidentifier():
            found.setdefault(msgid, f"{filename}:{lineno}")
    return found


def test_no_msgid_has_two_chinese_translations():
    assert conflicts() == {}


def test_every_user_facing_string_has_a_chinese_translation():
    known = translations_by_msgid()
    missing = {m: where for m, where in _msgids().items() if m not in known}
    assert missing == {}, f"{len(missing)} strings without Chinese text, e.g. {list(missing.items())[:15]}"
