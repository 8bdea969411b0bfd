"""Pure arithmetic on what the viewers and the process samplers recorded.

An *arrival* is ``(monotonic seconds, label)`` for one video frame at a viewer,
in arrival order; labels come from bench/clips.py (`main`, `backup`, `black`,
`other`). Nothing here reads a clock or a file, so it is unit-tested on made-up
timelines (tests/unit/test_bench_figures.py).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

Arrival = tuple[float, str]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(len(values), percentile(values, 50), percentile(values, 95), percentile(values, 99),
                   max(values) if values else math.nan)


def first_after(arrivals: Sequence[Arrival], t: float, label: str) -> float | None:
    """When the first frame labelled `label` arrived at or after `t`."""
    start = bisect.bisect_left(arrivals, (t, ""))
    for when, lab in arrivals[start:]:
        if lab == label:
            return when
    return None


def longest_gap(arrivals: Sequence[Arrival], start: float, end: float) -> float:
    """The longest interval between consecutive frames, for frames arriving in (start, end]
    and the one before each of them: what a viewer sees as a freeze in that window."""
    times = [t for t, _ in arrivals]
    lo = max(bisect.bisect_right(times, start) - 1, 0)
    hi = bisect.bisect_right(times, end)
    window = times[lo:hi]
    return max((b - a for a, b in itertools.pairwise(window)), default=math.nan)


@dataclass(frozen=True)
class FailoverGap:
    freeze_ms: float  # the longest pause between frames around the switch
    on_air_ms: float  # fault (or first black frame) → first backup frame at the viewer


def failover_gap(arrivals: Sequence[Arrival], fault_at: float, *,
                 settle_s: float = 0.5) -> FailoverGap | None:
    """A killed or stalled main at `fault_at` (when the bench signalled the publisher)."""
    backup = first_after(arrivals, fault_at, "backup")
    if backup is None:
        return None
    freeze = longest_gap(arrivals, fault_at - 1.0, backup + settle_s)
    return FailoverGap(freeze * 1000, (backup - fault_at) * 1000)


def black_gap(arrivals: Sequence[Arrival], after: float, *,
              settle_s: float = 0.5) -> tuple[float, FailoverGap] | None:
    """The first black picture after `after` and the switch away from it:
    (when black arrived, gap), the gap's on-air time measured from the first black frame
    to the first frame that is neither black nor main's: the backup's, or the still of the
    backup that bridges to its next keyframe (push/bridge.py; a payload of no clip, so
    `other`), whichever comes first. None if the backup itself never follows."""
    black = first_after(arrivals, after, "black")
    if black is None:
        return None
    backup = first_after(arrivals, black, "backup")
    if backup is None:
        return None
    start = bisect.bisect_left(arrivals, (black, ""))
    off_air = next((when for when, label in arrivals[start:] if label not in ("black", "main")), backup)
    freeze = longest_gap(arrivals, black - 1.0, backup + settle_s)
    return black, FailoverGap(freeze * 1000, (off_air - black) * 1000)


def added_latency(direct: Sequence[tuple[float, str]], relayed: Sequence[tuple[float, str]],
                  *, max_skew_s: float = 3.0) -> list[float]:
    """Per frame seen on both paths: relayed arrival minus direct arrival, in ms.

    Frames are matched by payload hash; a clip loops, so a hash comes back every
    loop: each relayed frame is matched with the direct arrival of the same hash
    nearest in time, within `max_skew_s` (well under a loop's length)."""
    by_hash: dict[str, list[float]] = {}
    for t, digest in direct:
        by_hash.setdefault(digest, []).append(t)
    out: list[float] = []
    for t, digest in relayed:
        times = by_hash.get(digest)
        if not times:
            continue
        i = bisect.bisect_left(times, t)
        near = [times[j] for j in (i - 1, i) if 0 <= j < len(times)]
        best = min(near, key=lambda d: abs(t - d))
        if abs(t - best) <= max_skew_s:
            out.append((t - best) * 1000)
    return out


def cpu_percent(cpu_seconds: float, wall_seconds: float) -> float:
    """CPU time over wall time, as percent of one core."""
    return 100.0 * cpu_seconds / wall_seconds if wall_seconds > 0 else math.nan


def change_pct(start: float, end: float) -> float:
    return 100.0 * (end - start) / start if start else math.nan


def slope_per_hour(samples: Sequence[tuple[float, float]], *, last_s: float = 3600.0) -> tuple[float, float]:
    """A least-squares line through ``(seconds, value)`` samples of the last ``last_s``
    seconds: (its slope per hour, the seconds it spans). A slope, not first-vs-last, so
    one high or low sample does not decide, and a plateau reads as flat where a
    percentage over the whole soak cannot tell it from a steady creep. NaN for fewer
    than two samples or no time between them."""
    if not samples:
        return math.nan, 0.0
    end = samples[-1][0]
    window = [(t, v) for t, v in samples if t >= end - last_s]
    span = window[-1][0] - window[0][0] if window else 0.0
    if len(window) < 2 or span <= 0:
        return math.nan, span
    n = len(window)
    mean_t = sum(t for t, _ in window) / n
    mean_v = sum(v for _, v in window) / n
    var_t = sum((t - mean_t) ** 2 for t, _ in window)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in window)
    return cov / var_t * 3600.0, span
