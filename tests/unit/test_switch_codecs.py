"""Switching between two real HEVC encoders (x265 open GOPs: CRA keyframes with RASL
pictures, B-frames) and two real AV1 encoders, as the platform sees the result: the
output written as FLV by rtmp/flv.py and read back and decoded by FFmpeg 8."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from relay.codec import hevc
from relay.media import MediaPacket, Track
from relay.settings import FailoverSettings
from relay.switch import switcher as switcher_module
from relay.switch.switcher import Switcher
from tests.support.clips import decode_flv, encode, flv_packets, write_flv


def _studio(codec: str, backup_gop: int = 12) -> tuple[list[MediaPacket], list[MediaPacket]]:
    """Two encoders whose keyframes fall at different times, as two real ones' do."""
    main = flv_packets(encode(codec, 320, 180, frames=60, gop=15, low_delay=False,
                              formats=("flv",)).raw["flv"])
    backup = flv_packets(encode(codec, 320, 180, frames=60, gop=backup_gop, kind="still", low_delay=False,
                                formats=("flv",)).raw["flv"])
    return main, backup


def _run(main: list[MediaPacket], backup: list[MediaPacket], switch_at: float) -> list[MediaPacket]:
    """Both encoders in real time (arrival = timestamp); a command switches to the backup
    at ``switch_at`` seconds; the cut waits for the backup's next keyframe (auto, healthy)."""
    switcher = Switcher(FailoverSettings(), lambda e: None, lambda config: b"")
    timeline = sorted([("main", p) for p in main] + [("backup", p) for p in backup],
                      key=lambda item: item[1].arrival)
    out: list[MediaPacket] = []
    out += switcher.request_switch("main", 0.0, "command")
    asked = False
    for name, pkt in timeline:
        if not asked and pkt.arrival >= switch_at:
            out += switcher.request_switch("backup", pkt.arrival, "command")
            asked = True
        out += switcher.on_packet(name, pkt, pkt.arrival)
    return [p for p in out if p.track is Track.VIDEO]


def _pictures(flv: bytes) -> list[np.ndarray]:
    """The pictures FFmpeg decodes from an FLV file, as luma planes."""
    with av.open(io.BytesIO(flv), "r", format="flv") as container:
        stream = container.streams.video[0]
        return [f.to_ndarray(format="gray").astype(np.float32)
                for packet in container.demux(stream) for f in packet.decode()]


def _after_cut(out: list[MediaPacket], backup: list[MediaPacket]) -> int:
    """How many output pictures come before the backup's first (the cut)."""
    return next(i for i, p in enumerate(out) if p.config is backup[0].config)


@pytest.mark.parametrize("codec", ["hevc", "av1"])
def test_a_switch_decodes_cleanly_at_the_platform(codec: str) -> None:
    main, backup = _studio(codec)
    out = _run(main, backup, switch_at=0.7)
    first = _after_cut(out, backup)
    assert out[first].keyframe and first > 10
    assert [p.dts for p in out] == sorted({p.dts for p in out})  # strictly rising
    if codec == "hevc":
        nals = [hevc.nal_type(n) for n in hevc.split_length_prefixed(out[first].data)]
        assert {hevc.NAL_VPS, hevc.NAL_SPS, hevc.NAL_PPS} <= set(nals)  # in band on the cut
        # The backup's CRA went out as a splice point: a new coded video sequence starts.
        assert nals[0] == hevc.NAL_EOS and hevc.NAL_CRA not in nals
        assert nals.index(hevc.NAL_SPS) < nals.index(hevc.NAL_BLA_W_LP)
        assert any(hevc.is_rasl(p.data) for p in backup)  # x265's open GOPs have them...
        assert not any(hevc.is_rasl(p.data) for p in out[first + 1:first + 4])  # ...the cut has none
    name, pictures, errors = decode_flv(write_flv(out, "enhanced"))
    assert (name, errors) == (codec, 0)
    assert pictures == len(out)
    # The backup shows one still picture: every picture after the cut must be that picture.
    after = _pictures(write_flv(out, "enhanced"))[first:]
    assert len(after) >= 20
    assert max(float(np.abs(p - after[-1]).mean()) for p in after) < 1.0


def test_the_rasl_pictures_kept_would_show_broken_pictures(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: the CRA kept as it is and its RASL pictures kept, FFmpeg shows pictures
    made from references it never got (here the two encoders run in step, so the old
    one's pictures stand in for them): no error is raised, the viewer just sees them."""
    main, backup = _studio("hevc", backup_gop=15)
    monkeypatch.setattr(switcher_module, "cut_point", lambda data, keyframe: data)
    monkeypatch.setattr(switcher_module, "leading_after_cut", lambda pkt: False)
    out = _run(main, backup, switch_at=0.7)
    first = _after_cut(out, backup)
    assert any(hevc.is_rasl(p.data) for p in out[first + 1:first + 4])
    after = _pictures(write_flv(out, "enhanced"))[first:]
    assert max(float(np.abs(p - after[-1]).mean()) for p in after) > 1.0
