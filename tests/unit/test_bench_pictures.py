"""The bench's count of pictures repeated at the viewer (bench/pictures.py), on made-up
pictures: what the audience would see as a still picture after a switch."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np

from bench.pictures import (
    Shown,
    blocks,
    label_of,
    read,
    repeated,
    repeats_after_switch,
    same,
    small_corner,
    small_luma,
)
from bench.report import BLACK, KILLED, REPEATS_ROW, Machine, bars, render
from bench.sweep import SweepPoint
from tests.unit.test_bench_report import point, results

FRAME = 1000 / 30


def shows(*pictures: tuple[str, bool], start_ms: int = 0, gaps: dict[int, int] | None = None) -> list[Shown]:
    """Pictures a frame apart (``gaps``: index → frames skipped before it), decoded 40 ms apart."""
    out, pts = [], float(start_ms)
    for i, (label, repeat) in enumerate(pictures):
        pts += (1 + (gaps or {}).get(i, 0)) * FRAME if i else 0
        out.append(Shown(100.0 + i * 0.04, round(pts), label, repeat))
    return out


def test_moving_pictures_repeat_nothing() -> None:
    assert repeated(shows(*[("backup", False)] * 10)) == [0] * 10


def test_a_held_picture_counts_each_frame_it_stays_up() -> None:
    shown = shows(("main", False), ("backup", False), ("backup", True), ("backup", True), ("backup", False))
    assert repeated(shown) == [0, 0, 1, 2, 0]


def test_a_gap_in_the_timestamps_is_the_picture_before_staying_up() -> None:
    # three frame intervals missing before picture 2, which moved: picture 1 stayed up 3 more
    shown = shows(("backup", False), ("backup", False), ("backup", False), gaps={2: 3})
    assert repeated(shown) == [0, 3, 0]
    # the same gap before a held picture: the run goes on through it
    held = shows(("backup", False), ("backup", True), ("backup", True), gaps={2: 3})
    assert repeated(held) == [0, 1, 5]


def test_after_a_switch_only_what_follows_the_first_picture_of_the_target_counts() -> None:
    # main froze for 10 frames before the switch (the detection's figure, not the switch's),
    # then the backup moves but holds one picture for 2 frames
    pictures = [("main", False)] + [("main", True)] * 10 + [("backup", False), ("backup", True),
                                                              ("backup", True)] + [("backup", False)] * 5
    shown = shows(*pictures)
    assert repeats_after_switch(shown, switch_at=0.0, window_s=3.0) == 2
    # decoded before the switch moment: not counted as the switch's
    assert repeats_after_switch(shown, switch_at=shown[-1].at + 1, window_s=3.0) is None
    # a still bridge: the backup's first picture held for 120 frames
    still = shows(("main", False), ("backup", False), *[("backup", True)] * 120, ("backup", False))
    assert repeats_after_switch(still, switch_at=0.0, window_s=5.0) == 120
    # ... counted only within the window, by presentation time
    assert repeats_after_switch(still, switch_at=0.0, window_s=1.0) == 30


def test_same_tells_noise_from_motion() -> None:
    rng = np.random.default_rng(1)
    picture = rng.integers(40, 200, size=(270, 480)).astype(np.uint8)
    noisy = np.clip(picture + rng.normal(0, 1.0, picture.shape), 0, 255).astype(np.uint8)
    moved = picture.copy()
    moved[100:132, 200:232] = 255 - moved[100:132, 200:232]  # one 32x32 patch changed
    assert same(blocks(picture), blocks(noisy))
    assert not same(blocks(picture), blocks(moved))
    assert not same(blocks(picture), blocks(picture[:200]))  # another size is another picture


def test_labels_and_the_downscaled_planes_from_a_real_frame() -> None:
    rgb = np.full((1080, 1920, 3), 128, np.uint8)
    rgb[:64, :64] = (0, 0, 255)  # the backup's blue square
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    assert small_luma(frame).shape == (270, 480)
    assert label_of(small_corner(frame)) == "backup"
    rgb[:64, :64] = (255, 0, 0)
    assert label_of(small_corner(av.VideoFrame.from_ndarray(rgb, format="rgb24"))) == "main"
    assert label_of(np.zeros((8, 8, 3), np.uint8)) == "black"
    assert label_of(np.full((8, 8, 3), 128, np.uint8)) == "other"


def test_read_leaves_out_a_half_written_line(tmp_path: Path) -> None:
    log = tmp_path / "pictures.tsv"
    log.write_text("10.5\t0\tmain\t0\n10.54\t33\tmain\t1\n10.58\t6")
    assert read(str(log)) == [Shown(10.5, 0, "main", False), Shown(10.54, 33, "main", True)]


def test_the_page_judges_the_worst_switch_against_three_repeats() -> None:
    def sweep_point(repeats: int | None) -> SweepPoint:
        return dataclasses.replace(point(0.5), repeats=repeats)

    good = results(repeats={KILLED: [0, 1, 0], BLACK: [2]},
                   sweep={"8.33": [sweep_point(3), sweep_point(None), sweep_point(0)]})
    row = next(row for row in bars(good) if row[0] == REPEATS_ROW)
    assert row[1:] == ("3 (over 6 switches)", "≤ 3", True)
    page = render(good, Machine.this(), {})
    assert "| 0 / 1 |" in page and "| 2 / 2 |" in page  # killed and black, median / max
    assert "| 2 / 3 |" in page  # the sweep's two measured points (an older run's None left out)
    bad = results(repeats={KILLED: [0, 126]})  # a still picture up to the backup's keyframe
    row = next(row for row in bars(bad) if row[0] == REPEATS_ROW)
    assert row[1:] == ("126 (over 2 switches)", "≤ 3", False)
    assert all(row[0] != REPEATS_ROW for row in bars(results()))  # not measured: no row
