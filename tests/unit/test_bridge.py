"""The bridge of a fault switch: a decoded picture held still, encoded to match the target."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import av
import numpy as np

from relay.codec import h264
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.push.bridge import BRIDGE_STUCK_S, WARM_MAX_AGE_S, Bridge, BridgeRequest, encode_bridge
from relay.push.silence import aac_config
from relay.push.slate import SlateClip, encode_still
from tests.support.waiting import until_sync


def target_stream(width: int = 1280, height: int = 720) -> tuple[av.VideoFrame, VideoConfig, AudioConfig]:
    """A picture decoded from a real H.264 stream of that size, and the stream's configuration."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = Fraction(1, 30)
    enc.framerate = Fraction(30)
    enc.options = {"preset": "ultrafast"}
    enc.flags |= av.codec.context.Flags.global_header
    ramp = np.linspace(0, 255, width * height * 3).reshape(height, width, 3).astype(np.uint8)
    source = av.VideoFrame.from_ndarray(ramp, format="rgb24").reformat(format="yuv420p")
    source.pts = 0
    packets = [*enc.encode(source), *enc.encode(None)]
    nals = h264.split_annexb(bytes(enc.extradata or b""))
    record = h264.build_avcc_config([n for n in nals if h264.nal_type(n) == h264.NAL_SPS],
                                    [n for n in nals if h264.nal_type(n) == h264.NAL_PPS])
    dec = av.CodecContext.create("h264", "r")
    dec.extradata = enc.extradata
    frames = [f for p in packets for f in dec.decode(p)] + dec.decode(None)
    return frames[0], VideoConfig("h264", record, width, height), aac_config(44100, 1)


def test_a_still_is_encoded_to_match_the_target_stream() -> None:
    picture, video, audio = target_stream(854, 480)
    clip = encode_still(picture, video, audio, 25.0, seconds=0.5)
    assert (clip.format.width, clip.format.height, float(clip.format.rate)) == (854, 480, 25.0)
    assert h264.parse_avcc_config(clip.video_config.extradata).width == 854
    assert clip.video[0].keyframe and not any(p.keyframe for p in clip.video[1:])
    assert len(clip.video) == 12 or len(clip.video) == 13
    assert clip.audio_config.sample_rate == 44100 and clip.audio_config.channels == 1
    # what the platform would decode: the same picture, every frame
    record = h264.parse_avcc_config(clip.video_config.extradata)
    dec = av.CodecContext.create("h264", "r")
    decoded = []
    for pkt in clip.video:
        data = h264.with_parameter_sets(pkt.data, record) if pkt.keyframe else pkt.data
        decoded += dec.decode(av.Packet(h264.avcc_to_annexb(data)))
    decoded += dec.decode(None)
    assert len(decoded) == len(clip.video)
    luma = [f.to_ndarray()[:480].astype(float) for f in (decoded[0], decoded[-1])]
    assert np.abs(luma[0] - luma[1]).mean() < 1.0


def recording_bridge() -> tuple[Bridge, list[str]]:
    """A bridge of a real 720p picture (no buffered group: the still), and the inputs it was
    asked to describe (once when it is prepared ahead, once when it is wanted)."""
    picture, video, audio = target_stream()
    requests: list[str] = []

    def describe(input_id: str) -> BridgeRequest:
        requests.append(input_id)
        return BridgeRequest(input_id, picture, video, audio, 30.0)

    return Bridge(describe), requests


def first_packets(bridge: Bridge, target: str) -> list[MediaPacket]:
    """The first packets the bridge to ``target`` plays (its worker encodes meanwhile)."""
    packets: list[MediaPacket] = []

    def playing() -> bool:
        packets[:] = bridge.update(target, time.monotonic())
        return bool(packets)

    until_sync(playing, 10, f"the bridge to {target}", poll=0.005)
    return packets


def test_the_bridge_follows_what_the_switcher_wants() -> None:
    bridge, requests = recording_bridge()
    try:
        assert bridge.update(None, time.monotonic()) == []
        packets = first_packets(bridge, "backup")
        assert packets[0].track is Track.VIDEO and packets[0].keyframe
        assert isinstance(packets[0].config, VideoConfig) and packets[0].config.width == 1280
        assert bridge.encode_ms is not None and bridge.encode_ms < 5000  # generous: shared machine
        assert requests == ["backup"]  # encoded once, then played
        later = bridge.update("backup", time.monotonic() + 0.2)
        assert later and all(not p.keyframe for p in later if p.track is Track.VIDEO)
        assert bridge.update(None, time.monotonic()) == [] and not bridge.playing
    finally:
        bridge.close()


def test_a_bridge_prepared_ahead_of_a_fault_goes_on_air_at_once_and_a_stale_one_is_made_again() -> None:
    bridge, requests = recording_bridge()
    try:
        t0 = time.monotonic()
        bridge.prepare("backup", t0)
        bridge.prepare("backup", t0 + 0.1)  # already under way: not encoded twice
        assert requests == ["backup"]
        assert bridge.update(None, t0 + 0.1) == []  # nothing wanted yet: the prepared one is kept
        packets = first_packets(bridge, "backup")
        assert packets[0].keyframe
        assert requests == ["backup", "backup"] and bridge.prepared  # the still prepared ahead went on air
        assert bridge.update(None, time.monotonic()) == []

        # prepared for another input, or too long ago: encoded again for the switch
        now = time.monotonic()
        bridge.prepare("spare", now)
        bridge.update("backup", now + 0.05)
        assert requests == ["backup", "backup", "spare", "backup"] and not bridge.prepared
        bridge.update(None, now + 0.1)
        bridge.prepare("backup", now + 0.2)
        bridge.update("backup", now + 0.2 + WARM_MAX_AGE_S + 0.1)
        assert requests == ["backup", "backup", "spare", "backup", "backup", "backup"] and not bridge.prepared
    finally:
        bridge.close()


def test_a_stuck_encoder_is_given_up_and_the_next_bridge_gets_a_fresh_worker() -> None:
    picture, video, audio = target_stream(320, 180)
    release = threading.Event()
    calls: list[str] = []

    def encode(request: BridgeRequest) -> SlateClip:
        calls.append(request.input_id)
        if len(calls) == 1:
            release.wait(60)  # an encoder that does not return (SVT-AV1's deadlock)
        return encode_bridge(request)

    bridge = Bridge(lambda input_id: BridgeRequest(input_id, picture, video, audio, 30.0), encode)
    try:
        t0 = time.monotonic()
        assert bridge.update("backup", t0) == []
        until_sync(lambda: calls == ["backup"], 10, "the first bridge's encoding to start")
        stuck = [t for t in threading.enumerate() if t.name == "bridge" and t.is_alive()]
        assert bridge.update("backup", t0 + BRIDGE_STUCK_S - 0.5) == [] and bridge.abandoned_workers == 0
        assert bridge.update("backup", t0 + BRIDGE_STUCK_S + 0.5) == [] and bridge.abandoned_workers == 1
        assert bridge.update("backup", t0 + BRIDGE_STUCK_S + 1) == []  # that switch goes on without one
        assert calls == ["backup"]

        # the next switch's bridge is encoded by a fresh worker, not queued behind the stuck one
        assert bridge.update(None, time.monotonic()) == []
        packets = first_packets(bridge, "spare")
        assert packets[0].keyframe and calls == ["backup", "spare"]
        assert stuck and all(t.daemon and t.is_alive() for t in stuck)  # left behind, never joined at exit
    finally:
        release.set()
        bridge.close()
