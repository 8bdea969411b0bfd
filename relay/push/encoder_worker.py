"""One daemon thread that runs blocking encodes (the bridge's still, the slate) off the loop.

Like a one-thread ``ThreadPoolExecutor`` (jobs run one at a time, in order; a job not
started yet can be cancelled), with one difference that matters on air: the thread is a
daemon. An encoder that never returns (the bundled SVT-AV1 has been seen to deadlock
inside ``svt_av1_enc_get_packet``) is *abandoned*: its owner stops waiting for it and
takes a fresh worker, and the stuck thread neither runs later jobs nor holds up the
process at exit (a pool's threads are joined at exit, so a stuck one would hang a
``systemctl stop``).
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
Job = tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]]


class EncoderWorker:
    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((future, fn, args))
        return future

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)
            else:
                future.set_result(result)

    def abandon(self) -> EncoderWorker:
        """Give up on the job this worker is stuck in (and the ones queued behind it, which
        are cancelled); returns a fresh worker to use instead."""
        self.shutdown()
        return EncoderWorker(self._name)

    def shutdown(self) -> None:
        """No more jobs: the queued ones are cancelled, the running one (if any) finishes
        on its own (never waited for)."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[0].cancel()
        self._jobs.put(None)
