"""The daemon encoder worker (push/encoder_worker.py) and the slate giving up a stuck encoding."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

from relay.push.encoder_worker import EncoderWorker
from relay.push.slate import SlateClip, encode_slate
from relay.push.slate_control import SlateControl
from relay.settings import SlateSettings
from tests.support.waiting import until_sync

REPO = Path(__file__).resolve().parents[2]


def test_jobs_run_one_at_a_time_in_order_and_a_queued_one_can_be_cancelled() -> None:
    worker = EncoderWorker("test-encoder")
    gate = threading.Event()
    order: list[str] = []
    first = worker.submit(lambda: (gate.wait(10), order.append("first"))[1])
    second = worker.submit(order.append, "second")
    third = worker.submit(order.append, "third")
    assert third.cancel()  # not started: cancelled
    gate.set()
    second.result(timeout=10)
    assert first.done() and order == ["first", "second"]
    failing = worker.submit(int, "not a number")
    assert isinstance(failing.exception(timeout=10), ValueError)
    worker.shutdown()


def test_an_abandoned_stuck_job_holds_up_neither_later_jobs_nor_the_process_exit() -> None:
    worker = EncoderWorker("test-encoder")
    gate = threading.Event()
    stuck = worker.submit(gate.wait, 60)
    until_sync(stuck.running, 10, "the stuck job running", poll=0.01)
    queued = worker.submit(str, "behind the stuck one")
    fresh = worker.abandon()
    assert queued.cancelled() and not stuck.done()
    assert fresh.submit(str, 42).result(timeout=10) == "42"
    gate.set()
    fresh.shutdown()

    # a process whose worker is stuck for good still exits at once
    script = ("import threading, time; from relay.push.encoder_worker import EncoderWorker; "
              "w = EncoderWorker('stuck'); running = threading.Event(); "
              "w.submit(lambda: (running.set(), threading.Event().wait())); running.wait(10); "
              "w.abandon().shutdown(); print('done')")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr
    assert time.monotonic() - started < 30  # generous: it did not wait on the stuck thread


def test_the_slate_gives_up_a_stuck_encoding_keeps_its_clip_and_encodes_again_later() -> None:
    release = threading.Event()
    calls: list[float] = []

    def encode(*args: object, **kwargs: object) -> SlateClip:
        fps = float(args[3])  # type: ignore[arg-type]
        calls.append(fps)
        if fps == 25.0:
            release.wait(60)  # this one never returns in time
        return encode_slate(*args, **kwargs)  # type: ignore[arg-type]

    async def scenario() -> None:
        slate = SlateControl(SlateSettings(), time.monotonic, encode=encode, stuck_s=1.0)
        await slate.prepare()
        first = slate.source
        assert first is not None and float(first.clip.format.rate) == 30.0
        await slate._encode(None, None, 25.0)  # stuck: given up after stuck_s
        assert slate.source is first and float(slate.source.clip.format.rate) == 30.0
        await slate._encode(None, None, 50.0)  # a fresh worker, not queued behind the stuck one
        assert slate.source is first and float(slate.source.clip.format.rate) == 50.0
        await slate.stop()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        release.set()
    assert calls == [30.0, 25.0, 50.0]
