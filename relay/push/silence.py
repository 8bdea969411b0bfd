"""Encoded AAC silence: what fills the audio track when there is no sound to send.

The switcher copies the real inputs' AAC frames untouched, so a gap in the audio
track (an input without audio, the slate) must be filled with frames that the same
decoder accepts under the same AudioSpecificConfig: AAC-LC frames of 1024 samples
at the stream's sample rate and channel count. One frame of digital silence is
encoded once per format and repeated; its bytes do not depend on its position.

Timestamps are kept in samples and converted to milliseconds per frame, never
accumulated in milliseconds: 1024 samples at 48 kHz are 21.333 ms, and adding a
rounded 21 ms per frame would drift by a third of a millisecond every frame.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import av
import numpy as np
from av.codec.context import Flags

from relay.codec.aac import AAC_LC, AacError, build_audio_specific_config, parse_audio_specific_config
from relay.media import AudioConfig, MediaPacket, Track

SAMPLES_PER_FRAME = 1024  # AAC-LC frameLengthFlag = 0 (ISO/IEC 14496-3 4.5.1.1)
DEFAULT_SAMPLE_RATE = 48000
DEFAULT_CHANNELS = 2

# FFmpeg's layout names for AAC channelConfiguration 1-6 (14496-3 Table 1.19).
# 7.1 (configuration 7) is left out: PyAV 18 mis-sizes 8-plane frames, and no
# live-commerce encoder sends it.
_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1"}
# The native AAC encoder's first output frames carry its priming delay and a
# "Lavc" fill element; a frame from further on is the steady-state silent frame.
_WARMUP_FRAMES = 4


def audio_format(audio: AudioConfig | None) -> tuple[int, int]:
    """(sample rate, channels) of an audio configuration: its fields, else its
    AudioSpecificConfig, else Relay's default 48 kHz stereo."""
    if audio is None:
        return DEFAULT_SAMPLE_RATE, DEFAULT_CHANNELS
    rate, channels = audio.sample_rate, audio.channels
    if (not rate or not channels) and audio.extradata:
        try:
            info = parse_audio_specific_config(audio.extradata)
        except AacError:
            info = None
        if info is not None:
            rate, channels = rate or info.sample_rate, channels or info.channels
    return rate or DEFAULT_SAMPLE_RATE, channels or DEFAULT_CHANNELS


def layout_name(channels: int) -> str:
    try:
        return _LAYOUTS[channels]
    except KeyError:
        raise ValueError(f"no AAC channel layout for {channels} channels") from None


def open_aac_encoder(sample_rate: int, channels: int) -> av.AudioCodecContext:
    """FFmpeg's native AAC-LC encoder, planar float, raw frames (no ADTS)."""
    ctx = av.CodecContext.create("aac", "w")
    ctx.sample_rate = sample_rate
    ctx.layout = layout_name(channels)
    ctx.format = "fltp"
    ctx.time_base = Fraction(1, sample_rate)
    # Global header: the AudioSpecificConfig goes to extradata, frames stay raw.
    ctx.flags |= Flags.global_header
    ctx.open()
    return ctx


def aac_config(sample_rate: int, channels: int) -> AudioConfig:
    """A fresh AAC-LC AudioConfig for the given format."""
    asc = build_audio_specific_config(AAC_LC, sample_rate, channels)
    return AudioConfig("aac", asc, sample_rate, channels)


@functools.lru_cache(maxsize=16)
def _silent_frame(sample_rate: int, channels: int) -> bytes:
    ctx = open_aac_encoder(sample_rate, channels)
    layout = layout_name(channels)
    frames: list[bytes] = []
    for i in range(_WARMUP_FRAMES + 1):
        frame = av.AudioFrame.from_ndarray(
            np.zeros((channels, SAMPLES_PER_FRAME), np.float32), format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = i * SAMPLES_PER_FRAME
        frames += [bytes(p) for p in ctx.encode(frame)]
    frames += [bytes(p) for p in ctx.encode(None)]
    return frames[_WARMUP_FRAMES]


def silent_aac_frame(audio: AudioConfig | None) -> bytes:
    """One raw AAC-LC frame (1024 samples) of digital silence matching the
    configuration's sample rate and channels. Encoded once per format, then cached.

    Only AAC-LC is produced: under an HE-AAC (SBR) configuration a frame would
    cover 2048 output samples and this frame would not match.
    """
    rate, channels = audio_format(audio)
    return _silent_frame(rate, channels)


def frame_offset_ms(index: int, sample_rate: int) -> int:
    """Milliseconds from a track's origin to the start of AAC frame ``index``,
    rounded down, computed from the sample count (exact, no drift)."""
    return index * SAMPLES_PER_FRAME * 1000 // sample_rate


class SilenceTrack:
    """A stream of silent AAC frames on a timeline starting at ``start_ms``.

    ``until(end_ms)`` returns the frames that start before ``end_ms`` and were not
    returned yet, so the switcher can fill a gap tick by tick; timestamps are
    strictly increasing across calls (frame spacing is at least 10.7 ms, 96 kHz).
    """

    def __init__(self, audio: AudioConfig | None, start_ms: int) -> None:
        self.config = audio
        self.start_ms = start_ms
        self.sample_rate, self.channels = audio_format(audio)
        self._frame = silent_aac_frame(audio)
        self._index = 0

    @property
    def next_ms(self) -> int:
        """Timestamp of the next frame ``until`` will return."""
        return self.start_ms + frame_offset_ms(self._index, self.sample_rate)

    def until(self, end_ms: int, arrival: float = 0.0) -> list[MediaPacket]:
        frames: list[MediaPacket] = []
        while (ts := self.next_ms) < end_ms:
            frames.append(MediaPacket(Track.AUDIO, ts, ts, self._frame, True, self.config, arrival))
            self._index += 1
        return frames


def silence_frames(audio: AudioConfig | None, start_ms: int, end_ms: int,
                   arrival: float = 0.0) -> list[MediaPacket]:
    """Silent AAC frames covering [start_ms, end_ms): the first at ``start_ms``,
    then one every 1024 samples, the last starting before ``end_ms``."""
    return SilenceTrack(audio, start_ms).until(end_ms, arrival)
