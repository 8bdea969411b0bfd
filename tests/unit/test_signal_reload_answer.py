"""`relay reload` without MQTT reads the relay's answer from the journal (BEHAVIOUR §6):
the answer must be the one to this signal, never the one to a reload a moment before."""

from __future__ import annotations

from pathlib import Path

from relay.control.signal_reload import _answer
from relay.events import ConfigReloaded, ConfigReloadRefused
from relay.journal.store import Journal
from relay.settings import JournalSettings


def test_an_answer_from_before_the_signal_is_not_this_signals_answer(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.sqlite3")
    journal = Journal(JournalSettings(path=path), relay_id="studio-a")
    journal.open_session("test")
    sent = 1_000_000.0
    journal.record_event(ConfigReloaded(ts=sent - 0.4, changed=["thresholds.black_s"], source="signal"))
    journal.close_session("test")
    assert _answer(path, sent) is None  # the last reload's answer, 0.4 s old: still waiting

    journal = Journal(JournalSettings(path=path), relay_id="studio-a")
    journal.open_session("test")
    journal.record_event(ConfigReloadRefused(ts=sent + 0.05, reason="refused", keys=["server.rtmp"],
                                             source="signal"))
    journal.close_session("test")
    answer = _answer(path, sent)
    assert answer is not None and answer["event"] == "config_reload_refused", answer
    assert answer["keys"] == ["server.rtmp"]
