"""Accounts of the dashboard and HTTP API (SPEC 7a): who may look, who may act.

- Passwords are kept only as scrypt hashes (a plain password from the configuration is
  hashed at start-up; a hash from `relay hash-password` is used as it is). Checking
  one costs ~50 ms of CPU, so callers run :meth:`Accounts.check_password` in a worker
  thread (hashlib releases the GIL): the event loop never waits on it.
- API tokens (``Authorization: Bearer``) are kept as SHA-256 digests and compared in
  constant time.
- :class:`Sessions`: a random cookie value per login, stored by digest with its user,
  role, CSRF token and expiry. The cookie is HttpOnly and SameSite=Strict; every
  state-changing request from the page must also carry the session's CSRF token.
- :class:`LoginLimiter`: failed logins per (client, user) and per client within a
  window; over the limit, logins are refused until the window has passed. Pure, driven
  by a clock, so it is unit-tested without sleeping.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from relay.settings import HttpUser

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB and ~50 ms per check (RFC 7914 interactive)
SCHEME = "scrypt"
SESSION_LIMIT = 1000  # live sessions kept; the oldest is dropped beyond it
CLIENT_FACTOR = 4  # a client may fail this many times the per-user limit across user names


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$16384$8$1$<salt>$<hash>``: what `relay hash-password` prints."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=64 * 1024 * 1024, dklen=32)
    return f"{SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def is_hash(text: str) -> bool:
    return text.startswith(SCHEME + "$") and len(text.split("$")) == 6


def verify_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = _unb64(digest)
        got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=64 * 1024 * 1024, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def _token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    role: str  # viewer / operator
    password_hash: str | None
    token_digest: bytes | None


class Accounts:
    """The configured users, with nothing but hashes kept."""

    def __init__(self, users: list[HttpUser]) -> None:
        self._by_name: dict[str, Account] = {}
        for user in users:
            password = user.password.get_secret_value() if user.password is not None else None
            stored = None if password is None else password if is_hash(password) else hash_password(password)
            token = user.token.get_secret_value() if user.token is not None else None
            self._by_name[user.name] = Account(user.name, user.role, stored,
                                               None if token is None else _token_digest(token))
        # Checking an unknown name costs the same as a known one (no user-name oracle).
        self._dummy = hash_password(secrets.token_hex(8))

    def check_password(self, name: str, password: str) -> Account | None:
        """Blocking (scrypt): call it in a worker thread."""
        account = self._by_name.get(name)
        stored = account.password_hash if account is not None else None
        ok = verify_password(password, stored or self._dummy)
        return account if ok and account is not None and stored is not None else None

    def check_token(self, token: str) -> Account | None:
        digest = _token_digest(token)
        found = None
        for account in self._by_name.values():  # every one compared: constant time in the match
            if account.token_digest is not None and hmac.compare_digest(account.token_digest, digest):
                found = account
        return found


@dataclass(slots=True)
class Session:
    user: str
    role: str
    csrf: str
    expires: float


class Sessions:
    """Logged-in browsers: cookie value (kept as its digest) → session."""

    def __init__(self, lifetime_s: float, clock: Callable[[], float] = time.time) -> None:
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._sessions: collections.OrderedDict[bytes, Session] = collections.OrderedDict()

    def create(self, account: Account) -> tuple[str, Session]:
        cookie = secrets.token_urlsafe(32)
        session = Session(account.name, account.role, secrets.token_urlsafe(24),
                          self._clock() + self.lifetime_s)
        self._sessions[_token_digest(cookie)] = session
        while len(self._sessions) > SESSION_LIMIT:
            self._sessions.popitem(last=False)
        return cookie, session

    def get(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        key = _token_digest(cookie)
        session = self._sessions.get(key)
        if session is None:
            return None
        if session.expires <= self._clock():
            del self._sessions[key]
            return None
        return session

    def end(self, cookie: str | None) -> None:
        if cookie:
            self._sessions.pop(_token_digest(cookie), None)


class LoginLimiter:
    """At most ``attempts`` failed logins per (client, user) and ``CLIENT_FACTOR`` times as
    many per client within ``window_s``; beyond that, :meth:`retry_after` says how long
    the client must wait. A success does not erase the failures (no reset by guessing
    one account right)."""

    def __init__(self, attempts: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[tuple[str, str], collections.deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> collections.deque[float]:
        times = self._failures.get(key)
        if times is None:
            return collections.deque()
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, client: str, user: str) -> float:
        """Seconds until this client may try this user again (0: it may now)."""
        now = self._clock()
        waits = [0.0]
        for key, limit in (((client, user), self.attempts), ((client, ""), self.attempts * CLIENT_FACTOR)):
            times = self._recent(key, now)
            if len(times) >= limit:
                waits.append(times[len(times) - limit] + self.window_s - now)
        return max(waits)

    def failed(self, client: str, user: str) -> None:
        now = self._clock()
        for key in ((client, user), (client, "")):
            self._failures.setdefault(key, collections.deque()).append(now)
        if len(self._failures) > 10_000:  # a flood of names: forget the stale ones
            for key in list(self._failures):
                self._recent(key, now)
