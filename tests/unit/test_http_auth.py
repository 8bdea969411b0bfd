"""Dashboard accounts: hashed passwords, tokens, sessions and the login limit on a fake clock."""

from __future__ import annotations

import io

import pytest
from pydantic import SecretStr

from relay.cli import main
from relay.control.http.auth import Accounts, LoginLimiter, Sessions, hash_password, is_hash, verify_password
from relay.settings import HttpUser

FAST = 2**10  # the tests' own hashes; the default cost is tested once, in test_http_hardening.py


def test_passwords_are_kept_only_as_scrypt_hashes() -> None:
    stored = hash_password("s3cret-pass", n=FAST)
    assert is_hash(stored) and "s3cret" not in stored
    assert verify_password("s3cret-pass", stored) and not verify_password("s3cret-pasS", stored)
    assert hash_password("s3cret-pass", n=FAST) != stored  # salted
    accounts = Accounts(n=FAST, users=[
        HttpUser(name="alice", role="operator", password=SecretStr("s3cret-pass")),
        HttpUser(name="vic", password=SecretStr(stored), token=SecretStr("tok-0123456789abcdef"))])
    alice = accounts.check_password("alice", "s3cret-pass")
    assert alice is not None and alice.role == "operator" and is_hash(alice.password_hash or "")
    assert accounts.check_password("vic", "s3cret-pass") is not None  # a hash from the file works as is
    assert accounts.check_password("alice", "wrong") is None
    assert accounts.check_password("nobody", "s3cret-pass") is None
    vic = accounts.check_token("tok-0123456789abcdef")
    assert vic is not None and vic.name == "vic" and vic.role == "viewer"
    assert accounts.check_token("tok-0123456789abcde") is None and accounts.check_token("") is None


def test_sessions_expire_and_end() -> None:
    now = [1000.0]
    sessions = Sessions(3600, clock=lambda: now[0])
    accounts = Accounts([HttpUser(name="alice", role="operator", token=SecretStr("tok-abcdefgh-ijklmnop"))],
                        n=FAST)
    account = accounts.check_token("tok-abcdefgh-ijklmnop")
    assert account is not None
    cookie, session = sessions.create(account)
    assert sessions.get(cookie) is session and len(session.csrf) >= 24
    assert sessions.get(cookie + "x") is None and sessions.get(None) is None
    now[0] += 3599
    assert sessions.get(cookie) is session
    now[0] += 2
    assert sessions.get(cookie) is None  # expired
    cookie, _ = sessions.create(account)
    sessions.end(cookie)
    assert sessions.get(cookie) is None


def test_failed_logins_are_limited_per_client_and_user_then_forgiven() -> None:
    now = [0.0]
    limiter = LoginLimiter(attempts=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("10.0.0.5", "alice") == 0
        limiter.failed("10.0.0.5", "alice")
        now[0] += 1
    wait = limiter.retry_after("10.0.0.5", "alice")
    assert 55 < wait <= 60
    assert limiter.retry_after("10.0.0.6", "alice") == 0  # another client is not punished
    assert limiter.retry_after("10.0.0.5", "bob") == 0  # nor another user, up to the client limit
    now[0] += 61
    assert limiter.retry_after("10.0.0.5", "alice") == 0


def test_one_client_guessing_many_user_names_is_limited_too() -> None:
    now = [0.0]
    limiter = LoginLimiter(attempts=2, window_s=60, clock=lambda: now[0])
    for n in range(8):  # 4 x the per-user limit, each name tried once
        limiter.failed("10.0.0.5", f"user{n}")
    assert limiter.retry_after("10.0.0.5", "someone-else") > 0


def test_relay_hash_password_prints_a_hash_the_dashboard_accepts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("studio-Pa55\n"))
    assert main(["hash-password"]) == 0
    stored = capsys.readouterr().out.strip()
    assert is_hash(stored) and verify_password("studio-Pa55", stored)
