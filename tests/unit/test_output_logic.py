"""The pure parts of pushing: failover policy (fake clock), bounded queue, RTMP chunking, FLV tags."""

from __future__ import annotations

import socket
import threading

import pytest

from relay.events import Event, FaultCleared, FaultRaised, OutputUrlChanged
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.push import rtmp_publish
from relay.push.queue import PushQueue
from relay.push.reconnect import PushPolicy
from relay.push.rtmp_publish import PushError, send_parts, target_of
from relay.rtmp import amf0, flv
from relay.rtmp.chunks import ChunkReader, ChunkWriter
from relay.rtmp.client_session import REPLY_BOUNDS


def policy(events: list[Event], urls: int = 2, failback: str = "auto") -> PushPolicy:
    return PushPolicy("out", [f"rtmp://h{i}/live/***" for i in range(urls)], failed_reconnects=2, stall_s=3.0,
                      backoff_s=0.5, backoff_max_s=4.0, failback=failback, probe_interval_s=30.0,
                      emit=events.append, jitter=lambda: 0.5)


def faults(events: list[Event]) -> list[tuple[str, int]]:
    return [("raise" if isinstance(e, FaultRaised) else "clear", e.tier)
            for e in events if isinstance(e, FaultRaised | FaultCleared)]


def test_retry_that_succeeds_is_a_tier3_note() -> None:
    ev: list[Event] = []
    p = policy(ev)
    p.on_connected(0.0)
    attempt = p.on_failure(10.0, "closed", "reset")
    assert attempt.url_index == 0 and attempt.delay_s == pytest.approx(0.5)
    assert p.status == "reconnecting"
    p.on_connected(10.6)
    assert faults(ev) == [("raise", 3), ("clear", 3)] and p.reconnects == 1 and p.status == "pushing"


def test_failed_reconnects_escalate_then_next_url() -> None:
    ev: list[Event] = []
    p = policy(ev)
    p.on_connected(0.0)
    p.on_failure(1.0, "closed", "gone")
    second = p.on_failure(1.5, "refused", "refused")
    assert second.url_index == 0 and second.delay_s == pytest.approx(0.5)
    third = p.on_failure(2.0, "refused", "refused")
    assert third == type(third)(1, 0.0)
    assert faults(ev) == [("raise", 3), ("clear", 3), ("raise", 2), ("clear", 2), ("raise", 1)]
    assert p.status == "failed"
    changed = [e for e in ev if isinstance(e, OutputUrlChanged)]
    assert len(changed) == 1 and (changed[0].from_index, changed[0].to_index) == (0, 1)
    p.on_connected(2.1)
    assert faults(ev)[-1] == ("clear", 1)


def test_stall_goes_to_next_url_at_once() -> None:
    ev: list[Event] = []
    p = policy(ev)
    p.on_connected(0.0)
    attempt = p.on_failure(5.0, "stalled", "no progress")
    assert attempt.url_index == 1 and attempt.delay_s == 0.0
    assert faults(ev) == [("raise", 1)]


def test_backoff_grows_per_lap_when_every_url_fails() -> None:
    ev: list[Event] = []
    p = policy(ev)
    delays = [p.on_failure(float(i), "refused", "x").delay_s for i in range(8)]
    # two failures per URL; the second moves on; a full lap of both URLs adds backoff
    assert delays[1] == 0.0 and delays[3] > 0 and delays[7] > delays[3]
    assert max(delays) <= 4.0 * 1.25


def test_failback_probe_schedule_and_return() -> None:
    ev: list[Event] = []
    p = policy(ev)
    p.on_failure(0.0, "stalled", "x")
    p.on_connected(0.5)
    assert not p.probe_due(10.0) and p.probe_due(31.0)
    assert not p.on_probe(31.0, ok=False) and not p.probe_due(40.0)
    assert p.on_probe(61.5, ok=True) and p.current == 0
    assert [e.reason for e in ev if isinstance(e, OutputUrlChanged)] == ["stalled", "failback"]


def test_manual_failback_never_probes_and_select_sets_preference() -> None:
    ev: list[Event] = []
    p = policy(ev, failback="manual")
    p.on_failure(0.0, "stalled", "x")
    assert not p.probe_due(1000.0)
    assert p.select(1000.0, 0) and p.current == 0 and not p.select(1001.0, 0)
    with pytest.raises(ValueError):
        p.select(1002.0, 5)


def _pkt(track: Track, dts: int, key: bool = False) -> MediaPacket:
    return MediaPacket(track, dts, dts, b"x", key, None)


def test_queue_starts_at_keyframe_and_trims_whole_gops() -> None:
    q = PushQueue(1000)
    q.put(_pkt(Track.AUDIO, 0))
    q.put(_pkt(Track.VIDEO, 0))
    assert len(q) == 0 and q.dropped == 2  # nothing before the first keyframe
    for t in range(0, 2500, 100):  # keyframe every 500 ms
        q.put(_pkt(Track.VIDEO, t, key=t % 500 == 0))
    assert q.span_ms <= 1000
    head = q.get(0)
    assert head is not None and head.keyframe and head.dts == 1500
    assert q.overflows > 0


def test_queue_restart_at_keyframe_and_empty_get() -> None:
    q = PushQueue(3000)
    for t, key in ((0, True), (100, False), (200, True), (300, False)):
        q.put(_pkt(Track.VIDEO, t, key))
    assert q.get(0) is not None and q.get(0) is not None  # 0 and 100 sent
    q.put(_pkt(Track.AUDIO, 250))
    q.restart_at_keyframe()
    first = q.get(0)
    assert first is not None and first.dts == 200
    q.get(0)
    q.get(0)
    assert q.get(0.01) is None


def test_chunking_round_trip_with_extended_timestamp() -> None:
    payload = bytes(range(256)) * 40  # 10240 bytes: three 4096-byte chunks
    reader = ChunkReader(**REPLY_BOUNDS)
    reader.chunk_size = 4096
    for ts in (1234, 0x1_2345_6789):
        wire = ChunkWriter(4096).message(6, 9, 1, ts, payload)
        msgs = reader.feed(wire[:100]) + reader.feed(wire[100:])
        assert [(m.type_id, m.stream_id, m.timestamp, m.payload.tobytes()) for m in msgs] == [
            (9, 1, ts & 0xFFFFFFFF, payload)]


def test_chunk_reader_follows_set_chunk_size() -> None:
    reader = ChunkReader(**REPLY_BOUNDS)
    wire = ChunkWriter(128).message(2, 1, 0, 0, (64).to_bytes(4, "big"))
    wire += ChunkWriter(64).message(3, 20, 0, 0, amf0.encode("_result", 1.0, None, {"x": 1.0}))
    msgs = reader.feed(wire)
    # Set Chunk Size is applied by the reader itself, not handed on
    assert [m.type_id for m in msgs] == [20] and reader.chunk_size == 64
    assert amf0.decode_all(msgs[0].payload.tobytes())[0] == "_result"


def test_parse_rtmp_url_keeps_query_in_stream_name() -> None:
    t = target_of("rtmps://push.example.com/live/app2/key?sign=abc")
    assert (t.host, t.port, t.app, t.stream) == ("push.example.com", 443, "live/app2", "key?sign=abc")
    assert t.tc_url == "rtmps://push.example.com/live/app2"
    with pytest.raises(PushError):
        target_of("rtmp://host/onlyapp")


def test_flv_tag_bodies() -> None:
    v = VideoConfig("h264", b"\x01avcc", 640, 360)
    a = AudioConfig("aac", b"\x11\x90", 48000, 2)
    assert flv.video_sequence_header(v) == b"\x17\x00\x00\x00\x00\x01avcc"
    assert flv.audio_sequence_header(a) == b"\xaf\x00\x11\x90"
    key = MediaPacket(Track.VIDEO, 100, 166, b"nal", True, v)
    assert flv.body(key) == (9, b"\x17\x01\x00\x00\x42nal")
    inter = MediaPacket(Track.VIDEO, 133, 133, b"p", False, v)
    assert flv.video_body(inter) == b"\x27\x01\x00\x00\x00p"
    assert flv.body(MediaPacket(Track.AUDIO, 5, 5, b"aac", True, a)) == (8, b"\xaf\x01aac")
    meta = amf0.decode_all(flv.metadata(v, a))
    assert meta[:2] == ["@setDataFrame", "onMetaData"] and meta[2]["width"] == 640.0


def test_a_message_goes_out_from_views_of_its_payload_byte_for_byte_through_a_full_socket() -> None:
    """send_parts hands the kernel the payload's chunks as views (no joined copy); a socket
    whose buffer fills takes part of a buffer at a time, and nothing is lost or repeated."""
    payload = bytes(range(256)) * 1200  # 300 KiB: 75 chunks, more than the socket buffer
    writer = ChunkWriter(4096)
    parts = writer.parts(6, 9, 1, 0x1000000, payload)  # an extended timestamp in every chunk
    assert any(isinstance(p, memoryview) and p.obj is payload for p in parts)
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    received = bytearray()

    def read() -> None:
        while chunk := b.recv(3000):
            received.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        sent = send_parts(a, parts)
    finally:
        a.close()
        reader.join(10)
        b.close()
    assert sent == len(received) and bytes(received) == writer.message(6, 9, 1, 0x1000000, payload)


def test_every_resolved_address_is_tried_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that resolves to a dead IPv6 address first and a live IPv4 one second
    (a broken IPv6 route) still connects, as OBS does; when none answers, each is named."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused
    dead_port = dead.getsockname()[1]
    answers = [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", dead_port, 0, 0)),
               (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", dead_port)),
               (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
    monkeypatch.setattr(rtmp_publish.socket, "getaddrinfo", lambda *a, **k: answers)
    try:
        sock = rtmp_publish.open_tcp("ingest.example", port, 5.0)
        assert sock.getpeername()[:2] == ("127.0.0.1", port)
        sock.close()
        answers.pop()
        with pytest.raises(PushError) as failed:
            rtmp_publish.open_tcp("ingest.example", dead_port, 5.0)
        assert "::1" in str(failed.value) and "127.0.0.1" in str(failed.value)
    finally:
        server.close()
        dead.close()
