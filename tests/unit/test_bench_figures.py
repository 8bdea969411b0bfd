"""The bench's arithmetic (bench/figures.py) on made-up viewer timelines."""

from __future__ import annotations

import math

import pytest

from bench.figures import (
    Summary,
    added_latency,
    black_gap,
    change_pct,
    cpu_percent,
    failover_gap,
    longest_gap,
    percentile,
    slope_per_hour,
)

FRAME = 1 / 30


def timeline(*parts: tuple[str, float, float]) -> list[tuple[float, str]]:
    """(label, from s, to s) parts of a 30 fps arrival timeline."""
    out: list[tuple[float, str]] = []
    for label, start, end in parts:
        n = round((end - start) / FRAME)
        out += [(start + i * FRAME, label) for i in range(n)]
    return out


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == pytest.approx(4.8)
    assert percentile(values, 100) == 5.0
    assert math.isnan(percentile([], 50))
    s = Summary.of([10.0, 30.0, 20.0])
    assert (s.n, s.median, s.max) == (3, 20.0, 30.0)


def test_longest_gap_counts_the_pause_that_starts_before_the_window() -> None:
    arrivals = timeline(("main", 0.0, 5.0), ("backup", 5.4, 7.0))
    assert longest_gap(arrivals, 4.99, 6.0) == pytest.approx(5.4 - (5.0 - FRAME))
    assert longest_gap(arrivals, 0.0, 3.0) == pytest.approx(FRAME)


def test_killed_main_freeze_and_time_to_backup() -> None:
    # main dies at 5.0 s; the last main frame arrived just before; backup from 5.25 s
    arrivals = timeline(("main", 0.0, 5.0), ("backup", 5.25, 8.0))
    gap = failover_gap(arrivals, fault_at=5.0)
    assert gap is not None
    assert gap.on_air_ms == pytest.approx(250, abs=1)
    assert gap.freeze_ms == pytest.approx((5.25 - (5.0 - FRAME)) * 1000, abs=1)


def test_no_backup_at_the_viewer_is_no_gap() -> None:
    assert failover_gap(timeline(("main", 0.0, 5.0), ("other", 5.1, 8.0)), fault_at=5.0) is None


def test_black_on_air_runs_from_the_first_black_frame_to_the_first_backup_frame() -> None:
    arrivals = timeline(("main", 0.0, 9.0), ("black", 9.0, 11.2), ("backup", 11.2, 14.0),
                        ("main", 15.0, 24.0), ("black", 24.0, 26.1), ("backup", 26.1, 28.0))
    first = black_gap(arrivals, 0.0)
    second = black_gap(arrivals, 14.5)
    assert first is not None and second is not None
    assert first[0] == pytest.approx(9.0)
    assert first[1].on_air_ms == pytest.approx(2200, abs=1)
    assert first[1].freeze_ms == pytest.approx(FRAME * 1000, abs=1)  # black flowed until the switch
    assert second[1].on_air_ms == pytest.approx(2100, abs=1)
    assert black_gap(arrivals, 27.0) is None


def test_black_on_air_ends_at_the_bridge_when_a_still_of_the_backup_comes_first() -> None:
    """A fault switch to a backup whose keyframe is too old puts a still of the backup on air
    (its payloads belong to no clip: `other`) until the keyframe: black is off air from it."""
    arrivals = timeline(("main", 0.0, 9.0), ("black", 9.0, 11.1), ("other", 11.1, 11.8),
                        ("backup", 11.8, 14.0))
    found = black_gap(arrivals, 0.0)
    assert found is not None and found[1].on_air_ms == pytest.approx(2100, abs=1)
    # without the backup ever following, no gap is measured
    assert black_gap(timeline(("main", 0.0, 9.0), ("black", 9.0, 11.1), ("other", 11.1, 14.0)), 0.0) is None


def test_added_latency_matches_frames_by_hash_even_when_the_clip_loops() -> None:
    # a 3-frame clip looping every 0.1 s; Relay's path is 12 ms behind the direct one
    direct = [(i * FRAME, f"h{i % 3}") for i in range(30)]
    relayed = [(t + 0.012, h) for t, h in direct[5:25]]
    relayed.append((5.0, "unknown"))
    lat = added_latency(direct, relayed, max_skew_s=0.04)
    assert len(lat) == 20
    assert all(v == pytest.approx(12, abs=0.01) for v in lat)


def test_added_latency_ignores_matches_further_apart_than_the_skew() -> None:
    assert added_latency([(0.0, "a")], [(5.0, "a")], max_skew_s=3.0) == []


def test_cpu_and_change() -> None:
    assert cpu_percent(3.0, 30.0) == pytest.approx(10.0)
    assert math.isnan(cpu_percent(1.0, 0.0))
    assert change_pct(100.0, 104.0) == pytest.approx(4.0)


def test_the_rss_slope_is_a_least_squares_fit_over_the_last_hour() -> None:
    # 2 h: rising 4 MB/h for the first hour, flat (with noise) for the last: the fit says flat
    first = [(t, 150 + 4 * t / 3600) for t in range(0, 3600, 5)]
    last = [(t, 154 + (0.3 if (t // 5) % 2 else -0.3)) for t in range(3600, 7205, 5)]
    slope, span = slope_per_hour(first + last)
    assert abs(slope) < 0.05 and span == 3600
    # one high sample does not decide, as it would first against last
    spiky = [(t, 150.0) for t in range(0, 3600, 5)] + [(3600.0, 160.0)]
    assert slope_per_hour(spiky)[0] < 0.5
    # a steady creep is its rate per hour, whatever the window
    creep = [(t, 100 + 0.9 * t / 3600) for t in range(0, 7200, 5)]
    assert abs(slope_per_hour(creep)[0] - 0.9) < 1e-9
    assert abs(slope_per_hour(creep, last_s=600)[0] - 0.9) < 1e-9
    assert math.isnan(slope_per_hour([(1.0, 5.0)])[0]) and math.isnan(slope_per_hour([])[0])
