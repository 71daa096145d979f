"""Flask wiring shared by every blueprint: request session, login, roles, CSRF, errors, headers."""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from datetime import datetime
from functools import wraps
from math import ceil
from typing import Any, TypeVar

from flask import (Flask, Response, abort, current_app, flash, g, jsonify, make_response, redirect, render_template,
                   request, session, url_for)
from flask_babel import get_locale, gettext
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session

from hub.cache import VersionedCache, changes, data_version
from hub.db import get_engine
from hub.errors import DomainError, N_
from hub.models import User, utcnow
from hub.users import user_for_token

F = TypeVar("F", bound=Callable[..., Any])

csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


ROLE_LABELS = {"admin": N_("Platform admin"), "gov": N_("Government staff"), "team": N_("Team member"),
               "judge": N_("Judge"), "operator": N_("Operator")}

# (endpoint, label, roles or None for everyone); entries appear once their blueprint has the route.
NAV: list[tuple[str, str, set[str] | None]] = [
    ("marketplace.index", N_("Scenario opportunities"), None),
    ("challenges.index", N_("Challenges"), None),
    ("marketplace.my_applications", N_("My applications"), {"team", "gov"}),
    ("challenges.my_teams", N_("My teams"), {"team"}),
    ("challenges.judge_home", N_("Judging"), {"judge"}),
    ("quota.usage", N_("Compute usage"), {"team"}),
    ("evaluator.ops", N_("Operations"), {"operator", "admin"}),
    ("quota.vouchers_admin", N_("Vouchers"), {"operator", "admin"}),
    ("challenges.audit", N_("Audit log"), {"gov", "admin"}),
]


def db() -> Session:
    """The request's database session (closed at teardown; services commit their own changes)."""
    if "db" not in g:
        g.db = Session(get_engine(current_app.config["DATABASE_URL"]), expire_on_commit=False)
    return g.db


# Whole responses of read-only routes (see cached_response); bounded per worker process.
RESPONSES = VersionedCache("responses", max_entries=512, max_bytes=64 * 1024 * 1024)


def cached_response(build: Callable[[], tuple[Any, datetime | None]], vary: Hashable | None = None) -> Any:
    """The view's response, kept in memory while the data (hub.cache.data_version) and the clock rules hold.

    `build()` renders the response and says when its clock-based rules next change (or None). Without
    `vary` only anonymous GETs with no pending message are cached (a page's menu shows who is logged in);
    with `vary` the caller promises the body depends on nothing else than the URL, the locale and `vary`
    (e.g. a JSON body for one visibility class or one user). Nothing is kept from a build that touched the
    session or made a CSRF token, or answered with a cookie or a status other than 200/400.
    """
    if request.method != "GET" or (vary is None and (current_user.is_authenticated or "_flashes" in session)):
        return build()[0]
    key = (request.endpoint, request.full_path, str(get_locale()), vary)
    version = request_version()
    hit = RESPONSES.get(key, version, utcnow())
    if hit is not None:
        body, status, headers = hit
        return Response(body, status=status, headers=headers)
    before = dict(session)
    rv, expires_at = build()
    response = make_response(rv)
    csrf_field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    if (response.status_code in (200, 400) and not response.is_streamed and csrf_field not in g
            and "Set-Cookie" not in response.headers and dict(session) == before):
        body = response.get_data()
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        RESPONSES.put(key, version, (body, response.status_code, headers), size=len(body) + 512,
                      expires_at=expires_at)
    return response


def request_version() -> Hashable:
    """hub.cache.data_version of the request's session, read once while the session has not written."""
    session = db()
    memo = g.get("hub_data_version")
    if memo is not None and memo[0] == changes(session) and not (session.new or session.dirty or session.deleted):
        return memo[1]
    version = data_version(session)
    g.hub_data_version = (changes(session), version)
    return version


# Who a session cookie or an API token stands for, as a detached copy of the User row (per data version).
USERS = VersionedCache("users", max_entries=4096, max_bytes=4096)


def _known_user(key: Hashable, load: Callable[[Session], User | None]) -> User | None:
    """load(session), or the same user from memory while the data is unchanged (no query).

    The copy is merged into the request's session without loading, so the view gets an ordinary
    persistent User of its own session, exactly as if it had been read.
    """
    session = db()
    version = request_version()
    known = USERS.get(key, version)
    if known is not None:
        return session.merge(known, load=False)
    user = load(session)
    if user is not None:
        copy = User(**user.model_dump())
        make_transient_to_detached(copy)
        USERS.put(key, version, copy)
    return user


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def json_error(status: int, code: str, message: str, field: str | None = None, **extra: Any):
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if field:
        body["error"]["field"] = field
    body["error"].update(extra)
    return jsonify(body), status


def translate_error(err: DomainError) -> str:
    return gettext(err.message, **err.params) if err.params else gettext(err.message)


def role_required(*roles: str) -> Callable[[F], F]:
    """Logged-out users go to the login page (401 JSON on the API); other roles get 403."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                if wants_json():
                    return json_error(401, "unauthorized", gettext("Log in or send an API token."))
                return login_manager.unauthorized()
            if roles and current_user.role not in roles:
                if wants_json():
                    return json_error(403, "forbidden", gettext("You are not allowed to do this."))
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


login_required = role_required()


class Page:
    """One page of results plus what a pager needs."""

    def __init__(self, items: list[Any], total: int, page: int, per_page: int) -> None:
        self.items, self.total, self.page, self.per_page = items, total, page, per_page
        self.pages = max(1, ceil(total / per_page)) if per_page else 1
        self.has_prev, self.has_next = page > 1, page < self.pages

    def as_dict(self) -> dict[str, int]:
        return {"page": self.page, "per_page": self.per_page, "total": self.total, "pages": self.pages}


def page_arg(name: str = "page") -> int:
    try:
        return max(1, int(request.args.get(name, 1)))
    except ValueError:
        return 1


def _security_headers(response):  # type: ignore[no-untyped-def]
    h = response.headers
    # Every asset is served by the app (intranet, no CDN), so 'self' is all a page needs.
    h.setdefault("Content-Security-Policy",
                 "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                 "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if request.is_secure:
        h.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def init_web(app: Flask) -> None:
    # CSRF is checked in before_request so that token-authenticated API calls (no cookie) pass.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None

    @login_manager.user_loader
    def _load_user(user_id: str) -> User | None:
        try:
            uid = int(user_id)
        except ValueError:
            return None

        def load(session: Session) -> User | None:
            user = session.get(User, uid)
            return user if user is not None and user.active else None

        return _known_user(("id", uid), load)

    @login_manager.request_loader
    def _load_from_token(req) -> User | None:  # type: ignore[no-untyped-def]
        auth = req.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth[7:].strip()
            user = _known_user(("token", hashlib.sha256(token.encode()).digest()),
                               lambda session: user_for_token(session, token)) if token else None
            if user is not None:
                g.token_auth = True
            return user
        return None

    @app.before_request
    def _csrf_unless_token() -> None:
        if not app.config.get("WTF_CSRF_ENABLED", True) or request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
            return
        if request.headers.get("Authorization", "").startswith("Bearer "):
            # Token requests carry no ambient cookie credential, so CSRF does not apply; a bad
            # token simply leaves the request anonymous.
            return
        csrf.protect()

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db", None)
        if session is not None:
            session.close()

    app.after_request(_security_headers)

    @app.context_processor
    def _nav() -> dict[str, Any]:
        def nav_items() -> list[tuple[str, str]]:
            """Main menu entries whose endpoint exists and whose role rule lets the user in."""
            role = current_user.role if current_user.is_authenticated else None
            items = []
            for endpoint, label, roles in NAV:
                if endpoint in app.view_functions and (roles is None or role in roles):
                    items.append((endpoint, gettext(label)))
            return items

        return {"nav_items": nav_items, "role_label": lambda r: gettext(ROLE_LABELS.get(r, r))}

    @app.errorhandler(DomainError)
    def _domain_error(err: DomainError):  # type: ignore[no-untyped-def]
        message = translate_error(err)
        if wants_json():
            return json_error(err.status, err.code, message, err.field)
        return render_template("hub/error.html", status=err.status, message=message), err.status

    @app.errorhandler(CSRFError)
    def _csrf_error(err: CSRFError):  # type: ignore[no-untyped-def]
        message = gettext("The form expired or was not sent from this site. Reload the page and try again.")
        if wants_json():
            return json_error(400, "csrf", message)
        return render_template("hub/error.html", status=400, message=message), 400

    def _http_error(status: int, code: str, text: Callable[[], str]):  # type: ignore[no-untyped-def]
        def handler(_err: Exception):  # type: ignore[no-untyped-def]
            if wants_json():
                return json_error(status, code, text())
            return render_template("hub/error.html", status=status, message=text()), status
        return handler

    app.register_error_handler(403, _http_error(403, "forbidden", lambda: gettext("You are not allowed to see this page.")))
    app.register_error_handler(404, _http_error(404, "not_found", lambda: gettext("Not found.")))
    app.register_error_handler(405, _http_error(405, "method_not_allowed", lambda: gettext("Method not allowed.")))
    app.register_error_handler(413, _http_error(413, "too_large", lambda: gettext("The upload is too large.")))
    app.register_error_handler(429, _http_error(429, "rate_limited", lambda: gettext("Too many attempts. Wait a minute and try again.")))
    app.register_error_handler(500, _http_error(500, "server_error", lambda: gettext("Something went wrong on our side. Nothing was changed.")))


def flash_error(err: DomainError) -> None:
    flash(translate_error(err), "error")


def safe_next(default: str) -> str:
    """A same-site path from ?next= / the form, never an absolute URL (no open redirect)."""
    target = request.form.get("next") or request.args.get("next") or ""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default
