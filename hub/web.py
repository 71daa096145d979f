"""Flask wiring shared by every blueprint: request session, login, roles, CSRF, errors, headers."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Hashable, Iterable
from datetime import date, datetime
from functools import wraps
from math import ceil
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (Flask, Response, abort, current_app, flash, g, jsonify, make_response, redirect, render_template,
                   request, session)
from flask_babel import get_locale, gettext
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user, user_logged_in
from flask_wtf.csrf import CSRFError, CSRFProtect
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session
from werkzeug.routing import IntegerConverter
from werkzeug.wrappers import Response as BaseResponse

from hub import tokens
from hub.cache import Scope, VersionedCache, changes, versions
from hub.db import get_engine
from hub.errors import DomainError, N_
from hub.models import User, utcnow
from hub.throttle import Attempt, LoginThrottle, account_key

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


def cached_response(build: Callable[[], tuple[Any, datetime | None]], vary: Hashable | None = None,
                    depends: Iterable[Scope] | None = None) -> Any:
    """The view's response, kept in memory while the data of the scopes it `depends` on (hub.cache.versions)
    and the clock rules hold.

    `build()` renders the response and says when its clock-based rules next change (or None). Without
    `vary` only anonymous GETs with no pending message are cached (a page's menu shows who is logged in);
    with `vary` the caller promises the body depends on nothing else than the URL, the locale and `vary`
    (e.g. a JSON body for one visibility class or one user). `depends` must name every scope the build
    reads (tests/hub/test_cache_scopes.py checks); the default, every scope, is always right but drops the
    entry on any write a cached page could read. Nothing is kept from a build that touched the session or
    made a CSRF token, or answered with a cookie or a status other than 200/400.
    """
    if request.method != "GET" or (vary is None and (current_user.is_authenticated or "_flashes" in session)):
        return build()[0]
    key = (request.endpoint, request.full_path, str(get_locale()), vary)
    version = request_version(depends)
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


def request_version(depends: Iterable[Scope] | None = None) -> Hashable:
    """hub.cache.versions of these scopes (None: every scope) for the request's session, read once per set
    of scopes while the session has not written."""
    session = db()
    scopes = None if depends is None else frozenset(depends)
    memo: dict[frozenset[Scope] | None, Hashable] | None = None
    if g.get("hub_versions_at") == changes(session) and not (session.new or session.dirty or session.deleted):
        memo = g.get("hub_versions")
    if memo is None:
        memo = g.hub_versions = {}
        g.hub_versions_at = changes(session)
    version = memo.get(scopes)
    if version is None:
        version = memo[scopes] = versions(session, scopes)
    return version


# Who a session cookie or an API token stands for, as a detached copy of the User row (per version of
# USER_SCOPES: the row is all it holds).
USERS = VersionedCache("users", max_entries=4096, max_bytes=4096)
USER_SCOPES = ("user",)


def _known_user(key: Hashable, load: Callable[[Session], User | None]) -> User | None:
    """load(session), or the same user from memory while the data is unchanged (no query).

    The copy is merged into the request's session without loading, so the view gets an ordinary
    persistent User of its own session, exactly as if it had been read.
    """
    session = db()
    version = request_version(USER_SCOPES)
    known = USERS.get(key, version)
    if known is not None:
        return session.merge(known, load=False)
    user = load(session)
    if user is not None:
        copy = User(**user.model_dump())
        make_transient_to_detached(copy)
        USERS.put(key, version, copy)
    return user


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# What an API token stands for, per version of its table (keyed by its sha256, never the token itself).
TOKENS = VersionedCache("tokens", max_entries=4096, max_bytes=4096)
TOKEN_SCOPES = ("apitoken",)


def _active_user(user_id: int) -> User | None:
    """The active user with this id (from memory while the data is unchanged)."""

    def load(session: Session) -> User | None:
        user = session.get(User, user_id)
        return user if user is not None and user.active else None

    return _known_user(("id", user_id), load)


def _known_token(token: str) -> tokens.TokenInfo | None:
    key = hashlib.sha256(token.encode()).digest()
    version = request_version(TOKEN_SCOPES)
    info = TOKENS.get(key, version)
    if info is None:
        info = tokens.lookup(db(), token)
        if info is not None:
            TOKENS.put(key, version, info)
    return info


def by_token() -> bool:
    """Whether this request logged in with an API token (account settings need the person, not a token)."""
    return bool(g.get("token_auth"))


def _refuse(status: int, code: str, message: str) -> Any:
    if wants_json():
        return json_error(status, code, message)
    return render_template("hub/error.html", status=status, message=message), status


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


# Beyond this a page is empty anyway; the bound keeps OFFSET inside what every database accepts.
MAX_PAGE = 100_000
# The largest id any table can hold (SQLite's and PostgreSQL's BIGINT); larger ones cannot exist.
MAX_ID = 2**63 - 1
# Dates a period may name (statements, filters); outside them date arithmetic overflows.
MIN_DATE, MAX_DATE = date(2000, 1, 1), date(2999, 12, 31)


def page_arg(name: str = "page") -> int:
    """?page= clamped to 1..MAX_PAGE; a missing, negative or non-numeric value is page 1."""
    raw = request.args.get(name, "").strip()
    if not (raw.isascii() and raw.isdecimal()):
        return 1
    return min(MAX_PAGE, max(1, int(raw))) if len(raw) <= 12 else MAX_PAGE


def id_arg(name: str) -> int | None:
    """An id from the query string (?phase=, ?org=): None when absent, a 400 when it is no possible id."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdecimal()) or len(raw) > 19 or not 1 <= int(raw) <= MAX_ID:
        raise DomainError(N_("The %(name)s parameter must be a number that names an item of the list."),
                          field=name, name=name)
    return int(raw)


def date_arg(name: str, default: date) -> date:
    """A YYYY-MM-DD date from the query string (default when absent); a 400 when it is not one in range."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    try:
        value = date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        value = None
    if value is None or not MIN_DATE <= value <= MAX_DATE:
        raise DomainError(N_("Enter dates as YYYY-MM-DD between %(first)s and %(last)s."), field=name,
                          first=MIN_DATE.isoformat(), last=MAX_DATE.isoformat())
    return value


class BoundedIntConverter(IntegerConverter):
    """`<int:…>` in every route, up to MAX_ID: a larger number is no route (404), never a database overflow."""

    def __init__(self, map, *args: Any, **kwargs: Any) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


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
    # Before any blueprint adds a rule: every <int:…> path argument is bounded.
    app.url_map.converters["int"] = BoundedIntConverter
    # CSRF is checked in before_request so that token-authenticated API calls (no cookie) pass.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None

    @user_logged_in.connect_via(app)
    def _session_starts(_sender: Flask, **_extra: Any) -> None:
        # A permanent session is re-signed on every request, so it ends after PERMANENT_SESSION_LIFETIME
        # without one (idle timeout); login_at bounds it absolutely (SESSION_MAX_AGE) however busy it is.
        session.permanent = True
        session["login_at"] = int(utcnow().timestamp())

    @login_manager.user_loader
    def _load_user(user_id: str) -> User | None:
        # The id is "<user id>:<session key>" (User.get_id): a new key (logout, password change) ends
        # every session of the account, a cookie copied before included.
        uid_text, _, key = user_id.partition(":")
        try:
            uid = int(uid_text)
        except ValueError:
            return None
        login_at = session.get("login_at")
        if not key or not isinstance(login_at, int) or (
                utcnow().timestamp() - login_at > app.config["SESSION_MAX_AGE"].total_seconds()):
            return None
        user = _active_user(uid)
        return user if user is not None and hmac.compare_digest(user.session_key, key) else None

    @login_manager.request_loader
    def _load_from_token(req) -> User | None:  # type: ignore[no-untyped-def]
        auth = req.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.startswith("Bearer ") else ""
        if not token:
            return None
        info = _known_token(token)
        now = utcnow()
        if info is None:
            return None  # an unknown token leaves the request anonymous
        refusal = info.refusal(now)
        if refusal is not None:
            g.token_refusal = refusal
            return None
        user = _active_user(info.user_id)
        if user is None:
            return None
        g.token_auth, g.token_may_write = True, info.may_write
        if tokens.due_for_touch(info, now):
            # Its own short transaction, so the request's session stays as the view expects it.
            with Session(db().get_bind(), expire_on_commit=False) as own:
                tokens.touch(own, info.id, now)
        return user

    @app.before_request
    def _token_rules() -> Any:
        """A revoked or expired token is refused (401), a read-only one on an unsafe method too (403)."""
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return None
        current_user._get_current_object()  # runs the loaders now, so their verdict is known
        refusal = g.get("token_refusal")
        if refusal is not None:
            return _refuse(401, refusal[0], gettext(refusal[1]))
        if g.get("token_auth") and not g.get("token_may_write") and request.method not in SAFE_METHODS:
            return _refuse(403, "token_read_only", gettext(
                "This token may only read. To submit, create a token that may read and submit on your "
                "account page."))
        return None

    @app.before_request
    def _no_nul_in_query() -> Any:
        # No parameter of ours holds a NUL, and PostgreSQL refuses one in any string it is sent.
        if any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
            raise DomainError(N_("The address holds a character that is not allowed (a NUL byte). Remove it and "
                                 "try again."))
        return None

    @app.before_request
    def _csrf_unless_token() -> Any:
        if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
            return None
        if request.headers.get("Authorization", "").startswith("Bearer "):
            # Token requests carry no ambient cookie credential, so CSRF does not apply; a bad
            # token simply leaves the request anonymous.
            return None
        if request.path.startswith("/api/") and not current_user.is_authenticated:
            # Neither a token nor a logged-in browser session: what is missing is the token, not a form.
            return json_error(401, "token_missing", gettext(
                "The API token is missing. Send it as \"Authorization: Bearer <token>\"; make one on your "
                "account page."))
        if app.config.get("WTF_CSRF_ENABLED", True):
            csrf.protect()  # a browser session (the cookie), on a page or on the API
        return None

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
    app.register_error_handler(408, _http_error(408, "body_too_slow", lambda: gettext(
        "The request arrived too slowly and was stopped; nothing was kept. Check the connection and send it "
        "again.")))
    app.register_error_handler(413, _http_error(413, "too_large", lambda: gettext("The upload is too large.")))
    app.register_error_handler(429, _http_error(429, "rate_limited", lambda: gettext("Too many attempts. Wait a minute and try again.")))
    app.register_error_handler(500, _http_error(500, "server_error", lambda: gettext("Something went wrong on our side. Nothing was changed.")))


def flash_error(err: DomainError) -> None:
    flash(translate_error(err), "error")


T = TypeVar("T")


def button_post(call: Callable[[], T], redirect_to: str, ok_msg: str | Callable[[T], str] | None,
                error_to: str | None = None) -> BaseResponse:
    """A button's POST: run one service call, flash its success or its refusal, redirect.

    `ok_msg` is the translated success message, or a function of the call's result giving it (None: no
    message); a refusal is rolled back, flashed and sent to `error_to` (default `redirect_to`).
    """
    try:
        result = call()
    except DomainError as err:
        db().rollback()
        flash_error(err)
        return redirect(error_to or redirect_to)
    if ok_msg is not None:
        flash(ok_msg(result) if callable(ok_msg) else ok_msg, "success")
    return redirect(redirect_to)


# What browsers drop before parsing a URL: tab, CR and LF anywhere; C0 controls and spaces at either end.
_BROWSER_DROPS = re.compile(r"[\t\r\n]")
_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))


def local_path(target: str) -> str | None:
    """`target` as a path on this site when a browser would read it as one, else None (no open redirect).

    Read as a browser reads it: tabs and newlines removed, controls and spaces at the ends stripped, a
    backslash taken for a slash. What is left must start with exactly one "/" and have no scheme and no
    host, so "//host", "/\\host", "/<tab>/host" and "https:…" are all refused.
    """
    cleaned = _BROWSER_DROPS.sub("", target).strip(_C0_AND_SPACE)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in cleaned):
        return None
    as_browser = cleaned.replace("\\", "/")
    if not as_browser.startswith("/") or as_browser.startswith("//"):
        return None
    parts = urlsplit(as_browser)
    if parts.scheme or parts.netloc:
        return None
    return as_browser


def safe_next(default: str) -> str:
    """A same-site path from ?next= / the form (see local_path), else `default`."""
    target = request.form.get("next") or request.args.get("next") or ""
    return local_path(target) or default


# ---------------------------------------------------------------- login throttling (the rule: hub.throttle)
DEVICE_COOKIE = "hub_device"
_DEVICE_ACCOUNTS = 8  # accounts one browser is remembered for


def _throttle() -> LoginThrottle:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    throttle = app.extensions.get("hub_login_throttle")
    if throttle is None:
        throttle = LoginThrottle(app.config["RATELIMIT_STORAGE_URI"], app.config["LOGIN_RATE_LIMIT"],
                                 app.config["LOGIN_ACCOUNT_RATE_LIMIT"])
        app.extensions["hub_login_throttle"] = throttle
    return throttle


def _device_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt="hub-login-device")  # type: ignore[arg-type]


def _device_mark(account: str) -> str:
    """How the device cookie names an account: keyed, so a shared machine's cookie does not tell whose it is."""
    key = hashlib.sha256(b"hub-login-device:" + str(current_app.secret_key).encode()).digest()
    return hmac.new(key, account.encode(), hashlib.sha256).hexdigest()[:32]


def _device() -> tuple[str, list[str]] | None:
    """(device id, account marks) from this browser's signed device cookie, if it carries a valid one."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return None
    try:
        data = _device_serializer().loads(raw)
        return str(data["d"]), [str(a) for a in data["a"]][:_DEVICE_ACCOUNTS]
    except (BadSignature, KeyError, TypeError, ValueError):
        return None


class LoginGate:
    """One login attempt under the throttle: ask `refused()` first, then report `failed()` or `succeeded()`."""

    def __init__(self, email: str | None) -> None:
        self.enabled = bool(current_app.config.get("RATELIMIT_ENABLED", True))
        account = account_key(email)
        device = _device()
        self.mark = _device_mark(account)
        self.attempt = Attempt(address=request.remote_addr or "unknown", account=account,
                               device=device[0] if device is not None and self.mark in device[1] else None)

    def refused(self) -> bool:
        return self.enabled and _throttle().refused(self.attempt)

    def failed(self) -> None:
        if self.enabled:
            _throttle().failed(self.attempt)

    def succeeded(self, response: Response) -> Response:
        """Remember this browser for the account (the device cookie): others' failures no longer lock it out."""
        device_id, accounts = _device() or (secrets.token_urlsafe(16), [])
        accounts = [self.mark] + [a for a in accounts if a != self.mark]
        value = _device_serializer().dumps({"d": device_id, "a": accounts[:_DEVICE_ACCOUNTS]})
        response.set_cookie(DEVICE_COOKIE, value, max_age=365 * 24 * 3600, httponly=True, samesite="Lax",
                            secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")))
        return response
