"""The show's local recording (push/recording.py, push/segments.py): what is written
decodes, with both tracks; segments roll at the hour and on a change of picture size;
a failing or full disk raises the `recording` fault once and clears it when writing
works again; old segments go by age and size. The worker's steps are driven directly
(`take`, `close`) on a fake wall clock; no thread, no sleep."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import av
import pytest

from relay.events import Event, FaultCleared, FaultRaised
from relay.media import MediaPacket
from relay.push.recording import RETRY_S, Recorder
from relay.push.segments import locate, prune, segment_name, segments
from relay.push.slate import SlateClip, encode_slate
from relay.settings import RecordingSettings

T0 = 1_796_000_000.0  # a UTC epoch some way into an hour


@pytest.fixture(scope="module")
def clip() -> SlateClip:
    return encode_slate(None, None, None, 30.0, seconds=1.0)


@pytest.fixture(scope="module")
def small_clip() -> SlateClip:
    from relay.media import VideoConfig

    return encode_slate(None, VideoConfig("h264", b"", 320, 180), None, 30.0, seconds=1.0)


class Wall:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def timeline(clip: SlateClip, seconds: int, start_ms: int = 0) -> list[MediaPacket]:
    """The slate's one-second loop repeated, as the switcher's output timeline would carry it."""
    out: list[MediaPacket] = []
    for i in range(seconds):
        shift = start_ms + i * 1000
        for pkt in (*clip.video, *clip.audio):
            if pkt.dts < 1000:
                out.append(replace(pkt, dts=pkt.dts + shift, pts=pkt.pts + shift))
    return sorted(out, key=lambda p: p.dts)


def recorder(tmp: Path, wall: Wall, events: list[Event], **kw: object) -> Recorder:
    settings = RecordingSettings(path=str(tmp / "rec"), **kw)  # type: ignore[arg-type]
    return Recorder(settings, "studio-a", events.append, wall=wall)


def feed(rec: Recorder, wall: Wall, pkts: list[MediaPacket]) -> None:
    base = pkts[0].dts
    start = wall.t
    for pkt in pkts:
        wall.t = start + (pkt.dts - base) / 1000
        rec.take(pkt)


def decoded(path: Path) -> tuple[int, int, tuple[int, int]]:
    """(video frames, audio packets, picture size) as a player reads the file."""
    with av.open(str(path)) as f:
        size = (f.streams.video[0].codec_context.width, f.streams.video[0].codec_context.height)
        audio = sum(1 for p in f.demux(f.streams.audio[0]) if p.size)
    with av.open(str(path)) as f:
        frames = sum(1 for _ in f.decode(video=0))
    return frames, audio, size


def test_what_went_out_is_written_as_mp4_that_decodes(tmp_path: Path, clip: SlateClip) -> None:
    wall, events = Wall(), []
    rec = recorder(tmp_path, wall, events)
    feed(rec, wall, timeline(clip, 3))
    rec.close()
    files = segments(tmp_path / "rec", "studio-a")
    assert [f.path.name for f in files] == [segment_name("studio-a", T0)]
    frames, audio, size = decoded(files[0].path)
    assert frames >= 85 and audio >= 130 and size == (1280, 720)
    assert events == []


def test_a_segment_an_hour_and_a_new_one_when_the_picture_changes(tmp_path: Path, clip: SlateClip,
                                                                  small_clip: SlateClip) -> None:
    wall, events = Wall(T0 - T0 % 3600 + 3598.5), []  # 1.5 s before the hour turns
    rec = recorder(tmp_path, wall, events)
    feed(rec, wall, timeline(clip, 3))
    feed(rec, wall, timeline(small_clip, 2, start_ms=3000))
    rec.close()
    files = segments(tmp_path / "rec", "studio-a")
    assert len(files) == 3, files
    sizes = [decoded(f.path)[2] for f in files]
    assert sizes == [(1280, 720), (1280, 720), (320, 180)]
    assert files[1].start == T0 - T0 % 3600 + 3600  # the hour's first keyframe
    assert all(decoded(f.path)[0] >= 25 for f in files)


def test_a_failing_path_raises_the_fault_once_and_it_clears_when_writing_works(tmp_path: Path,
                                                                              clip: SlateClip) -> None:
    wall, events = Wall(), []
    (tmp_path / "rec").write_text("a file where the directory should be")
    rec = recorder(tmp_path, wall, events)
    feed(rec, wall, timeline(clip, 3))
    raised = [e for e in events if isinstance(e, FaultRaised)]
    assert len(raised) == 1 and raised[0].signal == "recording" and raised[0].tier == 2
    assert raised[0].input is None and raised[0].detail
    assert rec.health()["status"] == "failing"
    (tmp_path / "rec").unlink()
    feed(rec, wall, timeline(clip, int(RETRY_S) + 2, start_ms=3000))
    rec.close()
    cleared = [e for e in events if isinstance(e, FaultCleared)]
    assert len(cleared) == 1 and cleared[0].signal == "recording"
    assert len(segments(tmp_path / "rec", "studio-a")) == 1


def test_too_little_free_space_is_the_fault_too(tmp_path: Path, clip: SlateClip) -> None:
    wall, events = Wall(), []
    rec = recorder(tmp_path, wall, events, min_free_gb=1e9)
    feed(rec, wall, timeline(clip, 2))
    raised = [e for e in events if isinstance(e, FaultRaised)]
    assert len(raised) == 1 and "disk full" in (raised[0].detail or "")
    assert segments(tmp_path / "rec", "studio-a") == []


def test_old_segments_go_by_age_then_size_and_other_relays_files_stay(tmp_path: Path) -> None:
    d = tmp_path / "rec"
    d.mkdir()
    now = T0
    paths = []
    for i, age_days in enumerate((9, 3, 2, 1)):
        p = d / segment_name("studio-a", now - age_days * 86400)
        p.write_bytes(b"x" * (100 + i))
        os.utime(p, (now - age_days * 86400 + 3600, now - age_days * 86400 + 3600))
        paths.append(p)
    other = d / segment_name("studio-b", now - 20 * 86400)
    other.write_bytes(b"x")
    os.utime(other, (now - 20 * 86400, now - 20 * 86400))
    removed = prune(d, "studio-a", now, keep_days=7, max_bytes=250, writing=paths[3])
    assert removed == [paths[0], paths[1]]  # 9 days old; then the oldest until 102 + 103 fit
    assert paths[2].exists() and paths[3].exists() and other.exists()


def test_a_moment_is_found_in_its_segment(tmp_path: Path) -> None:
    d = tmp_path / "rec"
    d.mkdir()
    first, second = d / segment_name("studio-a", T0), d / segment_name("studio-a", T0 + 3600)
    for p, end in ((first, T0 + 3600), (second, T0 + 4000)):
        p.write_bytes(b"x")
        os.utime(p, (end, end))
    m = locate(d, "studio-a", T0 + 125.4)
    assert m is not None and m.file == first.name and m.offset_s == pytest.approx(125.4)
    assert m.fragment() == f"{first.name}#t=125"
    later = locate(d, "studio-a", T0 + 3700)
    assert later is not None and later.file == second.name
    assert locate(d, "studio-a", T0 - 1) is None  # before the recording began
    assert locate(d, "studio-a", T0 + 5000) is None  # after it ended


def test_the_report_links_each_switch_and_fault_to_its_moment_in_the_recording(tmp_path: Path) -> None:
    from relay.events import FaultRaised as Raised
    from relay.events import Switched
    from relay.journal.report import recording_links, render_report
    from relay.journal.store import Journal
    from relay.settings import JournalSettings

    start = 1_718_000_000.0  # on a whole second, as a segment's name keeps it
    now = [start]
    journal = Journal(JournalSettings(path=str(tmp_path / "j.sqlite3")), relay_id="studio-a",
                      clock=lambda: now[0])
    journal.open_session(version="0.1.0", config_summary={"inputs": [], "outputs": []})
    journal.record_event(Switched(from_="main", to="backup", reason="fault", ts=start + 30.4))
    journal.record_event(Raised(signal="black", tier=1, value=1.0, threshold=0.98, input="main",
                                ts=start + 29.0))
    # after the recording ended: no link
    journal.record_event(Switched(from_="backup", to="main", reason="failback", ts=start + 500))
    now[0] = start + 600
    journal.close_session(reason="signal SIGTERM")
    rec = tmp_path / "rec"
    rec.mkdir()
    segment = rec / segment_name("studio-a", start)
    segment.write_bytes(b"x")
    os.utime(segment, (start + 100, start + 100))
    html = render_report(str(tmp_path / "j.sqlite3"), link=recording_links(str(rec)))
    assert f'href="{segment.as_uri()}#t=30"' in html
    assert f'href="{segment.as_uri()}#t=29"' in html
    assert html.count('class="recording"') == 2  # the failback at 500 s was after the recording ended


@pytest.mark.parametrize("codec", ["h264", "hevc", "av1"])
def test_every_codec_the_platform_gets_is_recorded_without_re_encoding(tmp_path: Path, codec: str) -> None:
    """An encoder's packets as Relay's RTMP ingest delivers them (no sound track: the
    segment opens with video only after AUDIO_WAIT_MS); every picture decodes."""
    from tests.support.clips import encode, flv_packets

    packets = flv_packets(encode(codec, 320, 180, frames=60, gop=30, formats=("flv",)).raw["flv"])
    wall, events = Wall(), []
    rec = recorder(tmp_path, wall, events)
    feed(rec, wall, packets)
    rec.close()
    [segment] = segments(tmp_path / "rec", "studio-a")
    with av.open(str(segment.path)) as f:
        assert f.streams.video[0].codec_context.name in {"h264": ("h264",), "hevc": ("hevc",),
                                                         "av1": ("libdav1d", "av1")}[codec]
        assert sum(1 for _ in f.decode(video=0)) == 60
    # copied as they came, not re-encoded (MP4's AV1 binding leaves out the temporal
    # delimiter OBU, 0x12 0x00, that starts each temporal unit: AV1-ISOBMFF 2.4)
    sent = [p.data.removeprefix(b"\x12\x00") if codec == "av1" else p.data for p in packets]
    with av.open(str(segment.path)) as f:
        assert [bytes(p) for p in f.demux(video=0) if p.size] == sent
    assert events == []


def test_sound_of_another_format_starts_a_new_segment_at_the_next_keyframe(tmp_path: Path,
                                                                          clip: SlateClip) -> None:
    """The backup's encoder at 44.1 kHz after main's 48 kHz: its sound is not lost for the
    rest of the hour, a new file holds it from the next keyframe."""
    from relay.codec.aac import build_audio_specific_config
    from relay.media import AudioConfig

    other = encode_slate(None, clip.video_config,
                         AudioConfig("aac", build_audio_specific_config(2, 44100, 2), 44100, 2), 30.0,
                         seconds=1.0)
    wall, events = Wall(), []
    rec = recorder(tmp_path, wall, events)
    feed(rec, wall, timeline(clip, 2))
    feed(rec, wall, timeline(other, 3, start_ms=2000))
    rec.close()
    files = segments(tmp_path / "rec", "studio-a")
    assert len(files) == 2, files
    rates = []
    for f in files:
        with av.open(str(f.path)) as c:
            rates.append(c.streams.audio[0].codec_context.sample_rate)
    assert rates == [48000, 44100]
    assert decoded(files[1].path)[1] >= 80  # the 44.1 kHz sound, kept


def test_a_disk_that_holds_a_write_is_the_fault_and_it_clears_when_the_write_is_done(
        tmp_path: Path, clip: SlateClip, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dead network mount or a dying USB disk returns no error: the write just never
    ends. The loop sees the worker held on one write for STALL_S (the worker runs in a
    thread here; the test waits on events, never on time)."""
    import threading

    from relay.push import recording as module

    wall, events = Wall(), []
    rec = recorder(tmp_path, wall, events)
    pkts = timeline(clip, 2)
    feed(rec, wall, pkts[:40])  # a segment open and written
    entered, release = threading.Event(), threading.Event()
    real_write = module.Segment.write

    def held(self: module.Segment, pkt: MediaPacket) -> None:
        entered.set()
        assert release.wait(30)
        real_write(self, pkt)

    monkeypatch.setattr(module.Segment, "write", held)
    worker = threading.Thread(target=rec.take, args=(pkts[40],))
    worker.start()
    assert entered.wait(30)
    rec.check_stall(wall.t + module.STALL_S - 1)
    assert events == []
    rec.check_stall(wall.t + module.STALL_S)
    rec.check_stall(wall.t + module.STALL_S + 5)  # raised once
    raised = [e for e in events if isinstance(e, FaultRaised)]
    assert len(raised) == 1 and raised[0].signal == "recording" and raised[0].value == "stalled"
    release.set()
    worker.join(30)
    rec.check_stall(wall.t + module.STALL_S + 6)
    assert [type(e) for e in events] == [FaultRaised, FaultCleared]
    rec.close()
