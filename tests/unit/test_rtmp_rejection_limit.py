"""A flood of refused connections yields a bounded number of input_rejected events."""

from __future__ import annotations

from relay.events import Event, InputConnected, InputRejected
from relay.ingest.rtmp_server import RejectionLimiter


def test_rejections_are_limited_per_second_and_the_held_back_are_counted() -> None:
    now = [0.0]
    seen: list[Event] = []
    limiter = RejectionLimiter(seen.append, per_second=5, clock=lambda: now[0])
    for i in range(200):  # 200 garbage connections within 0.2 s
        now[0] = i * 0.001
        limiter(InputRejected(peer=f"127.0.0.1:{i}", reason="handshake error"))
    assert len(seen) == 5
    assert all(isinstance(e, InputRejected) and e.suppressed is None for e in seen)
    limiter(InputConnected(input="main"))  # other events are never held back
    assert isinstance(seen[-1], InputConnected)
    now[0] = 1.5
    limiter(InputRejected(peer="127.0.0.1:9", reason="unknown stream key"))
    last = seen[-1]
    assert isinstance(last, InputRejected) and last.suppressed == 195
    now[0] = 1.6
    limiter(InputRejected(peer="127.0.0.1:10", reason="unknown stream key"))
    nxt = seen[-1]
    assert isinstance(nxt, InputRejected) and nxt.suppressed is None
