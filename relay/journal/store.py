"""The session journal (BEHAVIOUR §8): every `relay run` recorded in SQLite.

One file holds sessions, every event of the BEHAVIOUR §7 vocabulary (commands are events
named ``command``, also seen through the ``commands`` view) and one health sample
per input, output and host per second. The post-show report reads it back.

Durability without ever holding the media plane back: callers only put rows on a
bounded queue (a full queue drops the row and counts it); ONE writer thread owns
the connection and commits at least every `commit_interval_s` (default 0.5 s), so
a crash loses at most the last second. WAL mode lets the report read while a
session is being written; ``synchronous=FULL`` makes each commit survive a power
cut too, which costs the writer thread two fsyncs a second and the caller nothing.

A session with no stop recorded was cut short: the next :class:`Journal` for the
same relay marks it ``crash``, stopped at its last recorded sign of life.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from relay.events import Event
from relay.log import get_logger
from relay.redact import redact_url, scrub_value
from relay.settings import JournalSettings, RelaySettings

log = get_logger("relay.journal")

SCHEMA_VERSION = 1
CRASH = "crash"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    relay TEXT NOT NULL,
    started REAL NOT NULL,          -- epoch seconds
    stopped REAL,                   -- NULL while running (or until the next start marks a crash)
    stop_reason TEXT,
    version TEXT,
    config TEXT                     -- JSON summary, secrets redacted
);
CREATE INDEX IF NOT EXISTS sessions_relay_started ON sessions (relay, started);

CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    session TEXT NOT NULL,
    ts REAL NOT NULL,
    name TEXT NOT NULL,
    input TEXT,
    output TEXT,
    signal TEXT,
    tier INTEGER,
    body TEXT NOT NULL              -- the event's JSON as on MQTT
);
CREATE INDEX IF NOT EXISTS events_session_ts ON events (session, ts);

CREATE VIEW IF NOT EXISTS commands AS
    SELECT id, session, ts,
           json_extract(body, '$.command') AS command,
           json_extract(body, '$.status') AS status,
           json_extract(body, '$.source') AS source,
           body
    FROM events WHERE name = 'command';

CREATE TABLE IF NOT EXISTS health (
    session TEXT NOT NULL,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,             -- input / output / host
    subject TEXT NOT NULL,          -- input or output id; "host"
    connected INTEGER,
    fps REAL,
    bitrate_kbps REAL,
    drift_ms REAL,
    luma REAL,
    loudness_dbfs REAL,
    jitter_ms REAL,
    url_index INTEGER,              -- outputs
    status TEXT,                    -- outputs: pushing / reconnecting / failed
    body TEXT NOT NULL              -- the rest of the sample as JSON (what has no column)
);
CREATE INDEX IF NOT EXISTS health_session_subject_ts ON health (session, kind, subject, ts);
"""

_BATCH = 500  # rows per transaction at most: the writer's hand holds no more than this
_INPUT_COLUMNS = ("fps", "bitrate_kbps", "drift_ms", "luma", "loudness_dbfs", "jitter_ms")


class JournalError(Exception):
    """The journal file cannot be opened or created (path, permission, corrupt file)."""


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    relay: str
    started: float
    stopped: float | None
    stop_reason: str | None
    version: str | None
    config: dict[str, Any]

    @property
    def duration_s(self) -> float | None:
        return None if self.stopped is None else max(0.0, self.stopped - self.started)


def config_summary(settings: RelaySettings) -> dict[str, Any]:
    """What the report needs to know about the configuration, with no secret in it:
    inputs (id, kind, priority), outputs (id, redacted URLs), failover and thresholds."""
    return {
        "id": settings.id,
        "inputs": [{"id": i.id, "kind": i.kind, "priority": i.priority} for i in settings.inputs],
        "outputs": [
            {"id": o.id, "enabled": o.enabled, "urls": [redact_url(u.get_secret_value()) for u in o.urls]}
            for o in settings.outputs
        ],
        "failover": settings.failover.model_dump(),
        "thresholds": settings.thresholds.model_dump(),
    }


class EarlyEvents:
    """The journal's bus sink from the first event on, while the journal itself is still
    being opened in a worker thread (SQLite open, migration, crash marking and pruning
    take as long as the disk makes them: the relay listens for its encoders meanwhile).
    Events are kept in order (at most ``limit``; beyond that the oldest are dropped and
    counted) and handed to the journal once its session is open. Any thread may emit."""

    def __init__(self, limit: int = 2000) -> None:
        self._lock = threading.Lock()
        self._early: list[Event] = []
        self._limit = limit
        self._journal: Journal | None = None
        self.dropped = 0

    def __call__(self, event: Event) -> None:
        with self._lock:
            journal = self._journal
            if journal is None:
                self._early.append(event)
                if len(self._early) > self._limit:
                    del self._early[0]
                    self.dropped += 1
                return
        journal.record_event(event)

    def attach(self, journal: Journal) -> None:
        """The journal's session is open: what came before goes in first."""
        with self._lock:
            early, self._early = self._early, []
            for event in early:
                journal.record_event(event)
            self._journal = journal
        if self.dropped:
            log.warning("journal_early_events_dropped", dropped=self.dropped)


def open_journal(settings: RelaySettings, version: str, started: float) -> tuple[Journal, str] | None:
    """The session journal, opened (blocking: call it in a worker thread); None when the
    file cannot be opened (the relay runs on without one, and says so)."""
    try:
        journal = Journal(settings.journal, relay_id=settings.id)
        return journal, journal.open_session(version, config_summary(settings), started=started)
    except JournalError as e:
        log.error("journal_unavailable", error=str(e))
        return None


def connect(path: str, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection to the journal at `path`; read-only ones never create the file."""
    if read_only:
        if not os.path.isfile(path):
            raise JournalError(f"no journal at {path}")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    else:
        conn = sqlite3.connect(path, timeout=5.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    conn.row_factory = sqlite3.Row
    return conn


def _session_from_row(row: sqlite3.Row) -> SessionInfo:
    try:
        config = json.loads(row["config"]) if row["config"] else {}
    except ValueError:
        config = {}
    return SessionInfo(
        id=row["id"], relay=row["relay"], started=row["started"], stopped=row["stopped"],
        stop_reason=row["stop_reason"], version=row["version"], config=config,
    )


def list_sessions(conn: sqlite3.Connection, relay_id: str | None = None) -> list[SessionInfo]:
    """Every session in the journal, oldest first (of one relay if `relay_id` is given)."""
    if relay_id is None:
        rows = conn.execute("SELECT * FROM sessions ORDER BY started, id").fetchall()
    else:
        rows = conn.execute(
            "SELECT * FROM sessions WHERE relay = ? ORDER BY started, id", (relay_id,)
        ).fetchall()
    return [_session_from_row(r) for r in rows]


def new_session_id(now: float) -> str:
    """Readable and sortable, unique enough for one studio: ``20240614-193012-3f9c``."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


# -- what the writer thread receives ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _EventRow:
    session: str
    ts: float
    name: str
    input: str | None
    output: str | None
    signal: str | None
    tier: int | None
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _HealthRows:
    session: str
    rows: list[tuple[Any, ...]]


_Item = _EventRow | _HealthRows


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _rest(sample: Mapping[str, Any], columns: tuple[str, ...]) -> str:
    # The columns already hold these; the body keeps the rest (SRT link, nominal fps, ...).
    return json.dumps({k: v for k, v in sample.items() if k not in columns and v is not None}, default=str)


def health_rows(session: str, ts: float, health: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """One row per input, output and the host from a `Daemon.health()` snapshot."""
    rows: list[tuple[Any, ...]] = []
    for input_id, h in (health.get("inputs") or {}).items():
        if not isinstance(h, Mapping):
            continue
        rows.append((
            session, ts, "input", str(input_id),
            None if h.get("connected") is None else int(bool(h.get("connected"))),
            *(_num(h.get(c)) for c in _INPUT_COLUMNS),
            None, None, _rest(h, (*_INPUT_COLUMNS, "connected")),
        ))
    for output_id, h in (health.get("outputs") or {}).items():
        if not isinstance(h, Mapping):
            continue
        status = _text(h.get("status"))
        index = h.get("url_index")
        rows.append((
            session, ts, "output", str(output_id),
            None if status is None else int(status == "pushing"),
            None, _num(h.get("bitrate_kbps")), None, None, None, None,
            index if isinstance(index, int) and not isinstance(index, bool) else None,
            status, _rest(h, ("status", "url_index", "bitrate_kbps")),
        ))
    host = dict(health.get("host") or {})
    # The host row also carries what was on air, so the report can draw it second by second.
    host["active_input"] = health.get("active_input")
    rows.append((session, ts, "host", "host", None, None, None, None, None, None, None, None, None,
                 json.dumps(host, default=str)))
    return rows


class Journal:
    """The daemon's journal. Not thread-hostile: `record_*` may be called from any thread.

    Lifecycle: construct (opens/creates the file, migrates, marks a previous session
    of this relay without a stop as crashed, deletes sessions older than the
    retention), :meth:`open_session`, then :meth:`record_event` / :meth:`record_health`
    as things happen, and :meth:`close_session` at shutdown.
    """

    def __init__(
        self,
        settings: JournalSettings,
        relay_id: str,
        *,
        queue_size: int = 10_000,
        commit_interval_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = settings.path
        self.relay_id = relay_id
        self._retention_s = settings.retention_days * 86400.0
        self._commit_interval_s = commit_interval_s
        self._clock = clock
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._stop_ts: float | None = None
        self._writer: threading.Thread | None = None
        self._count_lock = threading.Lock()
        self.dropped = 0  # rows refused because the queue was full (or no session is open)
        self.written = 0  # rows committed
        self.write_errors = 0  # rows lost to SQLite errors (disk full, I/O)
        self.session_id: str | None = None
        self._last_stop: str | None = None
        self._prepare()

    # -- lifecycle ---------------------------------------------------------------------

    def _prepare(self) -> None:
        parent = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(parent, exist_ok=True)
            with contextlib.closing(connect(self.path)) as conn:
                self._migrate(conn)
                self._mark_crashed(conn)
                self._apply_retention(conn)
                row = conn.execute(
                    "SELECT stop_reason FROM sessions WHERE relay = ? "
                    "ORDER BY started DESC, rowid DESC LIMIT 1",
                    (self.relay_id,),
                ).fetchone()
                self._last_stop = None if row is None else row["stop_reason"]
                conn.commit()
        except (OSError, sqlite3.Error) as e:
            raise JournalError(f"journal {self.path}: {e}") from e

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(f"journal schema {version} is newer than this Relay knows ({SCHEMA_VERSION})")
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _mark_crashed(self, conn: sqlite3.Connection) -> None:
        # The last sign of life of a session cut short is its last event or sample.
        conn.execute(
            """
            UPDATE sessions SET stop_reason = ?, stopped = max(started,
                coalesce((SELECT max(ts) FROM events WHERE session = sessions.id), started),
                coalesce((SELECT max(ts) FROM health WHERE session = sessions.id), started))
            WHERE relay = ? AND stopped IS NULL
            """,
            (CRASH, self.relay_id),
        )

    def _apply_retention(self, conn: sqlite3.Connection) -> None:
        cutoff = self._clock() - self._retention_s
        old = [r[0] for r in conn.execute(
            "SELECT id FROM sessions WHERE coalesce(stopped, started) < ?", (cutoff,)
        )]
        for session in old:
            conn.execute("DELETE FROM events WHERE session = ?", (session,))
            conn.execute("DELETE FROM health WHERE session = ?", (session,))
            conn.execute("DELETE FROM sessions WHERE id = ?", (session,))
        if old:
            log.info("journal_retention", deleted_sessions=len(old), retention_days=self._retention_s / 86400)

    def last_stop(self) -> str | None:
        """Why this relay's previous session ended (``crash`` if it recorded no stop);
        None when this is the first session in the journal."""
        return self._last_stop

    def open_session(self, version: str, config_summary: Mapping[str, Any] | None = None, *,
                     started: float | None = None) -> str:
        """Record the start of a session (``started``, epoch seconds: default now) and start
        the writer; returns the session id."""
        if self.session_id is not None:
            raise RuntimeError("a journal session is already open")
        now = self._clock() if started is None else started
        session = new_session_id(now)
        summary = json.dumps(scrub_value(dict(config_summary or {})))
        try:
            with contextlib.closing(connect(self.path)) as conn:
                conn.execute(
                    "INSERT INTO sessions (id, relay, started, version, config) VALUES (?, ?, ?, ?, ?)",
                    (session, self.relay_id, now, version, summary),
                )
                conn.commit()
        except sqlite3.Error as e:
            raise JournalError(f"journal {self.path}: {e}") from e
        self.session_id = session
        self._stop.clear()
        self._writer = threading.Thread(target=self._write_loop, name="journal-writer", daemon=True)
        self._writer.start()
        return session

    def close_session(self, reason: str, timeout_s: float = 3.0) -> None:
        """Record why the session stopped, write everything queued and join the writer."""
        if self.session_id is None:
            return
        self._stop_reason = reason
        self._stop_ts = self._clock()
        self._stop.set()
        writer = self._writer
        if writer is not None:
            writer.join(timeout_s)
            if writer.is_alive():
                # The writer is stuck (a dead disk): record the stop directly, so the
                # next start does not call a clean shutdown a crash.
                log.warning("journal_writer_stuck", queued=self._queue.qsize())
                self._write_stop(self.session_id, reason, self._stop_ts)
        self.session_id = None
        self._writer = None

    def _write_stop(self, session: str, reason: str, ts: float) -> None:
        try:
            with contextlib.closing(connect(self.path)) as conn:
                conn.execute("UPDATE sessions SET stopped = ?, stop_reason = ? WHERE id = ?",
                             (ts, reason, session))
                conn.commit()
        except sqlite3.Error as e:
            log.error("journal_stop_not_recorded", error=str(e))

    # -- recording (any thread, never blocks) -----------------------------------------

    def record_event(self, event: Event) -> None:
        """An :class:`relay.events.EventBus` sink: queue the event, never wait."""
        session = self.session_id
        if session is None:
            self._count_drop()
            return
        body = event.to_dict(self.relay_id)
        tier = body.get("tier")
        self._offer(_EventRow(
            session=session, ts=event.ts, name=event.name,
            input=_text(body.get("input")), output=_text(body.get("output")),
            signal=_text(body.get("signal")),
            tier=tier if isinstance(tier, int) and not isinstance(tier, bool) else None,
            body=body,
        ))

    def record_health(self, ts: float, health: Mapping[str, Any]) -> None:
        """Queue one sample per input, output and the host from a `Daemon.health()` snapshot."""
        session = self.session_id
        if session is None:
            self._count_drop()
            return
        self._offer(_HealthRows(session, health_rows(session, ts, health)))

    def _offer(self, item: _Item) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._count_drop()

    def _count_drop(self) -> None:
        with self._count_lock:
            self.dropped += 1

    def stats(self) -> dict[str, int]:
        return {"queued": self._queue.qsize(), "dropped": self.dropped, "written": self.written,
                "write_errors": self.write_errors}

    # -- the writer thread -------------------------------------------------------------

    def _write_loop(self) -> None:
        session = self.session_id
        assert session is not None
        try:
            conn = connect(self.path)
        except sqlite3.Error as e:
            log.error("journal_unavailable", error=str(e))
            return
        pending: list[_Item] = []
        last_commit = time.monotonic()
        try:
            while True:
                wait = max(0.0, last_commit + self._commit_interval_s - time.monotonic())
                try:
                    pending.append(self._queue.get(timeout=wait if pending else self._commit_interval_s))
                    while len(pending) < _BATCH:
                        pending.append(self._queue.get_nowait())
                except queue.Empty:
                    pass
                stopping = self._stop.is_set()
                due = time.monotonic() - last_commit >= self._commit_interval_s or len(pending) >= _BATCH
                if pending and (stopping or due):
                    self._commit(conn, pending)
                    pending = []
                    last_commit = time.monotonic()
                elif not pending:
                    last_commit = time.monotonic()
                if stopping:
                    break
            # Everything queued before the stop was asked for is written, then the stop itself.
            while True:
                try:
                    pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(conn, pending)
            conn.execute("UPDATE sessions SET stopped = ?, stop_reason = ? WHERE id = ?",
                         (self._stop_ts, self._stop_reason, session))
            conn.commit()
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as e:
            log.error("journal_write_failed", error=str(e))
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, items: list[_Item]) -> None:
        if not items:
            return
        events = [
            (i.session, i.ts, i.name, i.input, i.output, i.signal, i.tier,
             json.dumps(scrub_value(i.body), ensure_ascii=False))
            for i in items if isinstance(i, _EventRow)
        ]
        samples = [row for i in items if isinstance(i, _HealthRows) for row in i.rows]
        try:
            conn.executemany(
                "INSERT INTO events (session, ts, name, input, output, signal, tier, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", events)
            conn.executemany(
                "INSERT INTO health (session, ts, kind, subject, connected, fps, bitrate_kbps, drift_ms, "
                "luma, loudness_dbfs, jitter_ms, url_index, status, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", samples)
            conn.commit()
            self.written += len(events) + len(samples)
        except sqlite3.Error as e:
            # A full or failing disk must not kill the writer: lose this batch, say so, go on.
            with contextlib.suppress(sqlite3.Error):
                conn.rollback()
            self.write_errors += len(events) + len(samples)
            log.error("journal_write_failed", error=str(e), rows=len(events) + len(samples))


@contextlib.contextmanager
def reading(path: str) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the journal for the report (the daemon may be writing)."""
    conn = connect(path, read_only=True)
    try:
        yield conn
    finally:
        conn.close()
