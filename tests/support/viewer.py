"""A live viewer at the platform: plays the stream back from nginx-rtmp as it arrives and
notes, by wall clock, which input each decoded picture shows (the publishers' coloured
corner: red main, blue backup; tests/support/recording.py).

    with PlatformViewer(platform.url(KEY)) as viewer:
        ...
        seen_at = viewer.wait_for("backup", after=pressed_at, timeout=5)
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

import av

from tests.support.recording import _label
from tests.support.waiting import until_sync


class PlatformViewer:
    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[tuple[float, str]] = []  # (time.time() when decoded, label)
        self.error: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="platform-viewer", daemon=True)

    def __enter__(self) -> PlatformViewer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # nobuffer: hand each packet over as it arrives, like a low-latency player
                with av.open(self.url, options={"fflags": "nobuffer", "rw_timeout": "5000000"},
                             timeout=5) as container:
                    for packet in container.demux(video=0):
                        if self._stop.is_set():
                            return
                        for frame in packet.decode():
                            label = _label(frame.to_ndarray(format="rgb24"))
                            with self._lock:
                                self.seen.append((time.time(), label))
            except (av.error.FFmpegError, OSError) as e:  # not live yet, or a reconnect
                self.error = str(e)
                self._stop.wait(0.3)

    def latest(self) -> str | None:
        with self._lock:
            return self.seen[-1][1] if self.seen else None

    def wait_for(self, label: str, *, after: float, timeout: float) -> float:
        """When a picture of ``label`` was first decoded after ``after`` (time.time())."""
        def first() -> float | None:
            with self._lock:
                return next((t for t, seen in self.seen if t >= after and seen == label), None)

        def last_seen() -> str:
            with self._lock:
                tail = self.seen[-5:]
            return f"last: {tail}, error: {self.error}"

        until_sync(lambda: first() is not None, timeout, f"{label} at the platform", poll=0.02,
                   detail=last_seen)
        found = first()
        assert found is not None
        return found
