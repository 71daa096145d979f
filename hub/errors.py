"""Errors that services raise and views translate for the user."""
from __future__ import annotations

from typing import Any


def N_(message: str) -> str:
    """Mark a message for extraction; views translate it with gettext at render time."""
    return message


class DomainError(Exception):
    """A rule refused the request; nothing was changed.

    `message` is an English msgid with %(name)s placeholders, translated by the view.
    """

    status = 400
    code = "invalid"

    def __init__(self, message: str, field: str | None = None, code: str | None = None, **params: Any) -> None:
        super().__init__(message % params if params else message)
        self.message = message
        self.field = field
        self.params = params
        if code:
            self.code = code


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Conflict(DomainError):
    status = 409
    code = "conflict"
