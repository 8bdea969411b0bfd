"""What the dashboard's program preview costs the relay (docs/ARCHITECTURE.md quotes it).

    .venv/bin/python -m bench.preview_cost [--seconds 20]

A real `relay run` with two ffmpeg publishers (640x360 30 fps H.264 + AAC, as the tests'
studio) and no output: the relay's CPU time (user + system, from /proc) over the same
span with no page watching, then with 1 and with 4 pages reading /api/preview (plain
WebSocket clients that read everything, so the browser's own cost is not counted), and
the bytes each page received. Then the fMP4 writer alone on this machine's clock: the
time per on-air packet.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import aiohttp
import psutil

from relay.control.http import fmp4
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from tests.support.publishers import ffmpeg_publisher
from tests.support.relay_proc import RelayProcess
from tests.support.relay_toml import studio_config
from tests.support.tools import free_port

TOKEN = "preview-cost-token-0123456789"


async def watch(url: str, pages: int, seconds: float) -> list[int]:
    """`pages` WebSocket readers for `seconds`: the bytes each received."""
    received = [0] * pages

    async def page(n: int, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(url, headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    msg = await ws.receive(timeout=max(0.01, end - time.monotonic()))
                except TimeoutError:
                    break
                if msg.type == aiohttp.WSMsgType.BINARY:
                    received[n] += len(msg.data)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(page(n, session) for n in range(pages)))
    return received


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def writer_cost() -> float:
    """Microseconds per packet of fmp4.fragment, over a second of 30 fps video with AAC."""
    video = VideoConfig("h264", bytes([1, 0x64, 0, 0x1F, 0xFF, 0xE0]), 640, 360)
    audio = AudioConfig("aac", bytes([0x11, 0x90]), 48000, 2)
    packets = [MediaPacket(Track.VIDEO, i * 33, i * 33, bytes(8000), i % 30 == 0, video) for i in range(30)]
    packets += [MediaPacket(Track.AUDIO, i * 21, i * 21, bytes(300), True, audio) for i in range(47)]
    rounds = 200
    start = time.perf_counter()
    for _ in range(rounds):
        for n, pkt in enumerate(packets):
            fmp4.fragment(n, pkt, 33)
    return (time.perf_counter() - start) / (rounds * len(packets)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    seconds = parser.parse_args().seconds
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        rtmp_port, http_port = free_port(), free_port()
        extra = f"""
[http]
listen = "127.0.0.1:{http_port}"
users = [{{ name = "bench", role = "viewer", password = "bench-Pa55-word", token = "{TOKEN}" }}]
"""
        relay = stack.enter_context(RelayProcess(tmp, studio_config(tmp, rtmp_port, extra=extra)))
        relay.wait_for("started", timeout=30)
        for key, marker in (("main-key-1234", "red"), ("backup-key-5678", "blue")):
            marked = ["-vf", f"drawbox=w=64:h=64:color={marker}:t=fill"]
            stack.enter_context(ffmpeg_publisher(f"rtmp://127.0.0.1:{rtmp_port}/live/{key}",
                                                 extra_output_args=marked))
        relay.next_switch("main", timeout=30)
        assert relay.proc is not None
        proc = psutil.Process(relay.proc.pid)
        url = f"ws://127.0.0.1:{http_port}/api/preview"
        time.sleep(3.0)  # past the start's own work
        for pages in (0, 1, 4, 0):
            before, wall = cpu_seconds(proc), time.monotonic()
            if pages:
                received = asyncio.run(watch(url, pages, seconds))
            else:
                time.sleep(seconds)
                received = []
            spent = cpu_seconds(proc) - before
            wall = time.monotonic() - wall
            rate = ", ".join(f"{8 * b / wall / 1000:.0f} kbit/s" for b in received) or "-"
            print(f"pages {pages}: relay CPU {100 * spent / wall:5.1f} % of one core over {wall:.1f} s; "
                  f"each page received {rate}")
    print(f"fmp4.fragment: {writer_cost():.1f} µs per packet on this machine")


if __name__ == "__main__":
    main()
