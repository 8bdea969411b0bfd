"""Chinese words on the built-in slate card, from glyphs drawn once with Noto Sans CJK.

The card is drawn without an imaging library or a font engine at run time (slate.py):
English with its 5x7 bitmap font, Chinese from ``cjk-glyphs.png``, a strip of the glyphs
the catalogues' ``slate.*`` texts use, one square cell per character, rendered by FFmpeg's
drawtext from Debian's fonts-noto-cjk (NotoSansCJK-Bold) and shipped in the package so a
studio PC needs neither. ``python -m relay.push.card_text`` draws the strip again after the
texts change (tests/unit/test_slate_text.py checks it holds every character and matches
the font).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path

import av
import numpy as np

from relay.i18n import LANGUAGES, catalogue

STRIP = "cjk-glyphs.png"
INDEX = "cjk-glyphs.json"  # {"cell": pixels, "chars": "..."}: the strip's characters in order
CELL = 96  # a glyph's cell: the font size, and each full-width character's advance
STRIP_HEIGHT = 112  # the cell and room for the font's ascent and descent
FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"  # Debian's fonts-noto-cjk
SLATE_KEYS = ("slate.headline", "slate.subline")


def needed() -> str:
    """Every non-ASCII character the slate's texts use, in every language, once each."""
    chars = dict.fromkeys(c for lang in LANGUAGES for key in SLATE_KEYS for c in catalogue(lang)[key]
                          if ord(c) > 127 and not c.isspace())
    return "".join(chars)


@cache
def _glyphs() -> dict[str, np.ndarray]:
    """The shipped strip cut into its cells: character -> coverage (float32, 0..1)."""
    here = resources.files("relay.push")
    index = json.loads(here.joinpath(INDEX).read_text(encoding="utf-8"))
    with resources.as_file(here.joinpath(STRIP)) as path, av.open(str(path)) as container:
        strip = next(container.decode(video=0)).to_ndarray(format="gray").astype(np.float32) / 255.0
    cell = int(index["cell"])
    return {c: strip[:, n * cell:(n + 1) * cell] for n, c in enumerate(index["chars"])}


def text_mask(text: str, height: int) -> np.ndarray:
    """Coverage of one line of `text` (float32 0..1) `height` pixels high: the glyphs' cells
    side by side, scaled with area averaging. A character the strip lacks is left blank."""
    glyphs = _glyphs()
    blank = np.zeros((STRIP_HEIGHT, CELL // 2), np.float32)
    cells = [glyphs.get(c, blank) if c.strip() else blank for c in text]
    line = np.concatenate(cells, axis=1) if cells else blank
    width = max(2, round(line.shape[1] * height / line.shape[0]))
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray((line * 255).astype(np.uint8)), format="gray")
    scaled = frame.reformat(width, max(2, height), format="gray", interpolation="AREA").to_ndarray()
    return scaled.astype(np.float32) / 255.0


def draw_strip(chars: str, out: Path, font: str = FONT) -> None:
    """Render `chars` with `font` into the strip PNG (FFmpeg's drawtext; needs the ffmpeg
    command and the font: a development step, never done on a studio PC)."""
    if not Path(font).exists():
        raise FileNotFoundError(f"{font}: install Debian's fonts-noto-cjk (scripts/setup does)")
    text = chars.replace("\\", "\\\\").replace("'", "\\'").replace(":", "\\:")
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", f"color=black:s={CELL * len(chars)}x{STRIP_HEIGHT}:d=1",
         "-vf", f"drawtext=fontfile={font}:text='{text}':fontcolor=white:fontsize={CELL}:x=0:y=(h-th)/2,"
                "format=gray",
         "-frames:v", "1", "-y", str(out)],
        check=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m relay.push.card_text``: draw the strip of the slate's characters again."""
    args = list(sys.argv[1:] if argv is None else argv)
    here = Path(__file__).resolve().parent
    chars = needed()
    draw_strip(chars, here / STRIP, *args[:1])
    (here / INDEX).write_text(json.dumps({"cell": CELL, "chars": chars}, ensure_ascii=False) + "\n",
                              encoding="utf-8")
    print(f"{len(chars)} characters drawn into {here / STRIP}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
