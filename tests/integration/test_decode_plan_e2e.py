"""What the analysis decodes, through `relay run` with real publishers (issues 14, 20).

Relay decodes every reference picture of every input (relay/watch/analysis.py): the
decode plan's keyframes-only mode (issue 14) could not see a fade to noisy black in
time (issue 20), so the daemon never settles on keyframes. Here real encoders publish a
moving picture, then cut, mid-group, to black, to black with sensor noise, to a frozen
picture or to silence; the fault must come in time.

Publishers: FFmpeg as the tests use it elsewhere (x264 ultrafast, zerolatency, a
keyframe a second) and as OBS sends by default (x264 veryfast, High, two B-frames,
CBR) with OBS's recommended 2-s keyframes. Times are from the publisher's connection,
so its start-up only makes them later than the truth, never earlier.

One relay serves every check (an input of its own each, tests/support/one_relay.py), with
the thresholds shortened: what is proven is "the fault comes within its threshold and the
SPEC's margin", whatever the threshold (the defaults are proven on a fake clock in
tests/unit). Each shortened window still holds a keyframe of both encoders after the cut.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest

from tests.integration.test_run_watch import ts
from tests.support.one_relay import OneRelay
from tests.support.publishers import Publisher, ffmpeg_publisher

pytestmark = pytest.mark.integration

# mid-group for both encoders: 1.5 s into OBS's 2-s group, half-way into FFmpeg's 1-s one;
# every threshold below ends after the next keyframe of both (4.0 s)
CUT_AT = 3.5
BLACK_S, FROZEN_WARN_S, SILENCE_WARN_S = 1.0, 1.5, 1.5  # defaults 2, 3, 3
# a shared 2-core machine: the times are taken from the wall clock at connect + CUT_AT, and a
# live encoder paced by -re slips behind when the machine is busy, so its CUT_AT reaches
# Relay late (1.26 s over silence_warn_s seen with six test workers); the bench measures
# the bars themselves from the frames' own arrival
LOAD_SLACK_S = 1.2
# OBS's x264 settings; the bitrate is 1500k at 960x540 scaled to 640x360 (the same bits per
# pixel, so the same coding noise on a still picture)
OBS_X264 = ["-preset", "veryfast", "-profile:v", "high", "-bf", "2", "-b:v", "700k", "-maxrate", "700k",
            "-bufsize", "700k", "-sc_threshold", "0"]


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OneRelay]:
    thresholds = {"black_s": BLACK_S, "frozen_warn_s": FROZEN_WARN_S, "silence_warn_s": SILENCE_WARN_S}
    with OneRelay(tmp_path_factory.mktemp("relay"), inputs=8, thresholds=thresholds) as one:
        yield one


def publish(encoder: str, url: str, *, filters: str = "",
            audio: str = "sine") -> AbstractContextManager[Publisher]:
    vf = ["-vf", filters] if filters else []
    duration = CUT_AT + 15  # ends by itself should the fault never come
    if encoder == "ffmpeg":
        return ffmpeg_publisher(url, audio=audio, size="320x180", duration=duration, extra_output_args=vf)
    # ffmpeg_args puts -tune zerolatency -preset ultrafast first; OBS's settings given later win,
    # and -bf 2 undoes zerolatency's no-B-frames
    return ffmpeg_publisher(url, audio=audio, size="640x360", gop=60, duration=duration,
                            extra_output_args=[*OBS_X264, *vf])


@pytest.fixture(params=["ffmpeg", "obs-x264"])
def encoder(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


def black_from(at: float, noise: bool) -> str:
    vf = f"drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='gte(t,{at:g})'"
    if noise:  # a capped camera: temporal noise of +-12 levels, the picture still >= 98 % dark
        vf += f",noise=alls=12:allf=t+u:enable='gte(t,{at:g})'"
    return vf


@pytest.mark.parametrize("noise", [False, True], ids=["black", "noisy-black"])
def test_a_cut_to_black_mid_group_is_tier_1_at_black_s(relay: OneRelay, encoder: str, noise: bool) -> None:
    input_id, url = relay.new_input()
    with publish(encoder, url, filters=black_from(CUT_AT, noise)):
        connected = relay.proc.wait_for("input_connected", input=input_id, timeout=15)
        fault = relay.proc.wait_for("fault_raised", signal="black", input=input_id, timeout=20)
        after_cut = ts(fault) - (ts(connected) + CUT_AT)
        print(f"{encoder} {'noisy ' if noise else ''}black: tier 1 {after_cut:.2f} s after the cut")
        assert fault["tier"] == 1
        # SPEC bar black_s + 0.3 s (the bench measures it at the platform)
        assert BLACK_S - 0.1 <= after_cut <= BLACK_S + 0.3 + LOAD_SLACK_S, after_cut
        decoding = relay.proc.events("analysis_decoding", input=input_id)
        assert not any(e["pictures"] == "keyframes" for e in decoding), decoding  # every picture


def test_a_freeze_mid_group_warns_at_frozen_warn_s(relay: OneRelay, encoder: str) -> None:
    input_id, url = relay.new_input()
    freeze = f"trim=end_frame={round(CUT_AT * 30)},tpad=stop=-1:stop_mode=clone"
    with publish(encoder, url, filters=freeze):
        connected = relay.proc.wait_for("input_connected", input=input_id, timeout=15)
        warn = relay.proc.wait_for("fault_raised", signal="frozen", input=input_id, tier=2, timeout=20)
        after = ts(warn) - (ts(connected) + CUT_AT)
        print(f"{encoder} frozen: tier 2 {after:.2f} s after the freeze")
        assert FROZEN_WARN_S - 0.2 <= after <= FROZEN_WARN_S + 0.5 + LOAD_SLACK_S, after
        decoding = relay.proc.events("analysis_decoding", input=input_id)
        assert not any(e["pictures"] == "keyframes" for e in decoding), decoding


def test_silence_from_a_fifth_of_the_aac_frames_warns_at_silence_warn_s(
        relay: OneRelay, encoder: str) -> None:
    input_id, url = relay.new_input()
    # a tone, then nothing from CUT_AT on
    tone_then_silence = f"sine=frequency=1000:sample_rate=48000,volume=enable='gte(t,{CUT_AT:g})':volume=0"
    with publish(encoder, url, audio=tone_then_silence):
        connected = relay.proc.wait_for("input_connected", input=input_id, timeout=15)
        warn = relay.proc.wait_for("fault_raised", signal="silence", input=input_id, tier=2, timeout=20)
        after = ts(warn) - (ts(connected) + CUT_AT)
        print(f"{encoder} silence: tier 2 {after:.2f} s after the sound stopped")
        assert SILENCE_WARN_S - 0.2 <= after <= SILENCE_WARN_S + 0.5 + LOAD_SLACK_S, after
        assert warn["value"] < -60
