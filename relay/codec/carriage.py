"""Which video codecs each kind of destination can carry, and what to tell people when
one cannot: the rule behind "never a tag that misnames the codec" (rtmp/flv.py) and
the checks that say so before the show (config-check, `relay check`).

A destination's *form* is how its video is written: for rtmp:// and rtmps:// the
output's ``video_tags`` (``legacy``, ``enhanced``, ``codec_id_12``, rtmp/flv.py
explains each), for srt:// MPEG-TS, which carries H.264 and HEVC (stream types 0x1B
and 0x24) and, in what platforms ingest, not AV1.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from relay.codec.video import label

FORMS = {
    "legacy": ("h264",),
    "enhanced": ("h264", "hevc", "av1"),
    "codec_id_12": ("h264", "hevc"),
    "mpegts": ("h264", "hevc"),
}


class CannotCarry(Exception):
    """The destination's form has no way to carry this codec: nothing is written."""

    def __init__(self, codec: str, form: str) -> None:
        self.codec, self.form = codec, form
        where = "MPEG-TS over SRT" if form == "mpegts" else f"{form} FLV tags (video_tags = {form!r})"
        super().__init__(f"cannot carry {label(codec)} in {where}; {advice(codec, form)}")


def form_of(url: str, video_tags: str) -> str:
    """The form an ingest URL is written in."""
    return "mpegts" if urlsplit(url).scheme == "srt" else video_tags


def carries(form: str, codec: str) -> bool:
    return codec in FORMS.get(form, ())


def advice(codec: str, form: str) -> str:
    """What would carry it (for messages to people)."""
    if form == "mpegts":
        return "push it over RTMP with video_tags = 'enhanced', or send the platform H.264 or HEVC"
    if codec == "hevc":
        return ("for a platform that reads HEVC set video_tags = 'enhanced' (enhanced RTMP: YouTube, "
                "OBS 29.1+ servers) or 'codec_id_12' (Chinese platforms and CDNs); otherwise have the "
                "encoders send H.264")
    if codec == "av1":
        return ("for a platform that reads AV1 set video_tags = 'enhanced' (enhanced RTMP); otherwise "
                "have the encoders send H.264")
    return "every RTMP platform reads H.264"
