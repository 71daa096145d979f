"""Login throttling: failed passwords are counted per client address and per account, never successes.

The rule (README, "Security"):

- Only failures count. A correct password costs nothing, so a user who types it right is never slowed
  by their own earlier successes, and an attacker's many accounts tried from one address are one budget.
- Per address (`LOGIN_RATE_LIMIT`, e.g. "10 per minute;50 per hour"): every failure from the address,
  whatever account it named. Over the limit, the address gets 429 for any account, without the password
  being checked (a checked password would tell the attacker which guess was right). One attacker
  hammering many accounts is stopped here, and only that address is.
- Per account (`LOGIN_ACCOUNT_RATE_LIMIT`, e.g. "5 per minute;20 per hour"): failures on one account from
  all addresses together, so many addresses (a botnet) cannot guess one password faster than that.
  Over the limit, clients that are not known to the account get 429 for it.
- A browser that has logged in to the account before carries a signed device cookie for it. For that
  account it is judged only by its own failures (the address and account buckets do not apply to it), so
  an attacker who fills the account's or a shared address's bucket (an office behind one NAT) does not
  lock the owner out on the browser they use; a stolen cookie gets no more guesses than one address.

The windows are short: an attacker can only keep an account closed to new browsers while spending
failures from addresses that are themselves limited, and the lock lifts by itself when they stop.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def account_key(email: str | None) -> str:
    """The bucket name of the account an attempt named (normalised like login does), known or not."""
    return _digest((email or "").strip().lower())


@dataclass(frozen=True)
class Attempt:
    address: str
    account: str            # account_key() of the e-mail tried
    device: str | None      # the device id of a browser that logged in to this account before


class LoginThrottle:
    """Failure buckets in the limiter's storage (memory:// per process, redis://… shared by every worker)."""

    def __init__(self, storage_uri: str, address_limits: str, account_limits: str) -> None:
        self.strategy = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self.address_limits: list[RateLimitItem] = parse_many(address_limits)
        self.account_limits: list[RateLimitItem] = parse_many(account_limits)

    def _buckets(self, attempt: Attempt) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
        if attempt.device is not None:
            return [(item, ("login-device", attempt.account, attempt.device)) for item in self.address_limits]
        return ([(item, ("login-address", attempt.address)) for item in self.address_limits]
                + [(item, ("login-account", attempt.account)) for item in self.account_limits])

    def refused(self, attempt: Attempt) -> bool:
        """True when one of the attempt's buckets is full: answer 429 without checking the password."""
        return any(not self.strategy.test(item, *keys) for item, keys in self._buckets(attempt))

    def failed(self, attempt: Attempt) -> None:
        """Count a wrong password in every bucket of the attempt."""
        for item, keys in self._buckets(attempt):
            self.strategy.hit(item, *keys)
