"""`codec` (BEHAVIOUR §2, 4): an input whose video codec the show cannot switch to.

A platform follows a change of resolution at a keyframe, not a change of codec: a
stream that starts as H.264 and continues as HEVC breaks at the platform. So unless
``[failover] mixed_codecs`` allows it, an input whose video codec is not the one on
air (the *show's* codec: the first one that went out, which the media graph hands
over every watch tick) has a tier-1 `codec` fault, and the failover policy, which
never switches to a failing input, keeps off it. An input whose configuration names
the codec its encoder is set to send (``[[inputs]] codec``) has the same fault when
it sends another, even before anything is on air. The fault clears when the codecs
agree again (a reconnect in the right codec) or the input goes away.
"""

from __future__ import annotations

from relay.codec.video import label
from relay.events import EventSink
from relay.media import MediaPacket, VideoConfig
from relay.settings import ThresholdSettings
from relay.watch.fault import Fault
from relay.watch.signal import InputSignal


class CodecSignal(InputSignal):
    signal = "codec"

    def __init__(self, input_id: str, thresholds: ThresholdSettings, emit: EventSink,
                 declared: str | None = None) -> None:
        self.fault = Fault(self.signal, {1: (0.0, None)}, thresholds.clear_after_s, emit, input_id)
        self._declared = declared
        self._show: str | None = None
        self.codec: str | None = None  # the input's video codec, once its first picture came

    def on_video(self, config: VideoConfig | None) -> None:
        if config is not None:
            self.codec = config.codec

    def packet(self, now: float, pkt: MediaPacket) -> None:
        if isinstance(pkt.config, VideoConfig):
            self.on_video(pkt.config)

    def declare(self, codec: str | None) -> None:
        """The codec the input's encoder is set to send (`inputs.codec`; None: whatever it sends)."""
        self._declared = codec

    def on_show_codec(self, codec: str | None) -> None:
        """The codec on air (None: nothing went out yet, or mixing is allowed)."""
        self._show = codec

    def tick(self, now: float) -> None:
        codec = self.codec
        if codec is not None and self._show is not None and codec != self._show:
            self.fault.observe(now, 1, True, codec, self._show,
                               detail=f"sends {label(codec)}; {label(self._show)} is on air and a platform "
                                      "cannot follow a change of codec (failover.mixed_codecs)")
        elif codec is not None and self._declared is not None and codec != self._declared:
            self.fault.observe(now, 1, True, codec, self._declared,
                               detail=f"sends {label(codec)}; its encoder is set to send "
                                      f"{label(self._declared)} (inputs.codec)")
        else:
            self.fault.observe(now, 1, False, codec)
        self.fault.tick(now)

    def reset(self, now: float) -> None:
        self.codec = None
        self.fault.reset(now)
