"""The slate card's words in Chinese: glyphs drawn with Noto Sans CJK (Debian's
fonts-noto-cjk), shipped as a strip (relay/push/cjk-glyphs.png) that holds every character
the catalogues' slate texts use and matches the font, laid out inside the picture."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np

from relay.push import card_text
from relay.push.slate import encode_slate, render_card
from tests.support.tools import require

PUSH = Path(card_text.__file__).resolve().parent


def test_the_strip_holds_every_character_of_the_slate_texts() -> None:
    index = json.loads((PUSH / card_text.INDEX).read_text(encoding="utf-8"))
    assert card_text.needed() and set(card_text.needed()) <= set(index["chars"]), (
        "run python -m relay.push.card_text after changing slate.* in the catalogues")


def test_the_strip_is_the_fonts_own_drawing(tmp_path: Path) -> None:
    require("ffmpeg")
    assert Path(card_text.FONT).exists(), "fonts-noto-cjk is missing: ./scripts/setup installs it"
    index = json.loads((PUSH / card_text.INDEX).read_text(encoding="utf-8"))
    card_text.draw_strip(index["chars"], tmp_path / "strip.png")

    def pixels(path: Path) -> np.ndarray:
        with av.open(str(path)) as c:
            return next(c.decode(video=0)).to_ndarray(format="gray").astype(np.float32)

    fresh, shipped = pixels(tmp_path / "strip.png"), pixels(PUSH / card_text.STRIP)
    assert fresh.shape == shipped.shape
    assert np.abs(fresh - shipped).mean() < 2.0  # the same glyphs (a rasteriser may differ by a shade)


def test_the_chinese_card_fits_every_picture_and_differs_from_the_english_one() -> None:
    for width, height in ((1280, 720), (1920, 1080), (640, 360), (720, 1280)):
        zh, en = render_card(width, height, "zh-CN"), render_card(width, height)
        assert zh.shape == (height, width, 3) and not np.array_equal(zh, en)
        ink = np.where(zh.min(axis=2) > 200)  # the headline's white
        assert ink[0].size > 0.004 * width * height, (width, height, ink[0].size)
        rows, cols = ink
        assert rows.min() > height * 0.2 and rows.max() < height * 0.8  # centred, inside the picture
        assert cols.min() >= width * 0.04 and cols.max() <= width * 0.96
        assert zh.mean() > 0.1 * 255  # never "black" to the watchers


def test_a_chinese_slate_is_encoded_with_its_words() -> None:
    clip = encode_slate(None, None, None, 30.0, seconds=0.2, lang="zh-CN")
    assert clip.video[0].keyframe
    decoder = av.CodecContext.create("h264", "r")
    decoder.extradata = clip.video_config.extradata
    frames = decoder.decode(av.Packet(clip.video[0].data))
    frames += decoder.decode(None)
    picture = frames[0].to_ndarray(format="rgb24").astype(np.float32)
    zh = render_card(picture.shape[1], picture.shape[0], "zh-CN").astype(np.float32)
    en = render_card(picture.shape[1], picture.shape[0]).astype(np.float32)
    assert np.abs(picture - zh).mean() < np.abs(picture - en).mean() / 2
