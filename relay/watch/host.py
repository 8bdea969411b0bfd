"""`host` (BEHAVIOUR §3): the studio PC itself (CPU, memory, disk, network interfaces).

`read_host_sample()` asks psutil (CPU use is measured since the previous call in the
same thread); `HostSampler` calls it once a second in a thread of its own, so the
event loop never waits on /proc or on a disk: ``disk_usage`` on a dead network mount
blocks in stat() for minutes, so the disk is read through a `DiskProbe` that waits
for it at most a second (the figure is then unknown, None) and never has more than
one read stuck on it. `HostWatch` judges the samples and reads no clock, so it is
tested with made-up samples. All host troubles are one fault, `host`, as BEHAVIOUR §3 has one
row for them: tier 2 while any of CPU (held `host_cpu_s`), memory, disk or growing
NIC error counters is wrong, tier 1 while a network interface that was up is down.
The raise names every cause in `detail`; `value`/`threshold` describe the first.

Interfaces that were never up since Relay started (an unplugged spare port, Wi-Fi
switched off) are ignored: only losing a link we had is a fault.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from relay.events import EventSink
from relay.log import get_logger
from relay.settings import ThresholdSettings
from relay.watch.fault import Fault

log = get_logger("relay.watch.host")
DISK_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class HostSample:
    cpu_pct: float  # all cores, 0..100
    mem_free_pct: float  # available memory, 0..100
    disk_free_gb: float | None  # on host_disk_path; None: the disk did not answer
    nic_errors: int  # errors in + out, all interfaces, since boot
    nics_up: dict[str, bool] = field(default_factory=dict)  # loopback left out
    net_sent_bytes: int = 0
    net_recv_bytes: int = 0


class DiskProbe:
    """Free space on one path, read in a thread that is waited for at most ``timeout_s``.

    A read that does not return in time is left to finish on its own (a thread stuck
    in stat() cannot be interrupted); until it does, the figure is unknown and no
    second read is started, so a dead mount costs one stuck thread, not one a second."""

    def __init__(self, path: str, timeout_s: float = DISK_TIMEOUT_S) -> None:
        self.path = path
        self._timeout_s = timeout_s
        self._thread: threading.Thread | None = None
        self._free_gb: float | None = None
        self._said_stuck = False

    def free_gb(self) -> float | None:
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._free_gb = None
            thread = self._thread = threading.Thread(target=self._read, name="host-disk", daemon=True)
            thread.start()
        thread.join(self._timeout_s)
        if thread.is_alive():
            if not self._said_stuck:
                self._said_stuck = True
                log.warning("host_disk_unresponsive", path=self.path,
                            detail=f"reading its free space took over {self._timeout_s:g} s "
                                   "(a dead network mount?); disk figures unknown until it answers")
            return None
        if self._said_stuck:
            self._said_stuck = False
            log.info("host_disk_answers_again", path=self.path)
        return self._free_gb

    def _read(self) -> None:
        try:
            self._free_gb = psutil.disk_usage(self.path).free / 1e9
        except OSError as e:
            log.warning("host_disk_unreadable", path=self.path, error=str(e))
            self._free_gb = None


def read_host_sample(disk_path: str = "/", disk: DiskProbe | None = None) -> HostSample:
    """One psutil reading. The first call's CPU figure is 0 (psutil needs a previous call
    in the same thread). Without a ``disk`` probe the disk is read directly (it may block)."""
    vm = psutil.virtual_memory()
    disk_free = disk.free_gb() if disk is not None else psutil.disk_usage(disk_path).free / 1e9
    io = psutil.net_io_counters()
    nics = {name: bool(st.isup) for name, st in psutil.net_if_stats().items() if name != "lo"}
    return HostSample(
        cpu_pct=float(psutil.cpu_percent(interval=None)),
        mem_free_pct=100.0 * vm.available / vm.total,
        disk_free_gb=disk_free,
        nic_errors=int(io.errin + io.errout),
        nics_up=nics,
        net_sent_bytes=int(io.bytes_sent),
        net_recv_bytes=int(io.bytes_recv),
    )


class HostSampler:
    """One dedicated thread reading the host every ``interval_s`` and handing each sample
    to ``deliver`` (which must not block: the daemon passes a hand-over to the loop).

    ``chores`` run in the same thread after each reading (relay/heap.py's trim).

    One thread, always the same: psutil keeps cpu_percent's previous reading per thread,
    so a pool thread would read 0 %."""

    def __init__(self, disk_path: str, deliver: Callable[[HostSample], None], *, interval_s: float = 1.0,
                 read: Callable[[str, DiskProbe | None], HostSample] = read_host_sample,
                 chores: tuple[Callable[[], None], ...] = ()) -> None:
        self._disk = DiskProbe(disk_path)
        self._chores = chores  # housekeeping off the loop, after each reading (relay/heap.py)
        self._deliver = deliver
        self._interval_s = interval_s
        self._read = read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="host-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Returns at once; the thread ends after its current reading."""
        self._stop.set()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                sample = self._read(self._disk.path, self._disk)
            except Exception:  # one bad reading must not end host watching for the show
                log.exception("host_sample_failed")
            else:
                self._deliver(sample)
            for chore in self._chores:
                chore()
            next_at = max(next_at + self._interval_s, time.monotonic())
            self._stop.wait(max(0.0, next_at - time.monotonic()))


class HostWatch:
    signal = "host"

    def __init__(self, thresholds: ThresholdSettings, emit: EventSink) -> None:
        self._t = thresholds
        self.fault = Fault(
            self.signal, {2: (0.0, None), 1: (0.0, None)}, thresholds.clear_after_s, emit, None
        )
        self._cpu_high_since: float | None = None
        self._seen_up: set[str] = set()
        self._previous: tuple[float, HostSample] | None = None
        self._latest: tuple[float, HostSample] | None = None

    def sample(self, now: float, s: HostSample) -> None:
        t = self._t
        self._previous, self._latest = self._latest, (now, s)
        previous = self._previous[1] if self._previous is not None else None

        if s.cpu_pct > t.host_cpu_pct:
            self._cpu_high_since = now if self._cpu_high_since is None else self._cpu_high_since
        else:
            self._cpu_high_since = None
        causes: list[tuple[str, str, str]] = []  # (resource, value, threshold)
        if self._cpu_high_since is not None and now - self._cpu_high_since >= t.host_cpu_s:
            causes.append(
                ("cpu", f"cpu {s.cpu_pct:.1f} %", f"cpu > {t.host_cpu_pct:g} % for {t.host_cpu_s:g} s")
            )
        if s.mem_free_pct < t.host_mem_free_pct:
            causes.append(
                ("memory", f"memory free {s.mem_free_pct:.1f} %", f"memory free < {t.host_mem_free_pct:g} %")
            )
        if s.disk_free_gb is not None and s.disk_free_gb < t.host_disk_free_gb:
            causes.append(
                ("disk", f"disk free {s.disk_free_gb:.2f} GB", f"disk free < {t.host_disk_free_gb:g} GB")
            )
        if previous is not None and s.nic_errors > previous.nic_errors:
            causes.append(
                ("nic_errors", f"nic errors +{s.nic_errors - previous.nic_errors}", "nic errors increasing")
            )
        if causes:
            detail = "; ".join(value for _, value, _ in causes)
            self.fault.observe(now, 2, True, causes[0][1], causes[0][2], detail=detail)
        else:
            self.fault.observe(now, 2, False)

        self._seen_up.update(name for name, up in s.nics_up.items() if up)
        down = sorted(name for name in self._seen_up if s.nics_up.get(name) is False)
        if down:
            self.fault.observe(now, 1, True, ",".join(down), "nic up", detail="nic down: " + ", ".join(down))
        else:
            self.fault.observe(now, 1, False)

    def tick(self, now: float) -> None:
        self.fault.tick(now)

    def health(self) -> dict[str, float | int | str | None]:
        if self._latest is None:
            return {}
        now, s = self._latest
        sent_kbps = recv_kbps = None
        if self._previous is not None:
            then, p = self._previous
            if now > then:
                sent_kbps = round((s.net_sent_bytes - p.net_sent_bytes) * 8 / 1000.0 / (now - then), 1)
                recv_kbps = round((s.net_recv_bytes - p.net_recv_bytes) * 8 / 1000.0 / (now - then), 1)
        return {
            "cpu_pct": round(s.cpu_pct, 1),
            "mem_free_pct": round(s.mem_free_pct, 1),
            "disk_free_gb": None if s.disk_free_gb is None else round(s.disk_free_gb, 2),
            "nic_errors": s.nic_errors,
            "net_sent_kbps": sent_kbps,
            "net_recv_kbps": recv_kbps,
        }
