"""`srt_link` (BEHAVIOUR §3): the SRT connection's own statistics, as srt-live-transmit reports them."""

from __future__ import annotations

from relay.events import EventSink
from relay.settings import ThresholdSettings
from relay.watch.fault import Fault
from relay.watch.signal import InputSignal


class SrtLinkSignal(InputSignal):
    """RTT above `srt_rtt_ms` or loss above `srt_loss_pct` for `srt_hold_s` -> tier 2."""

    signal = "srt_link"

    def __init__(self, input_id: str, thresholds: ThresholdSettings, emit: EventSink) -> None:
        self._t = thresholds
        self.fault = Fault(
            self.signal, {2: (thresholds.srt_hold_s, None)}, thresholds.clear_after_s, emit, input_id
        )
        self.rtt_ms: float | None = None
        self.loss_pct: float | None = None

    def on_stats(self, now: float, rtt_ms: float, loss_pct: float) -> None:
        self.rtt_ms, self.loss_pct = rtt_ms, loss_pct
        if rtt_ms > self._t.srt_rtt_ms:
            self.fault.observe(now, 2, True, round(rtt_ms, 1), f"rtt > {self._t.srt_rtt_ms:g} ms")
        elif loss_pct > self._t.srt_loss_pct:
            self.fault.observe(now, 2, True, round(loss_pct, 2), f"loss > {self._t.srt_loss_pct:g} %")
        else:
            self.fault.observe(now, 2, False, round(rtt_ms, 1))

    def srt_stats(self, now: float, rtt_ms: float, loss_pct: float) -> None:
        self.on_stats(now, rtt_ms, loss_pct)

    def tick(self, now: float) -> None:
        self.fault.tick(now)

    def reset(self, now: float) -> None:
        self.rtt_ms = self.loss_pct = None
        self.fault.reset(now)
