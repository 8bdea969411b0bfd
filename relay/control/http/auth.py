"""Accounts of the dashboard and HTTP API (BEHAVIOUR §7a): who may look, who may act.

- Passwords are kept only as scrypt hashes (a plain password from the configuration is
  hashed at start-up, :data:`PLAIN_N`; a hash from `relay hash-password`, N=2^17 as
  current guidance asks, is used as it is, whatever its N). Checking one of those
  costs ~0.5 s of CPU and 128 MiB, so callers run
  :meth:`Accounts.check_password` in a worker thread (hashlib releases the GIL), one
  at a time (:data:`CONCURRENT_CHECKS`): the event loop never waits on it, and a flood
  of logins cannot multiply the memory.
- API tokens (``Authorization: Bearer``, at least :data:`MIN_TOKEN_LENGTH` characters)
  are kept as SHA-256 digests and compared in constant time.
- :class:`Sessions`: a random cookie value per login, stored by digest with its user,
  role, CSRF token and expiry; at most :data:`SESSIONS_PER_ACCOUNT` per account, so
  one account logging in again and again only ends its own oldest sessions.
- :class:`LoginLimiter`: every guess (password or token) is counted *before* it is
  checked, so guesses sent all at once are held to the limit as well as guesses in a
  row. Per client and account, per client, and per account from clients that never
  logged into it (at most :data:`ACCOUNT_GUESSES` a window, whoever sends them): a
  guesser elsewhere cannot lock out the operator on the studio PC, who logged in from
  there before. Pure, driven by a clock, so it is unit-tested without sleeping.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from relay.settings import MIN_TOKEN_LENGTH, HttpUser

# RFC 7914 / OWASP: N=2^17, r=8, p=1 (128 MiB, ~0.5 s here): what `relay hash-password` makes.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
# A password the configuration gives in plain text is hashed at start only so that memory holds
# no plain text; its file holds it anyway, so a dearer hash would protect nothing and only
# slow every start (three of them took seconds on a busy PC) and every login.
PLAIN_N = 2**14
MAX_SCRYPT_MEMORY = 1024 * 1024 * 1024  # a stored hash that needs more is refused at start, loudly
SCHEME = "scrypt"
CONCURRENT_CHECKS = 1  # strangers' scrypt checks at once (128 MiB, ~0.5 s each); known clients: +1
SESSION_LIMIT = 1000  # live sessions kept in all; the oldest is dropped beyond it
SESSIONS_PER_ACCOUNT = 50  # one account's own oldest session is dropped beyond it
CLIENT_FACTOR = 4  # a client may fail this many times the per-user limit across user names
ACCOUNT_GUESSES = 10  # guesses checked per account per window from clients it does not know
KNOWN_CLIENTS = 64  # addresses remembered per account after a successful login


def scrypt_memory(n: int, r: int, p: int) -> int:
    """What hashlib.scrypt needs for these parameters (OpenSSL's count), plus slack."""
    return 128 * r * (n + p + 2) + 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, salt: bytes | None = None, n: int = SCRYPT_N) -> str:
    """``scrypt$131072$8$1$<salt>$<hash>``: what `relay hash-password` prints."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=scrypt_memory(n, SCRYPT_R, SCRYPT_P), dklen=32)
    return f"{SCHEME}${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def is_hash(text: str) -> bool:
    return text.startswith(SCHEME + "$") and len(text.split("$")) == 6


def hash_problem(stored: str) -> str | None:
    """Why a stored hash can never verify (None: it can): parameters unreadable or
    beyond :data:`MAX_SCRYPT_MEMORY`. Said at start, not discovered at a failed login."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        n_, r_, p_ = int(n), int(r), int(p)
        _unb64(salt), _unb64(digest)
    except (ValueError, TypeError):
        return "not a scrypt hash from `relay hash-password`"
    if n_ < 2 or n_ & (n_ - 1) or r_ < 1 or p_ < 1:
        return "scrypt N must be a power of 2 and r, p at least 1"
    if scrypt_memory(n_, r_, p_) > MAX_SCRYPT_MEMORY:
        return f"scrypt N={n_}, r={r_} needs more than {MAX_SCRYPT_MEMORY >> 20} MiB"
    return None


def verify_password(password: str, stored: str) -> bool:
    if hash_problem(stored) is not None:
        return False
    _, n, r, p, salt, digest = stored.split("$")
    expected = _unb64(digest)
    try:
        got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=scrypt_memory(int(n), int(r), int(p)), dklen=len(expected))
    except (ValueError, TypeError, MemoryError):
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

    def __init__(self, users: list[HttpUser], *, n: int = PLAIN_N) -> None:
        self._by_name: dict[str, Account] = {}
        self._checking = threading.BoundedSemaphore(CONCURRENT_CHECKS)
        # a client that logged into the account before has a lane of its own: a flood of
        # strangers' guesses (unknown names cost a check too) does not queue the operator
        self._checking_known = threading.BoundedSemaphore(1)
        for user in users:
            password = user.password.get_secret_value() if user.password is not None else None
            stored = password if password is None or is_hash(password) else hash_password(password, n=n)
            problem = None if stored is None else hash_problem(stored)
            if problem is not None:  # a user who strengthened the hash is told, not silently locked out
                raise ValueError(f"[http] user {user.name}: password hash unusable: {problem}")
            token = user.token.get_secret_value() if user.token is not None else None
            self._by_name[user.name] = Account(user.name, user.role, stored,
                                               None if token is None else _token_digest(token))
        # Checking an unknown name costs the same as a known one (no user-name oracle): the
        # stand-in hash has the dearest cost among the accounts'.
        costs = [int(a.password_hash.split("$")[1]) for a in self._by_name.values() if a.password_hash]
        self._dummy = hash_password(secrets.token_hex(8), n=max(costs, default=n))

    def check_password(self, name: str, password: str, *, known: bool = False) -> Account | None:
        """Blocking (scrypt, one check at a time per lane): call it in a worker thread.
        ``known``: the client logged into this account before (:meth:`LoginLimiter.knows`)."""
        account = self._by_name.get(name)
        stored = account.password_hash if account is not None else None
        with self._checking_known if known else self._checking:
            ok = verify_password(password, stored or self._dummy)
        return account if ok and account is not None and stored is not None else None

    def exists(self, name: str) -> bool:
        return name in self._by_name

    def check_token(self, token: str) -> Account | None:
        if len(token) < MIN_TOKEN_LENGTH:  # no configured token is this short
            return None
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
    key: bytes = b""  # the cookie's digest: which entry of Sessions this is

    def csrf_matches(self, sent: str | None) -> bool:
        """Constant time: the comparison says nothing about how much of a guess was right."""
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


class Sessions:
    """Logged-in browsers: cookie value (kept as its digest) → session."""

    def __init__(self, lifetime_s: float, clock: Callable[[], float] = time.time) -> None:
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._sessions: collections.OrderedDict[bytes, Session] = collections.OrderedDict()
        self._by_user: dict[str, collections.OrderedDict[bytes, None]] = {}
        self.on_end: list[Callable[[Session], None]] = []  # told when a session ends (live streams close)

    def create(self, account: Account) -> tuple[str, Session]:
        cookie = secrets.token_urlsafe(32)
        key = _token_digest(cookie)
        session = Session(account.name, account.role, secrets.token_urlsafe(24),
                          self._clock() + self.lifetime_s, key)
        self._sessions[key] = session
        mine = self._by_user.setdefault(account.name, collections.OrderedDict())
        mine[key] = None
        while len(mine) > SESSIONS_PER_ACCOUNT:  # this account's own oldest, nobody else's
            self._drop(next(iter(mine)))
        while len(self._sessions) > SESSION_LIMIT:
            self._drop(next(iter(self._sessions)))
        return cookie, session

    def get(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        key = _token_digest(cookie)
        session = self._sessions.get(key)
        if session is None:
            return None
        if session.expires <= self._clock():
            self._drop(key)
            return None
        return session

    def alive(self, session: Session) -> bool:
        """Still logged in: not ended, not expired (ends it when it just expired)."""
        if self._sessions.get(session.key) is not session:
            return False
        if session.expires <= self._clock():
            self._drop(session.key)
            return False
        return True

    def end(self, cookie: str | None) -> None:
        if cookie:
            self._drop(_token_digest(cookie))

    def count(self, user: str) -> int:
        return len(self._by_user.get(user, ()))

    def _drop(self, key: bytes) -> None:
        session = self._sessions.pop(key, None)
        if session is None:
            return
        mine = self._by_user.get(session.user)
        if mine is not None:
            mine.pop(key, None)
            if not mine:
                del self._by_user[session.user]
        for listener in self.on_end:
            listener(session)


@dataclass(slots=True)
class Guess:
    """One admitted login or token guess, counted before it was checked."""

    client: str
    user: str
    time: float
    keys: list[tuple[str, str]] = field(default_factory=list)


class LoginLimiter:
    """Guesses (password or token) counted *before* they are checked, within ``window_s``:

    - at most ``attempts`` per (client, user),
    - at most ``CLIENT_FACTOR`` times as many per client across user names,
    - at most :data:`ACCOUNT_GUESSES` per user from clients that have not logged into
      it before (its known clients keep their own per-client budget), so however many
      addresses guess, an account gets at most that many checked a window, and the
      operator's own PC is not locked out by them.

    :meth:`admit` counts a guess or says how long to wait; a guess that proves right is
    :meth:`forgiven` (a success does not erase the failures before it)."""

    def __init__(self, attempts: int, window_s: float, clock: Callable[[], float] = time.monotonic,
                 *, account_guesses: int = ACCOUNT_GUESSES) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self.account_guesses = max(account_guesses, attempts)
        self._clock = clock
        self._guesses: dict[tuple[str, str], collections.deque[float]] = {}
        self._known: dict[str, collections.OrderedDict[str, None]] = {}  # user → clients that logged in

    def _recent(self, key: tuple[str, str], now: float) -> collections.deque[float]:
        times = self._guesses.get(key)
        if times is None:
            return collections.deque()
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if not times:
            del self._guesses[key]
        return times

    def _limits(self, client: str, user: str) -> list[tuple[tuple[str, str], int]]:
        limits = [((client, user), self.attempts), ((client, ""), self.attempts * CLIENT_FACTOR)]
        if client not in self._known.get(user, ()):
            limits.append((("", user), self.account_guesses))
        return limits

    def knows(self, client: str, user: str) -> bool:
        """This client logged into this account before (its guesses have a budget of their own)."""
        return client in self._known.get(user, ())

    def retry_after(self, client: str, user: str) -> float:
        """Seconds until this client may guess this user again (0: it may now)."""
        now = self._clock()
        waits = [0.0]
        for key, limit in self._limits(client, user):
            times = self._recent(key, now)
            if len(times) >= limit:
                waits.append(times[len(times) - limit] + self.window_s - now)
        return max(waits)

    def admit(self, client: str, user: str) -> Guess | float:
        """Count this guess now (a :class:`Guess`) or say how many seconds to wait."""
        wait = self.retry_after(client, user)
        if wait > 0:
            return wait
        now = self._clock()
        guess = Guess(client, user, now)
        for key, _ in self._limits(client, user):
            self._guesses.setdefault(key, collections.deque()).append(now)
            guess.keys.append(key)
        if len(self._guesses) > 10_000:  # a flood of names: forget the stale ones
            for key in list(self._guesses):
                self._recent(key, now)
        return guess

    def forgive(self, guess: Guess) -> None:
        """The guess was right: it is not a failure, and the client is now known to the account."""
        for key in guess.keys:
            times = self._guesses.get(key)
            if times is not None:
                with contextlib.suppress(ValueError):
                    times.remove(guess.time)
        known = self._known.setdefault(guess.user, collections.OrderedDict())
        known[guess.client] = None
        known.move_to_end(guess.client)
        while len(known) > KNOWN_CLIENTS:
            known.popitem(last=False)

    def failed(self, client: str, user: str) -> None:
        """A failure counted after the fact (the old order; kept for callers that check first)."""
        self.admit(client, user)
