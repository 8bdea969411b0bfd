"""The dashboard's door (BEHAVIOUR §7a), the pure parts on a fake clock: guesses counted before
they are checked, per client, per account and per known client; the scrypt cost and
hashes of any reasonable cost; sessions capped per account; the CSRF compare."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from relay.control.http.auth import (
    ACCOUNT_GUESSES,
    SCRYPT_N,
    SESSIONS_PER_ACCOUNT,
    Account,
    Accounts,
    Guess,
    LoginLimiter,
    Sessions,
    hash_password,
    hash_problem,
    verify_password,
)
from relay.settings import HttpUser


def test_the_scrypt_cost_is_current_guidance_and_stronger_hashes_verify() -> None:
    assert SCRYPT_N == 2**17
    stored = hash_password("studio-Pa55")
    assert stored.split("$")[1] == str(2**17) and verify_password("studio-Pa55", stored)
    # N=2^17 needs 128 MiB: it verifies only because maxmem is sized from N (it was a fixed 64 MiB)
    assert not verify_password("studio-Pa56", stored)


def test_a_hash_that_can_never_verify_is_refused_at_start_not_at_login() -> None:
    absurd = hash_password("x", n=2**10).replace("$1024$", f"${2**24}$")
    assert hash_problem(absurd) is not None and not verify_password("x", absurd)
    with pytest.raises(ValueError, match="alice"):
        Accounts([HttpUser(name="alice", password=SecretStr(absurd))], n=2**10)
    assert hash_problem("scrypt$1000$8$1$AAAA$AAAA") is not None  # N not a power of two


def test_guesses_sent_all_at_once_are_counted_before_any_is_checked() -> None:
    now = [0.0]
    limiter = LoginLimiter(attempts=5, window_s=300, clock=lambda: now[0])
    # 60 requests arrive together: each is admitted or refused before any hash is computed
    admitted = [g for g in (limiter.admit("10.0.0.5", "alice") for _ in range(60)) if isinstance(g, Guess)]
    assert len(admitted) == 5
    now[0] += 301
    assert isinstance(limiter.admit("10.0.0.5", "alice"), Guess)


def test_an_account_gets_at_most_its_guesses_checked_whoever_sends_them() -> None:
    now = [0.0]
    limiter = LoginLimiter(attempts=5, window_s=300, clock=lambda: now[0])
    admitted = sum(isinstance(limiter.admit(f"10.0.{n // 250}.{n % 250}", "alice"), Guess)
                   for n in range(500))
    assert admitted == ACCOUNT_GUESSES == 10


def test_guessers_elsewhere_do_not_lock_the_operator_out_of_her_own_pc() -> None:
    now = [0.0]
    limiter = LoginLimiter(attempts=5, window_s=300, clock=lambda: now[0])
    guess = limiter.admit("192.168.1.10", "alice")  # the studio PC, logged in yesterday
    assert isinstance(guess, Guess)
    limiter.forgive(guess)
    for n in range(100):
        limiter.admit(f"10.9.0.{n}", "alice")
    assert limiter.retry_after("10.9.0.200", "alice") > 0  # strangers wait
    assert isinstance(limiter.admit("192.168.1.10", "alice"), Guess)  # she does not


def test_a_right_guess_is_not_counted_as_a_failure() -> None:
    now = [0.0]
    limiter = LoginLimiter(attempts=2, window_s=300, clock=lambda: now[0])
    for _ in range(5):
        guess = limiter.admit("10.0.0.5", "alice")
        assert isinstance(guess, Guess)
        limiter.forgive(guess)


def account(name: str) -> Account:
    return Account(name, "viewer", None, None)


def test_a_thousand_logins_by_one_account_do_not_end_anothers_session() -> None:
    sessions = Sessions(3600, clock=lambda: 0.0)
    alice_cookie, alice = sessions.create(account("alice"))
    ended = []
    sessions.on_end.append(ended.append)
    for _ in range(1000):
        sessions.create(account("vic"))
    assert sessions.get(alice_cookie) is alice and sessions.alive(alice)
    assert sessions.count("vic") == SESSIONS_PER_ACCOUNT and len(ended) == 1000 - SESSIONS_PER_ACCOUNT
    assert all(s.user == "vic" for s in ended)


def test_a_session_ends_by_logout_or_by_expiry_and_says_so() -> None:
    now = [0.0]
    sessions = Sessions(60, clock=lambda: now[0])
    ended = []
    sessions.on_end.append(ended.append)
    cookie, first = sessions.create(account("alice"))
    _, second = sessions.create(account("alice"))
    sessions.end(cookie)
    assert not sessions.alive(first) and ended == [first]
    now[0] += 61
    assert not sessions.alive(second) and ended == [first, second]


def test_the_csrf_token_is_compared_whole() -> None:
    _, session = Sessions(60).create(account("alice"))
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches(session.csrf[:-1]) and not session.csrf_matches(None)
    assert not session.csrf_matches("")
