"""Flask wiring shared by every blueprint: request session, login, roles, CSRF, errors, headers."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from math import ceil
from typing import Any, TypeVar

from flask import Flask, abort, current_app, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlmodel import Session

from hub.db import get_engine
from hub.errors import DomainError, N_
from hub.models import User
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
            user = db().get(User, int(user_id))
        except ValueError:
            return None
        return user if user is not None and user.active else None

    @login_manager.request_loader
    def _load_from_token(req) -> User | None:  # type: ignore[no-untyped-def]
        auth = req.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            user = user_for_token(db(), auth[7:].strip())
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
