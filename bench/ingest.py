"""The Python cost of one packet on the way in: RTMP chunks → messages → FLV → MediaPacket.

A publisher's whole conversation (handshake, connect, publish, then the clip's audio and
video tags as chunks of `--chunk-size`, as FFmpeg and OBS send them) is built once in
memory, cut into socket-sized reads, and fed to a real :class:`PublishSession` whose
input only counts the packets. The figure is the CPU time of this thread (not wall time:
other load on the machine moves it little) per packet, best of `--repeat` runs.

    python -m bench.ingest --clip main.flv [--chunk-size 4096] [--read 6144] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import av

from relay.media import MediaPacket
from relay.rtmp import amf0
from relay.rtmp.chunks import AUDIO, COMMAND_AMF0, SET_CHUNK_SIZE, VIDEO, ChunkWriter, set_chunk_size
from relay.rtmp.server_session import PublishSession

KEY = "bench-ingest-key"


class CountingPort:
    input_id = "bench"

    def __init__(self) -> None:
        self.packets = 0

    def connect(self, peer: str) -> bool:
        return True

    def packet(self, pkt: MediaPacket) -> None:
        self.packets += 1

    def disconnect(self, reason: str) -> None:
        pass


def flv_tags(clip: Path) -> list[tuple[int, int, bytes]]:
    """(RTMP type, timestamp ms, FLV tag body) of every audio and video tag, sequence headers
    included, rebuilt from the clip's packets and codec records."""
    out: list[tuple[int, int, bytes]] = []
    with av.open(str(clip)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        out.append((VIDEO, 0, b"\x17\x00\x00\x00\x00" + bytes(video.codec_context.extradata or b"")))
        out.append((AUDIO, 0, b"\xaf\x00" + bytes(audio.codec_context.extradata or b"")))
        for pkt in container.demux(video, audio):
            if pkt.size == 0 or pkt.pts is None or pkt.dts is None:
                continue
            ms = int(pkt.dts * pkt.time_base * 1000)
            if pkt.stream is video:
                cts = int((pkt.pts - pkt.dts) * pkt.time_base * 1000) & 0xFFFFFF
                head = bytes([0x17 if pkt.is_keyframe else 0x27, 1]) + cts.to_bytes(3, "big")
                out.append((VIDEO, ms, head + bytes(pkt)))
            else:
                out.append((AUDIO, ms, b"\xaf\x01" + bytes(pkt)))
    return out


def conversation(tags: list[tuple[int, int, bytes]], chunk_size: int) -> tuple[bytes, bytes]:
    """(what a publisher sends up to publishing, its media as chunks)."""
    writer = ChunkWriter()
    head = bytearray(b"\x03" + bytes(4) + b"\x09\x00\x7c\x02" + os.urandom(1528))
    setup = bytearray()
    setup += writer.message(2, SET_CHUNK_SIZE, 0, 0, set_chunk_size(chunk_size))
    writer.chunk_size = chunk_size
    for i, (name, *args) in enumerate([
            ("connect", {"app": "live", "type": "nonprivate", "tcUrl": "rtmp://127.0.0.1/live"}),
            ("createStream", None), ("publish", None, KEY, "live")]):
        setup += writer.message(3, COMMAND_AMF0, 1 if name == "publish" else 0, 0,
                                amf0.encode(name, float(i + 1), *args))
    media = bytearray()
    for type_id, ms, body in tags:
        media += writer.message(6 if type_id == VIDEO else 4, type_id, 1, ms, body)
    return bytes(head) + bytes(setup), bytes(media)


def run_once(start: bytes, media: bytes, read: int) -> tuple[float, int]:
    port = CountingPort()
    session = PublishSession(peer="127.0.0.1:1", app="live", resolve={KEY: port}.get,
                             emit=lambda e: None)
    session.receive(start[:1537])
    reply = bytes(session.outgoing)
    session.outgoing.clear()
    session.receive(reply[1:1537])  # C2 echoes S1
    session.receive(start[1537:])
    session.outgoing.clear()
    reads = [media[i:i + read] for i in range(0, len(media), read)]
    t0 = time.thread_time()
    for data in reads:
        session.receive(data)
    spent = time.thread_time() - t0
    assert session.publishing, session.closing
    return spent, port.packets


def measure(clip: Path, chunk_size: int = 4096, read: int = 6144, repeat: int = 5) -> tuple[float, int]:
    """Best µs per packet over `repeat` runs, and the packets a run delivers."""
    start, media = conversation(flv_tags(clip), chunk_size)
    best, packets = float("inf"), 0
    for _ in range(repeat):
        spent, packets = run_once(start, media, read)
        best = min(best, spent)
    return best * 1e6 / max(packets, 1), packets


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    p.add_argument("--clip", required=True, type=Path)
    p.add_argument("--chunk-size", type=int, default=4096)
    p.add_argument("--read", type=int, default=6144, help="bytes per socket read (default 6144)")
    p.add_argument("--repeat", type=int, default=5)
    opts = p.parse_args(argv)
    us, packets = measure(opts.clip, opts.chunk_size, opts.read, opts.repeat)
    print(f"{us:.1f} µs CPU per packet ({packets} packets, chunks of {opts.chunk_size}, "
          f"reads of {opts.read})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
