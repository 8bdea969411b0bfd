"""The PyAV demux loop behind SRT and pull inputs, with HEVC and AV1: MPEG-TS (Annex B,
parameter sets in band), MP4 and FLV (records as extradata), read from a pipe."""

from __future__ import annotations

import io
import threading

import pytest

from relay.codec import hevc
from relay.ingest.demux import DemuxSource, _Session
from relay.media import MediaPacket, Track, VideoConfig
from tests.support.clips import encode


class _Pipe:
    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int) -> bytes:
        return self._data.read(size)


def _demux(data: bytes, fmt: str) -> tuple[str, list[MediaPacket]]:
    got: list[MediaPacket] = []
    source = DemuxSource(_Pipe(data), peer="test", format=fmt, open_timeout_s=None, read_timeout_s=None)
    session = _Session(source, threading.Event(), lambda fn, *args: fn(*args), lambda peer: None, got.append)
    reason = session.run()
    return reason, [p for p in got if p.track is Track.VIDEO]


def _slices(data: bytes) -> list[bytes]:
    return [n for n in hevc.split_length_prefixed(data) if hevc.nal_type(n) <= 31]


def test_hevc_over_mpegts_becomes_length_prefixed_with_a_record() -> None:
    clip = encode("hevc", 320, 180, frames=12, gop=4, low_delay=False, formats=("mpegts", "mp4"))
    reason, packets = _demux(clip.raw["mpegts"], "mpegts")
    assert reason == "ended"
    config = packets[0].config
    assert isinstance(config, VideoConfig)
    assert (config.codec, config.width, config.height, config.profile) == ("hevc", 320, 180, "Main")
    assert all(p.config is config for p in packets)  # the repeated parameter sets are the same
    assert [_slices(p.data) for p in packets] == [_slices(d) for d, _, _, _ in clip.packets["mp4"]]
    assert [p.keyframe for p in packets] == [hevc.is_irap(p.data) for p in packets]
    assert [p.keyframe for p in packets].count(True) == 3
    assert any(p.pts > p.dts for p in packets)  # B-frames: reordered presentation


@pytest.mark.parametrize(("codec", "fmt"), [("hevc", "mp4"), ("av1", "mp4"), ("av1", "flv")])
def test_records_from_containers(codec: str, fmt: str) -> None:
    clip = encode(codec, 320, 180, frames=8, gop=4, formats=(fmt,))
    reason, packets = _demux(clip.raw[fmt], fmt)
    assert reason == "ended"
    assert [p.data for p in packets] == [d for d, _, _, _ in clip.packets[fmt]]
    assert [p.keyframe for p in packets] == clip.key_flags(fmt) == [True, False, False, False] * 2
    config = packets[-1].config
    assert isinstance(config, VideoConfig)
    assert (config.codec, config.width, config.height) == (codec, 320, 180)
