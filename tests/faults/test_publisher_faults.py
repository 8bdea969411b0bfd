"""BEHAVIOUR §11, publisher side: what an encoder can do to Relay on air, and what the
platform must still receive (tests/faults/show.py: "nothing lost").

Killed, stalled, black, frozen, silent, desynchronised publishers and timestamps
jumping back and forward are covered in tests/integration (test_failover_e2e.py,
test_run_watch.py); here: a reconnect loop, a resolution change, the 32-bit
timestamp wrap and corrupt packets, each through the whole chain to nginx.

The four shows are independent (each its own nginx, relay and encoders) and mostly wait
on the show's clock: they run three at a time, started once per module, and each test
reads its own show's outcome (its failure is raised there). The relays start one after
the other (a relay's start-up is its busiest moment, and each has 20 s for it), and the
platform's recordings are decoded by the tests once every show has ended: no decoding
in this process holds up the encoders' threads of a show still on air.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.faults.show import (
    PLATFORM_KEY,
    Clip,
    ClipFeed,
    Show,
    assert_nothing_lost,
    before,
    event_time,
    faults,
    longest_run_ms,
    read_timeline,
)
from tests.support.raw_rtmp import AUDIO, VIDEO, FlvTag
from tests.support.recording import read_recording
from tests.support.relay_proc import RelayProcess
from tests.support.waiting import until_sync

pytestmark = [pytest.mark.faults, pytest.mark.integration]

# A minute of reconnects would be the real thing; 16 s keeps the suite short and still
# makes four reconnects through as many failovers and failbacks (with the failover
# timings shortened to match: failback after 1 s healthy).
RECONNECT_LOOP_S = 16.0
RECONNECT_ON_S, RECONNECT_OFF_S = 3.5, 0.5
AT_ONCE = 3  # shows on air at the same time (the reconnect loop, the longest, beside the others in turn)
STARTING = threading.Lock()  # held while a show starts its nginx and relay


def start_show(tmp_path: Path, stack: ExitStack, **kw: Any) -> Show:
    with STARTING:
        return Show(tmp_path, stack, **kw)


def played(feed: ClipFeed, seconds: float, what: str) -> None:
    """Wait until ``feed`` (an encoder) has sent ``seconds`` of media in all: the show's own
    clock, which a loaded machine slows down with everything else."""
    until_sync(lambda: feed.publisher.played_s >= seconds or not feed.playing, seconds + 30, what)
    assert feed.playing, feed.error


Shows = dict[str, Future[Any]]


@pytest.fixture(scope="module")
def shows(tmp_path_factory: pytest.TempPathFactory, small_main: Clip, small_backup: Clip, main_clip: Clip,
          backup_clip: Clip) -> Iterator[Shows]:
    """Every show started, AT_ONCE at a time (the longest first); a test waits for its own."""
    def start(name: str, show: Any, *clips: Clip) -> Future[Any]:
        return pool.submit(show, tmp_path_factory.mktemp(name), *clips)

    with ThreadPoolExecutor(AT_ONCE, thread_name_prefix="show") as pool:
        yield {"reconnect": start("reconnect", reconnecting_in_a_loop, small_main, small_backup),
               "corrupt": start("corrupt", corrupt_packets, main_clip, backup_clip),
               "resolution": start("resolution", resolution_change, small_main, main_clip),
               "wrap": start("wrap", timestamp_wrap, small_main, small_backup)}


def outcome(shows: Shows, name: str) -> Any:
    wait(shows.values(), timeout=300)  # every show ended: see the module's docstring
    return shows[name].result(timeout=0)


def reconnecting_in_a_loop(tmp_path: Path, small_main: Clip,
                           small_backup: Clip) -> tuple[Show, RelayProcess, Path, int, float]:
    with ExitStack() as stack:
        show = start_show(tmp_path, stack, failover={"healthy_for_s": 0.5, "failback_after_s": 1.0,
                                                      "min_dwell_s": 0.5})
        backup = show.feed("backup", small_backup)
        show.on_air("backup")
        backup_since = event_time(show.relay.wait_for("input_connected", input="backup"))
        cycles = 0
        end = time.monotonic() + RECONNECT_LOOP_S
        while time.monotonic() < end:
            main = show.feed("main", small_main)
            cycles += 1
            show.relay.wait_new("input_connected", cycles - 1, input="main", timeout=5)
            played(main, RECONNECT_ON_S, "main's encoder on for a while")
            main.stop()
            show.relay.wait_new("input_disconnected", cycles - 1, input="main", timeout=5)
            played(backup, backup.publisher.played_s + RECONNECT_OFF_S, "main's encoder off for a while")
        # the backup carries the show after the last drop
        played(backup, backup.publisher.played_s + 1.0, "the backup on after the last drop")
        relay = show.relay
        recording = show.finish()[PLATFORM_KEY]
    return show, relay, recording, cycles, backup_since


def test_publisher_reconnecting_in_a_loop(shows: Shows) -> None:
    """The host's encoder drops and reconnects every few seconds (a flaky cable) while
    the backup is live: Relay follows it on and off air, the platform sees one stream."""
    show, relay, recording, cycles, backup_since = outcome(shows, "reconnect")
    rec = read_recording(recording)
    # every reconnect was accepted (none refused as "a second publisher on a live key")
    assert len(relay.events("input_connected", input="main")) == cycles
    assert not relay.events("input_rejected", input="main")
    # Relay put main back on air after reconnects and took it off at each drop...
    to_main = [s for s in relay.events("switched") if s["to"] == "main"]
    assert len(to_main) >= 2, relay.events("switched")
    assert all(s["reason"] == "failback" for s in to_main)
    # ...while the backup never faltered
    assert not faults(relay, worse_than=3, input="backup", since=backup_since, until=show.finished_at)
    assert not before(relay, "input_disconnected", show.finished_at, input="backup")
    assert rec.labels().count("main") >= 2, rec.runs()
    assert_nothing_lost(rec, min_media_ms=round(RECONNECT_LOOP_S * 1000))


def resolution_change(tmp_path: Path, small_main: Clip,
                      main_clip: Clip) -> tuple[Show, RelayProcess, Path, float]:
    with ExitStack() as stack:
        show = start_show(tmp_path, stack)
        main = show.feed("main", small_main, seconds=3.0, then=((main_clip, 3600.0),))
        show.on_air("main")
        connected = event_time(show.relay.wait_for("input_connected", input="main"))
        assert main.publisher.played_s < 3.0, "main on air before the change"
        played(main, main.publisher.played_s + 5.5, "5.5 s more of main, both sizes")
        relay = show.relay
        recording = show.finish()[PLATFORM_KEY]
    return show, relay, recording, connected


def test_resolution_change_mid_stream(shows: Shows) -> None:
    """The host's encoder goes from 320x180 to 640x360 on the same connection (a new
    sequence header, then the new pictures): the platform is told, and decodes both."""
    show, relay, recording, connected = outcome(shows, "resolution")
    rec = read_recording(recording)

    on_air = {"since": connected, "until": show.finished_at}
    assert not faults(relay, worse_than=2, input="main", **on_air), "a resolution change is no fault"
    assert rec.sizes.index((320, 180)) < rec.sizes.index((640, 360)), rec.sizes
    main_frames = [(dts, label) for dts, label in rec.video if label == "main"]
    assert len(main_frames) >= 115, rec.runs()  # ~5 s at 30 fps, both sizes recognised as main
    assert_nothing_lost(rec)


def timestamp_wrap(tmp_path: Path, small_main: Clip,
                   small_backup: Clip) -> tuple[Show, RelayProcess, Path, float]:
    wrap_at_ms = 3500
    start = 0x1_0000_0000 - wrap_at_ms

    def near_wrap(ts: int, wall: float, kind: int) -> int:
        return (start + ts) & 0xFFFF_FFFF

    with ExitStack() as stack:
        show = start_show(tmp_path, stack)
        main = show.feed("main", small_main, timestamp=near_wrap)
        show.feed("backup", small_backup)
        show.on_air("main")
        connected = event_time(show.relay.wait_for("input_connected", input="main"))
        assert main.publisher.played_s < wrap_at_ms / 1000, "main on air before the wrap"
        # on air across the wrap, and beyond
        played(main, main.publisher.played_s + wrap_at_ms / 1000 + 2.5, "main across the wrap")
        relay = show.relay
        recording = show.finish()[PLATFORM_KEY]
    return show, relay, recording, connected


def test_32_bit_timestamp_wrap(shows: Shows) -> None:
    """RTMP timestamps are 32-bit milliseconds: an encoder up for 49.7 days wraps to 0
    (Adobe RTMP 1.0, 5.3.1.3). Relay must read it as time going on, not a jump back."""
    show, relay, recording, connected = outcome(shows, "wrap")
    rec = read_recording(recording)

    assert not faults(relay, worse_than=3, input="main", since=connected, until=show.finished_at)
    switches = before(relay, "switched", show.finished_at)
    assert switches[-1]["to"] == "main", "nothing made Relay leave main"
    assert longest_run_ms(rec, "main") >= 5000, rec.runs()
    assert_nothing_lost(rec)


def corrupt_packets(tmp_path: Path, main_clip: Clip,
                    backup_clip: Clip) -> tuple[Show, RelayProcess, Path, dict[str, int]]:
    rng = random.Random(1971)
    counts = {"flipped": 0, "truncated": 0, "garbage": 0}
    n = 0

    def damage(tag: FlvTag, wall: float) -> bytes | None:
        nonlocal n
        if wall < 3.0:
            return tag.body
        n += 1
        body = bytearray(tag.body)
        if n % 23 == 0:
            counts["garbage"] += 1
            # never empty: Relay closes a connection that sends an empty message (no encoder
            # does; a flood of them is an attack), and the rest is what this test is about
            return rng.randbytes(rng.randrange(1, 300))
        if tag.kind == VIDEO and n % 7 == 0 and len(body) > 8:
            counts["flipped"] += 1
            for _ in range(8):  # inside the NAL units, past the 5-byte AVC tag header
                body[rng.randrange(5, len(body))] ^= 0xFF
            return bytes(body)
        if n % 11 == 0:
            counts["truncated"] += 1
            return bytes(body[:rng.randrange(1, max(2, len(body)))])
        if tag.kind == AUDIO and n % 13 == 0:
            body[rng.randrange(2, len(body))] ^= 0x5A
            return bytes(body)
        return tag.body

    with ExitStack() as stack:
        show = start_show(tmp_path, stack)
        main = show.feed("main", main_clip, body=damage)
        show.feed("backup", backup_clip)
        show.on_air("main")
        played(main, main.publisher.played_s + 8.0, "8 s more of damaged main")
        assert main.error is None, main.error
        relay = show.relay
        recording = show.finish()[PLATFORM_KEY]
    return show, relay, recording, counts


def test_corrupt_packets(shows: Shows) -> None:
    """Once main is on air, its encoder (or a broken network box) sends video with
    flipped bytes, truncated video and audio, and tags of pure garbage."""
    show, relay, recording, counts = outcome(shows, "corrupt")
    rec, refused, decoded = read_timeline(recording)

    assert min(counts.values()) >= 5, counts
    # damaged frames make the measured frame rate wobble: the slate must not be
    # re-encoded for every wobble (it once was, ten times a second)
    assert len(relay.events("slate_ready")) <= 6, [e["fps"] for e in relay.events("slate_ready")]
    assert not before(relay, "input_disconnected", show.finished_at, input="backup")
    assert_nothing_lost(rec)
    # the damage reaches the viewer as damaged pictures, not as a broken stream
    assert decoded >= 0.8 * len(rec.video_dts), (decoded, refused, len(rec.video_dts))
