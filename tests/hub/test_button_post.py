"""hub.web.button_post: one service call per button, its success or refusal flashed, then a redirect."""
from __future__ import annotations

from flask import get_flashed_messages

from hub.errors import N_, DomainError
from hub.web import button_post


def _refuse() -> None:
    raise DomainError(N_("Not found."))


def test_success_flashes_the_message_and_redirects(app) -> None:  # type: ignore[no-untyped-def]
    with app.test_request_context("/", method="POST"):
        response = button_post(lambda: 3, "/done", "Saved.", error_to="/refused")
        assert (response.status_code, response.location) == (302, "/done")
        assert get_flashed_messages(with_categories=True) == [("success", "Saved.")]


def test_the_message_may_come_from_the_result_or_be_left_out(app) -> None:  # type: ignore[no-untyped-def]
    with app.test_request_context("/", method="POST"):
        button_post(lambda: 3, "/done", lambda n: f"{n} teams were cut.")
        assert get_flashed_messages(with_categories=True) == [("success", "3 teams were cut.")]
    with app.test_request_context("/", method="POST"):
        button_post(lambda: None, "/done", None)
        assert get_flashed_messages() == []


def test_a_refusal_is_flashed_translated_and_sent_to_error_to(app) -> None:  # type: ignore[no-untyped-def]
    with app.test_request_context("/?lang=en", method="POST"):
        response = button_post(_refuse, "/done", "Saved.", error_to="/refused")
        assert response.location == "/refused"
        assert get_flashed_messages(with_categories=True) == [("error", "Not found.")]
    with app.test_request_context("/?lang=en", method="POST"):
        assert button_post(_refuse, "/done", "Saved.").location == "/done"
