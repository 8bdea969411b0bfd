"""The `codec` signal on a fake clock: another codec than the one on air, or than the one
the input's encoder is set to send (``[[inputs]] codec``), is a tier-1 fault."""

from __future__ import annotations

from relay.events import Event, FaultCleared, FaultRaised
from relay.media import VideoConfig
from relay.settings import ThresholdSettings
from relay.watch.codec import CodecSignal

HEVC = VideoConfig("hevc", b"hvcC")
H264 = VideoConfig("h264", b"avcC")


def test_another_codec_than_the_one_on_air() -> None:
    events: list[Event] = []
    signal = CodecSignal("backup", ThresholdSettings(), events.append)
    signal.on_video(HEVC)
    signal.tick(1.0)
    assert not events  # nothing on air yet: nothing to disagree with
    signal.on_show_codec("h264")
    signal.tick(1.1)
    [raised] = events
    assert isinstance(raised, FaultRaised)
    assert (raised.signal, raised.tier, raised.value, raised.threshold) == ("codec", 1, "hevc", "h264")
    signal.on_video(H264)  # the encoder was set right
    for t in (1.2, 1.7, 2.2, 2.3):
        signal.tick(t)
    assert isinstance(events[-1], FaultCleared) and len(events) == 2


def test_another_codec_than_the_encoder_is_set_to_send() -> None:
    events: list[Event] = []
    signal = CodecSignal("main", ThresholdSettings(), events.append, declared="h264")
    signal.on_video(HEVC)
    signal.tick(0.5)
    [raised] = events
    assert isinstance(raised, FaultRaised) and raised.threshold == "h264"
    assert "inputs.codec" in (raised.detail or "")
    signal.reset(0.6)  # the encoder went away
    assert isinstance(events[-1], FaultCleared) and signal.codec is None
