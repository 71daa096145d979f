"""API tokens: named, scoped, expiring, revocable one by one; only their sha256 is stored. No Flask here."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from hub.errors import DomainError, N_, NotFound
from hub.models import ApiToken, TokenScope, User, utcnow

# Lifetimes offered on the account page, in days (None: never expires); the default is 90 days.
LIFETIMES: tuple[int | None, ...] = (30, 90, 365, None)
DEFAULT_DAYS = 90
MAX_ACTIVE = 20  # per user: enough for every machine and script, few enough to keep the list readable
PREFIX_LEN = 12  # "hub_" and 8 characters: enough to tell one's tokens apart, far too few to guess the rest
# last_used_at is written at most this often per token: every write moves hub.cache's data version, so a
# busy CLI must not empty every cache on each request.
TOUCH_EVERY = timedelta(minutes=1)

SCOPE_LABELS = {TokenScope.READ: N_("Read only"), TokenScope.SUBMIT: N_("Read and submit")}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """What a request needs to know about the token it carries (cached per data version by hub.web)."""

    id: int
    user_id: int
    scope: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def refusal(self, now: datetime) -> tuple[str, str] | None:
        """None while the token works; else why not: (error code, msgid)."""
        if self.revoked_at is not None:
            return "token_revoked", N_("This API token was revoked. Create a new one on your account page.")
        if self.expires_at is not None and self.expires_at <= now:
            return "token_expired", N_("This API token expired. Create a new one on your account page.")
        return None

    @property
    def may_write(self) -> bool:
        return self.scope == TokenScope.SUBMIT


def issue(session: Session, user: User, name: str, scope: str = TokenScope.SUBMIT,
          days: int | None = DEFAULT_DAYS) -> str:
    """A new token for the user; returned once (only its hash is kept). Commits."""
    name = (name or "").strip()
    if not name:
        raise DomainError(N_("Give the token a name, e.g. the machine or script that uses it."), field="name")
    if len(name) > 80:
        raise DomainError(N_("The name may have at most %(n)s characters."), field="name", n=80)
    if scope not in {s.value for s in TokenScope}:
        raise DomainError(N_("Choose what the token may do: read only, or read and submit."), field="scope")
    if days not in LIFETIMES:
        raise DomainError(N_("Choose how long the token stays valid."), field="days")
    now = utcnow()
    if len(active_tokens(session, user.id, now)) >= MAX_ACTIVE:
        raise DomainError(N_("You already have %(n)s valid tokens. Revoke one you no longer use first."),
                          field="name", n=MAX_ACTIVE)
    token = "hub_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, name=name, token_hash=digest(token), prefix=token[:PREFIX_LEN],
                         scope=scope, created_at=now,
                         expires_at=None if days is None else now + timedelta(days=days)))
    session.commit()
    return token


def tokens_of(session: Session, user_id: int) -> list[ApiToken]:
    """The user's tokens that were not revoked (expired ones included, so their owner sees why), newest first."""
    return list(session.exec(select(ApiToken).where(ApiToken.user_id == user_id, col(ApiToken.revoked_at).is_(None))
                             .order_by(col(ApiToken.created_at).desc(), col(ApiToken.id).desc())))


def active_tokens(session: Session, user_id: int, now: datetime | None = None) -> list[ApiToken]:
    now = now or utcnow()
    return [t for t in tokens_of(session, user_id) if t.expires_at is None or t.expires_at > now]


def revoke(session: Session, user_id: int, token_id: int) -> ApiToken:
    """Revoke one of the user's own tokens (another user's is not found). Commits."""
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user_id or token.revoked_at is not None:
        raise NotFound(N_("No such token."), field="token")
    token.revoked_at = utcnow()
    session.add(token)
    session.commit()
    return token


def revoke_all(session: Session, user_id: int, *, commit: bool = True) -> int:
    """Revoke every token of the user; how many. With commit=False it joins the caller's change."""
    result = session.execute(update(ApiToken).where(col(ApiToken.user_id) == user_id,
                                                    col(ApiToken.revoked_at).is_(None))
                             .values(revoked_at=utcnow()))
    if commit:
        session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def lookup(session: Session, token: str) -> TokenInfo | None:
    """The token's row as a TokenInfo (revoked and expired ones too), or None for an unknown token."""
    if not token:
        return None
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == digest(token))).first()
    if row is None or row.id is None:
        return None
    return TokenInfo(row.id, row.user_id, row.scope, row.expires_at, row.last_used_at, row.revoked_at)


def due_for_touch(info: TokenInfo, now: datetime) -> bool:
    return info.last_used_at is None or now - info.last_used_at >= TOUCH_EVERY


def touch(session: Session, token_id: int, now: datetime | None = None) -> bool:
    """Record a use (at most once per TOUCH_EVERY: a later call in the same minute writes nothing). Commits."""
    now = now or utcnow()
    result = session.execute(update(ApiToken).where(
        col(ApiToken.id) == token_id,
        or_(col(ApiToken.last_used_at).is_(None), col(ApiToken.last_used_at) <= now - TOUCH_EVERY))
        .values(last_used_at=now))
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a working token stands for (and its use recorded), or None. Without hub.web's caches."""
    info = lookup(session, token)
    now = utcnow()
    if info is None or info.refusal(now) is not None:
        return None
    user = session.get(User, info.user_id)
    if user is None or not user.active:
        return None
    if due_for_touch(info, now):
        touch(session, info.id, now)
    return user
