"""A bare RTMP publisher for tests that need what real encoders refuse to send.

libavformat will not mux timestamps that go backwards, wrap at 2^32 ms, or
corrupt payloads, so the fault cases use this: FLV tags taken from a real clip
made by the `ffmpeg` command (`make_clip`), sent over a plain socket with any
timestamps the test chooses.

    tags = read_flv_tags(make_clip(tmp_path / "clip.flv", seconds=10))
    with RawRtmpPublisher("127.0.0.1", port, "live", key) as pub:
        pub.play(tags, seconds=8, timestamp=lambda ts, wall: ts + (3000 if wall > 4 else 0))

Reference: Adobe RTMP specification 1.0 (handshake 5.2, chunking 5.3, AMF0
commands 7.2) and FLV file format (E.4).
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.tools import require
from tests.support.waiting import until_sync

AUDIO, VIDEO, SCRIPT = 8, 9, 18


@dataclass(frozen=True)
class FlvTag:
    kind: int  # 8 audio, 9 video, 18 script data
    ts: int  # ms
    body: bytes

    @property
    def is_header(self) -> bool:
        return (self.kind == VIDEO and self.body[1] == 0) or (self.kind == AUDIO and self.body[1] == 0)

    @property
    def is_keyframe(self) -> bool:
        return self.kind == VIDEO and self.body[0] >> 4 == 1


def make_clip(path: Path, seconds: float = 10, size: str = "640x360", fps: int = 30, gop: int = 30,
              video: str = "testsrc2", audio: bool = True) -> Path:
    """Encode a clip with the ffmpeg command (H.264 + AAC in FLV)."""
    ffmpeg = require("ffmpeg")
    cmd = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", f"{video}=size={size}:rate={fps}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    cmd += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
            "-g", str(gop), "-pix_fmt", "yuv420p"]
    cmd += ["-c:a", "aac", "-ac", "2"] if audio else ["-an"]
    cmd += ["-f", "flv", str(path)]
    subprocess.run(cmd, check=True, timeout=120)
    return path


def read_flv_tags(path: Path) -> list[FlvTag]:
    data = path.read_bytes()
    assert data[:3] == b"FLV", "not an FLV file"
    pos = struct.unpack(">I", data[5:9])[0] + 4
    tags = []
    while pos + 11 <= len(data):
        kind = data[pos] & 0x1F
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        ts = int.from_bytes(data[pos + 4:pos + 7], "big") | (data[pos + 7] << 24)
        body = data[pos + 11:pos + 11 + size]
        if len(body) < size:
            break
        tags.append(FlvTag(kind, ts, body))
        pos += 11 + size + 4
    return tags


def _amf_str(s: str) -> bytes:
    b = s.encode()
    return b"\x02" + struct.pack(">H", len(b)) + b


def _amf_num(n: float) -> bytes:
    return b"\x00" + struct.pack(">d", n)


def _amf_obj(props: dict[str, str | float]) -> bytes:
    out = b"\x03"
    for k, v in props.items():
        kb = k.encode()
        out += struct.pack(">H", len(kb)) + kb + (_amf_str(v) if isinstance(v, str) else _amf_num(v))
    return out + b"\x00\x00\x09"


class RawRtmpPublisher:
    CHUNK = 4096

    def __init__(self, host: str, port: int, app: str, key: str, timeout: float = 5.0) -> None:
        self.addr = (host, port)
        self.app, self.key, self.timeout = app, key, timeout
        self.sock: socket.socket | None = None
        self.received = bytearray()
        self.played_s = 0.0  # media time sent by play(), every call together
        self._reader: threading.Thread | None = None

    def __enter__(self) -> RawRtmpPublisher:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        s = socket.create_connection(self.addr, timeout=self.timeout)
        self.sock = s
        c1 = struct.pack(">II", 0, 0) + os.urandom(1528)
        s.sendall(b"\x03" + c1)
        s0s1 = self._recv_exact(1 + 1536)
        self._recv_exact(1536)  # S2
        s.sendall(s0s1[1:])  # C2 echoes S1
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self.send_message(1, 2, 0, 0, struct.pack(">I", self.CHUNK))  # Set Chunk Size
        tc_url = f"rtmp://{self.addr[0]}:{self.addr[1]}/{self.app}"
        self.send_message(20, 3, 0, 0, _amf_str("connect") + _amf_num(1)
                          + _amf_obj({"app": self.app, "type": "nonprivate", "tcUrl": tc_url}))
        self.send_message(20, 3, 0, 0, _amf_str("createStream") + _amf_num(2) + b"\x05")
        # publish on the stream the server's answer to createStream made (id 1 by convention)
        answered = _amf_str("_result") + _amf_num(2)
        reader = self._reader
        assert reader is not None
        until_sync(lambda: answered in self.received or not reader.is_alive(), self.timeout,
                   "the server's answer to createStream")
        self.send_message(20, 4, 1, 0, _amf_str("publish") + _amf_num(3) + b"\x05"
                          + _amf_str(self.key) + _amf_str("live"))

    def _recv_exact(self, n: int) -> bytes:
        assert self.sock is not None
        buf = b""
        while len(buf) < n:
            part = self.sock.recv(n - len(buf))
            if not part:
                raise ConnectionError("server closed during handshake")
            buf += part
        return buf

    def _drain(self) -> None:
        assert self.sock is not None
        try:
            while True:
                part = self.sock.recv(65536)
                if not part:
                    return
                self.received += part
        except OSError:
            return

    def send_message(self, msg_type: int, csid: int, stream_id: int, ts: int, payload: bytes) -> None:
        """One RTMP message: a type-0 chunk, then type-3 continuation chunks."""
        assert self.sock is not None
        ts &= 0xFFFFFFFF
        ext = ts >= 0xFFFFFF
        header = bytes([csid & 0x3F]) + (0xFFFFFF if ext else ts).to_bytes(3, "big")
        header += len(payload).to_bytes(3, "big") + bytes([msg_type]) + struct.pack("<I", stream_id)
        ext_bytes = struct.pack(">I", ts) if ext else b""
        out = bytearray(header + ext_bytes)
        for i in range(0, len(payload), self.CHUNK):
            if i:
                out += bytes([0xC0 | (csid & 0x3F)]) + ext_bytes
            out += payload[i:i + self.CHUNK]
        self.sock.sendall(out)

    def send_tag(self, tag: FlvTag, ts: int) -> None:
        csid = {AUDIO: 6, VIDEO: 7, SCRIPT: 5}[tag.kind]
        self.send_message(tag.kind, csid, 1, ts, tag.body)

    def play(self, tags: list[FlvTag], seconds: float,
             timestamp: Callable[[int, float, int], int] = lambda ts, wall, kind: ts,
             body: Callable[[FlvTag, float], bytes | None] = lambda tag, wall: tag.body) -> None:
        """Send the clip's tags paced in real time, looping, for `seconds`.

        `timestamp(ts, wall, kind)` maps the clip timestamp (continued across
        loops) of a tag of `kind` (AUDIO/VIDEO) to what is sent; `body(tag, wall)`
        may corrupt or drop (None) a payload.
        """
        headers = [t for t in tags if t.is_header]
        media = [t for t in tags if not t.is_header and t.kind in (AUDIO, VIDEO)]
        for t in headers:
            self.send_tag(t, timestamp(0, 0.0, t.kind))
        clip_ms = media[-1].ts + 33
        start = time.monotonic()
        played_before = self.played_s
        loop = 0
        while True:
            for t in media:
                ts = t.ts + loop * clip_ms
                wall = time.monotonic() - start
                if wall >= seconds:
                    return
                delay = ts / 1000 - wall
                if delay > 0:  # an encoder sends each frame at its own time: the pace of a live source
                    time.sleep(delay)
                    wall = time.monotonic() - start
                payload = body(t, wall)
                if payload is not None:
                    self.send_tag(FlvTag(t.kind, t.ts, payload), timestamp(ts, wall, t.kind))
                self.played_s = played_before + ts / 1000
            loop += 1

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
