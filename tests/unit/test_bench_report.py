"""The benchmark page (bench/report.py): verdicts per bar, and figures saved and loaded again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bench.figures import FailoverGap
from bench.report import BLACK, KILLED, STALLED, Machine, Results, bars, load, render, save
from bench.sweep import SweepPoint, next_loss

MB = 1024 * 1024


def results(**over: object) -> Results:
    r = Results(
        started=datetime(2026, 1, 2, 3, 4, tzinfo=UTC), command="scripts/bench", runs=3, soak_minutes=5,
        measure_s=30, clip="1920x1080 30 fps", failover={"healthy_for_s": 1.0},
        thresholds={"input_stall_ms": 700.0, "black_s": 2.0}, load_start=(1.0, 1.0, 1.0),
        load_end=(1.5, 1.2, 1.1), duration_s=900,
        gaps={KILLED: [FailoverGap(80, 30)] * 3, STALLED: [FailoverGap(750, 740)] * 3,
              BLACK: [FailoverGap(80, 2200)] * 3},
        failed_runs={KILLED: 0, STALLED: 0, BLACK: 0},
        latency_ms=[1.0] * 99 + [40.0], relay_cpu_pct=6.0, relay_rss=150 * MB, ffmpeg_cpu_pct=40.0,
        ffmpeg_rss=120 * MB, soak_viewer_gap_ms=90.0, soak_frames=9000,
        soak_rss=[(0.0, 140 * MB), (30.0, 150 * MB), (300.0, 151 * MB)], soak_warmup_s=30,
    )
    for k, v in over.items():
        setattr(r, k, v)
    return r


def test_every_bar_met_on_good_figures() -> None:
    table = bars(results())
    assert len(table) == 10
    assert all(ok for *_, ok in table), table


def test_each_bar_is_missed_by_its_own_figure() -> None:
    slow_kill = results(gaps={KILLED: [FailoverGap(400, 30)] * 3, STALLED: [FailoverGap(750, 740)] * 3,
                              BLACK: [FailoverGap(80, 2400)] * 3})
    missed = [what for what, _, _, ok in bars(slow_kill) if not ok]
    assert [m.split(":")[0] for m in missed] == ["failover, killed main", "failover, black main"]
    heavy = results(relay_cpu_pct=15.0)  # above 8 %, and 0.375 of ffmpeg's 40 %
    assert [what for what, _, _, ok in bars(heavy) if not ok] == [
        "CPU, one channel, two live inputs", "CPU, Relay / ffmpeg doing the nearest thing"]
    # under 8 % but over 0.35 of an ffmpeg that costs little: the ratio alone is missed
    light_peer = results(relay_cpu_pct=7.0, ffmpeg_cpu_pct=18.0)
    assert [what for what, _, _, ok in bars(light_peer) if not ok] == [
        "CPU, Relay / ffmpeg doing the nearest thing"]
    growing = results(soak_rss=[(0.0, 100 * MB), (30.0, 100 * MB), (300.0, 110 * MB)])
    assert [what for what, _, _, ok in bars(growing) if not ok] == [
        "memory: RSS change over the 5-minute soak"]
    reconnected = results(reconnects_total=1)
    assert [what for what, _, _, ok in bars(reconnected) if not ok] == [
        "output reconnects over the whole run"]


def test_a_failed_run_misses_the_bar_even_with_good_figures() -> None:
    r = results(failed_runs={KILLED: 1, STALLED: 0, BLACK: 0})
    killed = next(row for row in bars(r) if row[0].startswith("failover, killed"))
    assert not killed[3] and "1 of 4 runs never showed the backup" in killed[1]


def test_figures_round_trip_and_render(tmp_path: Path) -> None:
    r = results(notes="The CPU bar is close.")
    save(r, tmp_path / "results.json")
    again = load(tmp_path / "results.json")
    assert again == r
    page = render(again, Machine("Test CPU", 2, 8.0, "Debian", "6.1"), {"Relay": "0.1.0"})
    assert "All bars met." in page and "## Notes\n\nThe CPU bar is close." in page
    assert "| killed | 3 | 80 ms | 80 ms | 80 ms | 30 ms" in page
    assert "load average at start 1.00" in page


def point(phase: float, wait: float = 120.0, slate: bool = False) -> SweepPoint:
    return SweepPoint(phase_s=phase, failover_gap_ms=wait, on_air_ms=60.0, failback_gap_ms=80.0,
                      later_pause_ms=40.0, freeze_ms=300.0, added_delay_ms=0.0, slate=slate, failed=False)


def test_the_sweep_bars_count_slate_landings_and_the_longest_wait() -> None:
    good = results(sweep={"2": [point(i * 0.05) for i in range(40)],
                          "8.33": [point(i * 0.2) for i in range(40)]})
    table = bars(good)
    assert len(table) == 14 and all(ok for *_, ok in table), table
    bad = results(sweep={"8.33": [point(0.0), point(4.0, wait=650.0), point(8.0, slate=True)]})
    slate_row, wait_row = bars(bad)[-2:]
    assert (slate_row[1], slate_row[3]) == ("1", False)
    assert (wait_row[1], wait_row[3]) == ("650 ms", False)
    page = render(good, Machine.this(), {})
    assert "## Phase sweep" in page and "| 8.33 s | 40 | 0 | 0 |" in page


def test_sweep_points_round_trip(tmp_path: Path) -> None:
    r = results(sweep={"2": [point(0.0), point(1.0, slate=True)]})
    save(r, tmp_path / "results.json")
    assert load(tmp_path / "results.json").sweep == r.sweep


def test_losses_are_planned_at_their_phase_of_a_group() -> None:
    start, group = 100.0, 2.0
    for phase in (0.0, 0.55, 1.95):
        t = next_loss(start, group, phase, now=107.3)
        assert t >= 107.3 + 1.0 and abs((t - start) % group - phase) < 1e-9
        assert t - (107.3 + 1.0) < group


def test_obs_default_cpu_bars_growth_table_loop_lag_and_the_profile_before(tmp_path: Path) -> None:
    r = results(
        obs_cpu={"clip": "keyframe every 8.33 s", "relay_cpu_pct": 9.0, "relay_rss": 160 * MB,
                 "ffmpeg_cpu_pct": 36.0, "ffmpeg_rss": 190 * MB},
        growth=[{"label": "1080p30 6 Mbit/s", "inputs": 4, "outputs": 1, "seconds": 30.0,
                 "cpu_pct": [12.0, 13.0, 14.0], "rss_mb": 210.0, "loop_lag_ms": None,
                 "loop_cpu_pct": [8.0, 8.5, 9.0]}],
        soak_loop_lag_ms=[2.0] * 99 + [40.0], profile_before="| 60.9 % | `_VideoDecoder.decode` |")
    table = bars(r)
    assert len(table) == 12
    assert [what for what, _, _, ok in table if not ok] == [
        "CPU, one channel, two live inputs (OBS's defaults: hard CBR, 250-frame keyframes)"]
    save(r, tmp_path / "results.json")
    again = load(tmp_path / "results.json")
    assert again == r
    page = render(again, Machine("Test CPU", 2, 8.0, "Debian", "6.1"), {"Relay": "0.1.0"})
    assert "| 1080p30 6 Mbit/s | 4 | 1 | 13.0 % | 3.2 % | 8.5 % | 210 MB |" in page
    assert "| relay run, keyframe every 8.33 s | 9.0 % | 160 MB |" in page
    assert "| 2 ms / 40 ms |" in page  # the soak's loop lag: p99 / max
    assert "## Profile before the decode plan" in page and "`_VideoDecoder.decode`" in page


def test_the_soak_reports_its_rss_slope_and_judges_it_on_a_whole_last_hour() -> None:
    # the 5-minute soak: the slope is shown, not judged
    short = results()
    assert not any("slope" in what for what, *_ in bars(short))
    # a 2-hour soak that creeps 1 MB/h: within ±5 % over the soak, but the slope says no
    hours = [(t, int((150 + 1.0 * t / 3600) * MB)) for t in range(0, 7200, 5)]
    creeping = results(soak_minutes=120, soak_rss=hours)
    slope_rows = [row for row in bars(creeping) if "slope" in row[0]]
    assert [ok for *_, ok in bars(creeping) if not ok] == [False]
    assert slope_rows and slope_rows[0][1] == "+1.00 MB/h" and not slope_rows[0][3]
    noisy = [(t, 150 * MB + (t // 5 % 3) * 4096) for t in range(0, 7200, 5)]
    flat = results(soak_minutes=120, soak_rss=noisy)
    assert all(ok for *_, ok in bars(flat))
    page = render(creeping, Machine("Test CPU", 2, 8.0, "Debian", "6.1"), {})
    assert "+1.00 MB/h" in page
