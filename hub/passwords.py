"""The password policy, stated in one place: applied whenever a password is set (no Flask here).

A password must have 10 to 200 characters, must not be a common password (zxcvbn's list of the 30,000
most frequent leaked passwords, also with digits or symbols added at an end), must not be a trivial pattern
(one character repeated, a short piece repeated, a run such as 123456 or abcdef, a row of the keyboard) and
must not contain the account's e-mail address or the part before the @. Existing passwords keep working:
the policy is checked when a password is set (registration, password change, CLI account creation).
"""
from __future__ import annotations

import re
from functools import lru_cache

from hub.errors import DomainError, N_

MIN_LENGTH = 10
MAX_LENGTH = 200
# The e-mail's name part must be at least this long before "contains it" applies (so "li@…" does not ban "li").
MIN_EMAIL_PART = 3

# Shown next to every password field, so people know the rule before they type.
POLICY = N_("At least 10 characters. Not a common password, not a simple pattern such as 1234567890 or "
            "qwertyuiop, and not your e-mail address. Several unrelated words make a good password.")

_KEYBOARD_ROWS = ("`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./", "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
                  "qazwsxedcrfvtgbyhnujmikolp")
_EDGE = re.compile(r"^[\d\W_]+|[\d\W_]+$")


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    """zxcvbn's ranked list of common passwords (lower case), loaded on first use."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def is_common(password: str) -> bool:
    """A listed password, or one with only digits/symbols added at either end (e.g. password123, !dragon2026)."""
    lowered = password.lower()
    if lowered in _common():
        return True
    core = _EDGE.sub("", lowered)
    return len(core) >= 4 and core != lowered and core in _common()


def _is_run(text: str) -> bool:
    """Each character one step up or down from the last (123456, abcdef, 987654), or along a keyboard row."""
    if len(set(text)) == 1:
        return True
    steps = {ord(b) - ord(a) for a, b in zip(text, text[1:])}
    if steps in ({1}, {-1}):
        return True
    return any(text in row or text[::-1] in row for row in _KEYBOARD_ROWS)


def is_trivial(password: str) -> bool:
    """One character repeated, a piece of up to 4 characters repeated, a run, or a keyboard row."""
    lowered = password.lower()
    if _is_run(lowered):
        return True
    for size in range(1, 5):
        piece = lowered[:size]
        if len(lowered) > size and (piece * (len(lowered) // size + 1))[:len(lowered)] == lowered:
            return True
    return False


def contains_email(password: str, email: str) -> bool:
    email = (email or "").strip().lower()
    if not email:
        return False
    lowered = password.lower()
    local = email.split("@", 1)[0]
    return email in lowered or (len(local) >= MIN_EMAIL_PART and local in lowered) or lowered == local


def check_password(password: str, email: str = "") -> None:
    """Raise DomainError(field="password") saying what to fix when the password breaks the policy."""
    password = password or ""
    if len(password) < MIN_LENGTH:
        raise DomainError(N_("The password must have at least %(n)s characters."), field="password", n=MIN_LENGTH)
    if len(password) > MAX_LENGTH:
        raise DomainError(N_("The password may have at most %(n)s characters."), field="password", n=MAX_LENGTH)
    if contains_email(password, email):
        raise DomainError(N_("The password must not contain your e-mail address or its name part. "
                             "Choose a password that has nothing to do with your account."), field="password")
    if is_trivial(password):
        raise DomainError(N_("The password is a simple pattern (one character repeated, a run such as 1234567890 "
                             "or abcdef, or a row of the keyboard) and is guessed at once. Choose another one, "
                             "for example several unrelated words."), field="password")
    if is_common(password):
        raise DomainError(N_("This is one of the most common passwords (or one with only digits or symbols "
                             "added) and is guessed at once. Choose another one, for example several unrelated "
                             "words."), field="password")
