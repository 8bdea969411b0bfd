"""The slate: the last-resort input Relay makes itself (BEHAVIOUR §2 "Slate").

When no input is healthy the platform must still receive a stream, or it closes
the live room. The slate is a short clip, one closed group of pictures of a still
image plus AAC silence (or an audio file), encoded to match the stream it replaces
(its video codec, H.264, HEVC or AV1 (push/stills.py); resolution, frame rate,
H.264 profile and level; AAC sample rate and channels) so
the switcher can splice it into the same output in copy mode. It is encoded ahead
of time, in a worker thread, whenever an input's parameters become known
(:func:`encode_slate`), and played in a loop in real time by :class:`SlateSource`,
which the daemon's media tick drives like any other input.

Run ``python -m relay.push.slate config/slate.png`` to redraw the built-in card.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.frame import PictureType

from relay.codec.h264 import H264Error, parse_avcc_config
from relay.i18n import t
from relay.log import get_logger
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.push.card_text import text_mask
from relay.push.silence import (
    SAMPLES_PER_FRAME,
    aac_config,
    audio_format,
    frame_offset_ms,
    layout_name,
    open_aac_encoder,
    silent_aac_frame,
)
from relay.push.stills import StillFormat, encode_group, video_offset_ms

log = get_logger("relay.slate")

DEFAULT_WIDTH, DEFAULT_HEIGHT = 1280, 720
DEFAULT_FPS = Fraction(30)
DEFAULT_PROFILE = 100  # High: what OBS and most studio encoders send
MAX_AUDIO_FILE_S = 60.0  # a looped audio bed longer than this is cut
# An HEVC bridge loops this many pictures (a keyframe every 0.2 s at 30 fps): x265 needs
# ~20 ms of CPU per 1080p picture even of a still one, and the platform waits for it.
HEVC_STILL_FRAMES = 6


# Colours of the built-in card. The background is deliberately not black: at 17 %
# luma it stays clear of the `black` signal (< 10 % luma) if the slate is watched.
_BACKGROUND_TOP = (36, 44, 64)
_BACKGROUND_BOTTOM = (52, 62, 88)
_TEXT = (236, 238, 242)
_SUBTEXT = (170, 180, 200)
_ACCENT = (230, 80, 60)
HEADLINE = "WE'LL BE RIGHT BACK"  # the English card's words (slate.headline / slate.subline)
SUBLINE = "PLEASE STAND BY"

# A 5x7 bitmap font for the card's text, rows top to bottom ('#' = ink), so the
# card needs no font files and no imaging library.
_GLYPHS = {
    "A": ".###./#...#/#...#/#####/#...#/#...#/#...#",
    "B": "####./#...#/#...#/####./#...#/#...#/####.",
    "C": ".###./#...#/#..../#..../#..../#...#/.###.",
    "D": "####./#...#/#...#/#...#/#...#/#...#/####.",
    "E": "#####/#..../#..../####./#..../#..../#####",
    "F": "#####/#..../#..../####./#..../#..../#....",
    "G": ".###./#...#/#..../#.###/#...#/#...#/.###.",
    "H": "#...#/#...#/#...#/#####/#...#/#...#/#...#",
    "I": ".###./..#../..#../..#../..#../..#../.###.",
    "J": "..###/...#./...#./...#./...#./#..#./.##..",
    "K": "#...#/#..#./#.#../##.../#.#../#..#./#...#",
    "L": "#..../#..../#..../#..../#..../#..../#####",
    "M": "#...#/##.##/#.#.#/#.#.#/#...#/#...#/#...#",
    "N": "#...#/#...#/##..#/#.#.#/#..##/#...#/#...#",
    "O": ".###./#...#/#...#/#...#/#...#/#...#/.###.",
    "P": "####./#...#/#...#/####./#..../#..../#....",
    "Q": ".###./#...#/#...#/#...#/#.#.#/#..#./.##.#",
    "R": "####./#...#/#...#/####./#.#../#..#./#...#",
    "S": ".####/#..../#..../.###./....#/....#/####.",
    "T": "#####/..#../..#../..#../..#../..#../..#..",
    "U": "#...#/#...#/#...#/#...#/#...#/#...#/.###.",
    "V": "#...#/#...#/#...#/#...#/#...#/.#.#./..#..",
    "W": "#...#/#...#/#...#/#.#.#/#.#.#/#.#.#/.#.#.",
    "X": "#...#/#...#/.#.#./..#../.#.#./#...#/#...#",
    "Y": "#...#/#...#/.#.#./..#../..#../..#../..#..",
    "Z": "#####/....#/...#./..#../.#.../#..../#####",
    "'": "..#../..#../.#.../...../...../...../.....",
    ".": "...../...../...../...../...../.##../.##..",
    " ": "...../...../...../...../...../...../.....",
}


def _glyph(char: str) -> np.ndarray:
    rows = _GLYPHS[char].split("/")
    return np.array([[c == "#" for c in row] for row in rows], dtype=bool)


def _text_mask(text: str, scale: int) -> np.ndarray:
    """Ink mask of one line: 5x7 glyphs with one column of spacing, scaled up."""
    cells = [np.pad(_glyph(c), ((0, 0), (0, 1))) for c in text]
    line = np.concatenate(cells, axis=1)[:, :-1]
    return np.kron(line, np.ones((scale, scale), dtype=bool)).astype(bool)


def _stamp(canvas: np.ndarray, mask: np.ndarray, top: int, colour: tuple[int, int, int]) -> None:
    left = (canvas.shape[1] - mask.shape[1]) // 2
    region = canvas[top:top + mask.shape[0], left:left + mask.shape[1]]
    region[mask] = colour


def _blend(canvas: np.ndarray, cover: np.ndarray, top: int, colour: tuple[int, int, int]) -> None:
    """Lay anti-aliased text (coverage 0..1) centred on the canvas."""
    left = (canvas.shape[1] - cover.shape[1]) // 2
    region = canvas[top:top + cover.shape[0], left:left + cover.shape[1]].astype(np.float32)
    alpha = cover[:, :, None]
    region = region * (1 - alpha) + np.array(colour, np.float32) * alpha
    canvas[top:top + cover.shape[0], left:left + cover.shape[1]] = region.round().astype(np.uint8)


def _chinese_lines(width: int, height: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The Chinese card's headline and line below it (coverage), and the headline's scale unit."""
    headline_text, subline_text = t("zh-CN", "slate.headline"), t("zh-CN", "slate.subline")
    # Headline about 1/8 of the height (Chinese needs more pixels per character than the
    # 5x7 capitals), never wider than 90 % of the picture.
    size = max(8, min(height // 8, (width * 9 // 10) * 112 // (96 * max(1, len(headline_text)))))
    return text_mask(headline_text, size), text_mask(subline_text, max(8, size // 2)), max(1, size // 8)


def render_card(width: int, height: int, lang: str = "en") -> np.ndarray:
    """The built-in slate picture (RGB, height x width x 3): a dark gradient,
    a headline and a line below it in `lang`, sized to the picture."""
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top, bottom = np.array(_BACKGROUND_TOP, np.float32), np.array(_BACKGROUND_BOTTOM, np.float32)
    canvas = np.broadcast_to(top + (bottom - top) * ramp, (height, width, 3)).astype(np.uint8)
    if lang == "zh-CN":
        cover, sub_cover, scale = _chinese_lines(width, height)
        gap = 3 * scale
        y = (height - (cover.shape[0] + gap + sub_cover.shape[0])) // 2
        _blend(canvas, cover, y, _TEXT)
        _blend(canvas, sub_cover, y + cover.shape[0] + gap, _SUBTEXT)
        text_w = cover.shape[1]
    else:
        # Headline about 1/13 of the height, never wider than 90 % of the picture.
        cols = len(HEADLINE) * 6 - 1
        scale = max(1, min(height // 90, (width * 9 // 10) // cols))
        headline = _text_mask(HEADLINE, scale)
        subline = _text_mask(SUBLINE, max(1, scale // 2))
        gap = 4 * scale
        block = headline.shape[0] + gap + subline.shape[0]
        y = (height - block) // 2
        _stamp(canvas, headline, y, _TEXT)
        _stamp(canvas, subline, y + headline.shape[0] + gap, _SUBTEXT)
        text_w = headline.shape[1]
    # A short accent rule above the headline.
    rule_w, rule_h = text_w // 6, max(2, scale // 2)
    rule_top = max(0, y - 3 * scale)
    left = (width - rule_w) // 2
    canvas[rule_top:rule_top + rule_h, left:left + rule_w] = _ACCENT
    return canvas


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def load_picture(path: str, width: int, height: int) -> np.ndarray:
    """An image file scaled to fit width x height, letterboxed in black (RGB)."""
    with av.open(path) as container:
        frame = next(container.decode(video=0))
    scale = min(width / frame.width, height / frame.height)
    fit_w, fit_h = min(width, _even(frame.width * scale)), min(height, _even(frame.height * scale))
    picture = frame.reformat(fit_w, fit_h, format="rgb24", interpolation="AREA").to_ndarray()
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - fit_h) // 2, (width - fit_w) // 2
    canvas[top:top + fit_h, left:left + fit_w] = picture
    return canvas


def write_png(path: str, picture: np.ndarray) -> None:
    """Write an RGB picture as PNG with FFmpeg's encoder (no imaging library)."""
    ctx = av.CodecContext.create("png", "w")
    ctx.width, ctx.height = picture.shape[1], picture.shape[0]
    ctx.pix_fmt = "rgb24"
    ctx.time_base = Fraction(1, 1)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
    data = b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])
    with open(path, "wb") as f:
        f.write(data)


def frame_rate(fps: float) -> Fraction:
    """A frame rate as an exact fraction: 29.97 is 30000/1001, not 2997/100."""
    if fps <= 0 or not math.isfinite(fps):
        return DEFAULT_FPS
    if abs(fps - round(fps)) < 0.005:
        return Fraction(round(fps))
    ntsc = fps * 1.001
    if abs(ntsc - round(ntsc)) < 0.005:
        return Fraction(round(ntsc) * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


@dataclass(frozen=True, slots=True)
class SlateFormat:
    """What the slate must match in the stream it replaces."""

    width: int
    height: int
    rate: Fraction
    profile: int  # H.264 profile_idc (66 Baseline, 77 Main, 100 High)
    level: int  # level_idc (31 = 3.1); 0 = let the encoder choose
    sample_rate: int
    channels: int
    codec: str = "h264"  # of the stream it replaces: a platform cannot follow a change of codec

    @classmethod
    def of(cls, video: VideoConfig | None, audio: AudioConfig | None, fps: float) -> SlateFormat:
        width, height = (video.width, video.height) if video is not None else (0, 0)
        profile, level = DEFAULT_PROFILE, 0
        if video is not None and video.codec == "h264" and video.extradata:
            try:
                info = parse_avcc_config(video.extradata)
            except H264Error:
                log.warning("slate_video_config_unreadable", width=width, height=height)
            else:
                profile, level = info.profile, info.level
                if not (width and height):
                    width, height = info.width, info.height
        if not (width and height):
            width, height = DEFAULT_WIDTH, DEFAULT_HEIGHT
        sample_rate, channels = audio_format(audio)
        codec = video.codec if video is not None else "h264"
        return cls(_even(width), _even(height), frame_rate(fps), profile, level, sample_rate, channels, codec)


@dataclass(frozen=True, slots=True)
class SlateClip:
    """One encoded slate loop. Packet timestamps start at 0 (ms); video[0] is the
    only keyframe. The audio track may be longer than the video (an audio file
    keeps its own length); :class:`SlateSource` loops each track on its own."""

    format: SlateFormat
    video: tuple[MediaPacket, ...]
    audio: tuple[MediaPacket, ...]
    video_config: VideoConfig
    audio_config: AudioConfig

    @property
    def duration_ms(self) -> float:
        """Length of the video loop: frames x frame interval."""
        return float(len(self.video) * 1000 / self.format.rate)

    def fits(self, video: VideoConfig | None, audio: AudioConfig | None, fps: float) -> bool:
        """Does this clip still match a stream with these parameters?"""
        return _format_of(video, audio, fps) == self.format


@functools.lru_cache(maxsize=16)
def _format_of(video: VideoConfig | None, audio: AudioConfig | None, fps: float) -> SlateFormat:
    """SlateFormat.of, remembered: asked every watch tick with the same configurations, and
    each answer parses an SPS."""
    return SlateFormat.of(video, audio, fps)


def _encode_video(source: av.VideoFrame, fmt: SlateFormat, frames: int,
                  preset: str = "veryfast") -> tuple[list[MediaPacket], VideoConfig]:
    still = StillFormat(fmt.codec, fmt.width, fmt.height, fmt.rate, fmt.profile, fmt.level)
    return encode_group(source, still, frames, preset=preset)


def _audio_packets(frames: Sequence[bytes], config: AudioConfig) -> list[MediaPacket]:
    return [MediaPacket(Track.AUDIO, ts, ts, data, True, config)
            for ts, data in ((frame_offset_ms(i, config.sample_rate), d) for i, d in enumerate(frames))]


def _encode_audio_file(path: str, sample_rate: int, channels: int, max_s: float) -> list[bytes]:
    """An audio file decoded, resampled to the target format and encoded as AAC-LC."""
    encoder = open_aac_encoder(sample_rate, channels)
    resampler = av.AudioResampler(format="fltp", layout=layout_name(channels), rate=sample_rate,
                                  frame_size=SAMPLES_PER_FRAME)
    limit = int(max_s * sample_rate)
    coded: list[bytes] = []
    samples = 0
    with av.open(path) as container:
        for decoded in container.decode(audio=0):
            decoded.pts = None  # the resampler re-times; the file's own timestamps do not matter
            for frame in resampler.resample(decoded):
                if samples >= limit:
                    break
                frame.pts = samples
                samples += frame.samples
                coded += [bytes(p) for p in encoder.encode(frame)]
            if samples >= limit:
                break
        for frame in resampler.resample(None):
            if samples < limit:
                frame.pts = samples
                samples += frame.samples
                coded += [bytes(p) for p in encoder.encode(frame)]
    coded += [bytes(p) for p in encoder.encode(None)]
    if not coded:
        raise ValueError("no audio decoded")
    return coded


# The 17 bits after a GASpecificConfig that say "no SBR" explicitly (backward-compatible
# signalling, ISO/IEC 14496-3 1.6.5.2): syncExtensionType 0x2B7, extensionAudioObjectType
# 5 (SBR), sbrPresentFlag 0. FFmpeg's AAC encoder writes them.
_NO_SBR_EXTENSION = (0x2B7 << 6) | (5 << 1)


def _is_plain_aac_lc(asc: bytes, sample_rate: int, channels: int) -> bool:
    """Is this AudioSpecificConfig AAC-LC at this rate and channel count, without
    SBR or PS (whose frames cover 2048 output samples)?"""
    minimal = aac_config(sample_rate, channels).extradata
    if not asc.startswith(minimal):
        return False
    rest = asc[len(minimal):]
    return not rest or (len(rest) >= 3 and int.from_bytes(rest[:3], "big") >> 7 == _NO_SBR_EXTENSION)


def _matching_audio_config(audio: AudioConfig | None, sample_rate: int, channels: int) -> AudioConfig:
    """The replaced stream's own AudioConfig when it describes what the slate sends
    (AAC-LC, same rate and channels): sharing the object tells the switcher
    nothing changed. Otherwise a fresh AAC-LC config."""
    if audio is not None and audio.codec == "aac" and _is_plain_aac_lc(
            audio.extradata, sample_rate, channels):
        return audio
    return aac_config(sample_rate, channels)


def encode_slate(image_path: str | None, video: VideoConfig | None, audio: AudioConfig | None, fps: float,
                 *, audio_file: str | None = None, seconds: float = 1.0, lang: str = "en") -> SlateClip:
    """Encode a slate loop matching the stream described by ``video``/``audio``/``fps``.

    Blocking (libx264 and AAC encoding): run it in a worker thread. With nothing
    known yet it encodes 1280x720 at 30 fps, High profile, 48 kHz stereo. An image
    or audio file that cannot be read falls back to the built-in card (its words in
    `lang`) / silence (logged), because the last resort must always exist.
    """
    fmt = SlateFormat.of(video, audio, fps)
    picture: np.ndarray | None = None
    if image_path is not None:
        try:
            picture = load_picture(image_path, fmt.width, fmt.height)
        except (OSError, av.FFmpegError, StopIteration, ValueError) as exc:
            log.warning("slate_image_unusable", path=image_path, error=str(exc))
    if picture is None:
        picture = render_card(fmt.width, fmt.height, lang)
    # At least two frames: a one-frame loop would send the same IDR picture back to back,
    # which H.264 forbids (consecutive IDRs must differ in idr_pic_id, 7.4.3).
    frames = max(2, round(seconds * fmt.rate))
    source = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
    video_packets, video_config = _encode_video(source, fmt, frames)
    return _with_audio(fmt, frames, video_packets, video_config, audio, audio_file, seconds)


def encode_still(picture: av.VideoFrame, video: VideoConfig | None, audio: AudioConfig | None,
                 fps: float, *, seconds: float = 0.5) -> SlateClip:
    """A loop of one decoded picture held still, with silence, encoded to match the stream
    described by ``video``/``audio``/``fps``: the bridge of a fault switch (push/bridge.py).

    Blocking: run it in a worker thread. Fast before fine (libx264 ``ultrafast``): it
    goes on air while the platform waits, for a few seconds at most."""
    fmt = SlateFormat.of(video, audio, fps)
    frames = max(2, round(seconds * fmt.rate))
    if fmt.codec == "hevc":
        frames = min(frames, HEVC_STILL_FRAMES)  # x265 is the slow one: a shorter loop is ready sooner
    source = picture.reformat(width=fmt.width, height=fmt.height, format="yuv420p")
    # A decoded keyframe says "I" and libx264 would obey it on every frame of the loop.
    source.pict_type = PictureType.NONE
    video_packets, video_config = _encode_video(source, fmt, frames, preset="ultrafast")
    return _with_audio(fmt, frames, video_packets, video_config, audio, None, seconds)


def _with_audio(fmt: SlateFormat, frames: int, video_packets: list[MediaPacket], video_config: VideoConfig,
                audio: AudioConfig | None, audio_file: str | None, seconds: float) -> SlateClip:
    audio_config = _matching_audio_config(audio, fmt.sample_rate, fmt.channels)
    audio_frames: list[bytes] | None = None
    if audio_file is not None:
        try:
            audio_frames = _encode_audio_file(audio_file, fmt.sample_rate, fmt.channels,
                                              max(seconds, MAX_AUDIO_FILE_S))
        except (OSError, av.FFmpegError, ValueError) as exc:
            log.warning("slate_audio_unusable", path=audio_file, error=str(exc))
    if audio_frames is None:
        # Silence for as long as the video loop, in whole AAC frames.
        count = math.ceil(frames * fmt.sample_rate / (fmt.rate * SAMPLES_PER_FRAME))
        audio_frames = [silent_aac_frame(audio_config)] * max(1, count)
    return SlateClip(fmt, tuple(video_packets), tuple(_audio_packets(audio_frames, audio_config)),
                     video_config, audio_config)


class SlateSource:
    """Plays a :class:`SlateClip` in a loop in real time, as an input would send it.

    The caller owns the clock: ``next_packets(now)`` returns every packet due by
    ``now`` (seconds, the loop's monotonic clock) and ``next_due()`` says when the
    next one is. Each track loops on its own with timestamps computed from a frame
    count (video at the clip's frame rate, audio every 1024 samples), so they keep
    rising across loops (loop n of a 1000 ms video clip starts at n x 1000 ms) and
    the tracks stay in step with each other and with the clock.
    """

    def __init__(self, clip: SlateClip, now: float, *, start_ms: int = 0, max_late_s: float = 0.5) -> None:
        self._max_late_s = max_late_s
        self._begin(clip, start_ms, now)

    def _begin(self, clip: SlateClip, origin_ms: int, origin_time: float) -> None:
        self._clip = clip
        self._origin_ms = origin_ms  # timestamp of this clip's first packets
        self._origin_time = origin_time  # clock time they are due
        self._video_index = 0  # frames sent since the origin, across loops
        self._audio_index = 0

    @property
    def clip(self) -> SlateClip:
        return self._clip

    def _video_ms(self, index: int) -> int:
        return self._origin_ms + video_offset_ms(index, self._clip.format.rate)

    def _audio_ms(self, index: int) -> int:
        return self._origin_ms + frame_offset_ms(index, self._clip.audio_config.sample_rate)

    def _video_due(self, index: int) -> float:
        rate = self._clip.format.rate
        return self._origin_time + index * rate.denominator / rate.numerator

    def _audio_due(self, index: int) -> float:
        return self._origin_time + index * SAMPLES_PER_FRAME / self._clip.audio_config.sample_rate

    def next_due(self) -> float:
        """Clock time at which the next packet is due."""
        return min(self._video_due(self._video_index), self._audio_due(self._audio_index))

    def next_packets(self, now: float) -> list[MediaPacket]:
        """Packets due by ``now``, in timestamp order, with ``arrival = now``."""
        late = now - self.next_due()
        if late > self._max_late_s:
            # The caller was held up (a stalled loop, a suspended machine). Sending the
            # missed time in one burst would look like a flood to the switcher; shift
            # the clock mapping instead, so timestamps stay continuous.
            self._origin_time += late
        out: list[MediaPacket] = []
        clip = self._clip
        while True:
            video_due = self._video_due(self._video_index)
            audio_due = self._audio_due(self._audio_index)
            if min(video_due, audio_due) > now:
                return out
            if video_due <= audio_due:
                template = clip.video[self._video_index % len(clip.video)]
                ts = self._video_ms(self._video_index)
                self._video_index += 1
            else:
                template = clip.audio[self._audio_index % len(clip.audio)]
                ts = self._audio_ms(self._audio_index)
                self._audio_index += 1
            out.append(MediaPacket(template.track, ts, ts, template.data, template.keyframe,
                                   template.config, now))

    def restart(self, clip: SlateClip) -> None:
        """Switch to a newly encoded clip (the replaced stream's parameters changed).

        The new clip starts with its keyframe where the old one's next packets
        would have gone (the later of the two tracks), so timestamps keep rising
        on both tracks and the pacing continues without a gap or a burst.
        """
        origin_ms = max(self._video_ms(self._video_index), self._audio_ms(self._audio_index))
        origin_time = self._origin_time + (origin_ms - self._origin_ms) / 1000
        self._begin(clip, origin_ms, origin_time)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the built-in card as a PNG: ``python -m relay.push.slate OUT.png [WIDTHxHEIGHT [LANG]]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(args) <= 3:
        print("usage: python -m relay.push.slate OUT.png [WIDTHxHEIGHT [en|zh-CN]]", file=sys.stderr)
        return 2
    width, height = DEFAULT_WIDTH, DEFAULT_HEIGHT
    if len(args) >= 2:
        w, _, h = args[1].partition("x")
        width, height = int(w), int(h)
    write_png(args[0], render_card(width, height, args[2] if len(args) == 3 else "en"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
