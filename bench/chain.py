"""The processes of one benchmark chain, each started and always stopped by the bench.

- :class:`RelayUnderTest`: `relay run` with a bench configuration, its JSON log
  followed incrementally by studio's follower (a long run's log is read once).
- :class:`ClipPublisher`: `ffmpeg -re -stream_loop -1 -i clip.flv -c copy -f flv URL`,
  the encoder stand-in: it only copies, so it costs little CPU. With two URLs it
  uses the tee muxer, so both paths get each packet at the same moment.
- :class:`FfmpegWatcher`: the nearest thing a user could run instead of Relay, for
  one input: ffmpeg listening for the encoder, relaying with `-c copy` and running
  blackdetect and silencedetect on the same input.
- :class:`ViewerProcess`: bench/viewer.py in a child process.
- :class:`PictureViewer`: bench/pictures.py in a child process (it decodes: the failover
  and sweep phases only).
"""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

import psutil

from bench.clips import FrameIndex
from bench.figures import Arrival
from bench.pictures import Shown, read
from studio import procs as studio
from studio.configs import relay_toml
from studio.relayrun import RelayRun

REPO = Path(__file__).resolve().parents[1]


class Child(studio.Child):
    """A bench process, started at once from the repository; SIGINT stops it (ffmpeg
    unpublishes cleanly), SIGKILL after a grace time."""

    def __init__(self, args: list[str], log: Path) -> None:
        super().__init__(Path(args[0]).name, args, log, cwd=REPO, stop_signal=signal.SIGINT)
        self.start()


class ClipPublisher(Child):
    def __init__(self, clip: Path, urls: list[str], log: Path) -> None:
        args = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
                "-re", "-stream_loop", "-1", "-i", str(clip), "-map", "0", "-c", "copy"]
        if len(urls) == 1:
            args += ["-f", "flv", urls[0]]
        else:
            # onfail=ignore: one path dying (e.g. a killed relay) must not end the other
            args += ["-f", "tee", "|".join(f"[f=flv:onfail=ignore]{u}" for u in urls)]
        super().__init__(args, log)


class FfmpegWatcher(Child):
    def __init__(self, listen_url: str, push_url: str, log: Path, *, black_s: float,
                 black_luma: float, silence_dbfs: float, silence_s: float) -> None:
        args = ["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
                "-listen", "1", "-i", listen_url,
                "-map", "0:v", "-map", "0:a", "-c", "copy", "-f", "flv", push_url,
                "-map", "0:v", "-vf", f"blackdetect=d={black_s:g}:pix_th={black_luma:g}",
                "-map", "0:a", "-af", f"silencedetect=n={silence_dbfs:g}dB:d={silence_s:g}",
                "-f", "null", "-"]
        super().__init__(args, log)


class ViewerProcess(Child):
    def __init__(self, url: str, out: Path, log: Path) -> None:
        self.out = out
        out.touch()
        super().__init__([sys.executable, "-m", "bench.viewer", url, str(out)], log)

    def arrivals(self, index: FrameIndex) -> list[Arrival]:
        return [(t, index.label(h)) for t, h in self.raw()]

    def raw(self) -> list[tuple[float, str]]:
        out: list[tuple[float, str]] = []
        for line in self.out.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 2:
                with contextlib.suppress(ValueError):
                    out.append((float(parts[0]), parts[1]))
        return out

    def frames(self) -> int:
        return sum(1 for _ in self.out.open())


class PictureViewer(Child):
    """A viewer that decodes every picture the platform plays, to count the repeated ones."""

    def __init__(self, url: str, out: Path, log: Path) -> None:
        self.out = out
        out.touch()
        super().__init__([sys.executable, "-m", "bench.pictures", url, str(out)], log)

    def shown(self) -> list[Shown]:
        return read(str(self.out))


class RelayUnderTest(RelayRun):
    """`relay run`, started at once; its log followed every 20 ms while waiting."""

    def __init__(self, config: Path, log: Path) -> None:
        super().__init__(config, log, cwd=REPO, poll_s=0.02)
        self.start()
        self.process = psutil.Process(self.pid)

    def matching(self, name: str, **match: Any) -> list[dict[str, Any]]:
        return self.log.find(name, **match)

    def wait_for(self, name: str, *, after: int = 0, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The (after+1)-th event `name` matching `match`; `after` = how many were already seen."""
        return self.log.wait_for(name, after=after, timeout=timeout, **match)

    def cpu_seconds(self) -> float:
        """User + system CPU of Relay and any children it runs."""
        t = self.process.cpu_times()
        return float(t.user + t.system + t.children_user + t.children_system)

    def rss_bytes(self) -> int:
        return int(self.process.memory_info().rss)


def group_cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        t = p.cpu_times()
        total += t.user + t.system
    return total


def relay_config(workdir: Path, rtmp_port: int, output_url: str, *, main_key: str, backup_key: str,
                 failover: dict[str, float], thresholds: dict[str, float], extra: str = "") -> Path:
    """A relay.toml for the bench: two RTMP inputs, one output, MQTT off, JSON logs."""
    inputs = [{"id": "main", "kind": "rtmp", "key": main_key, "priority": 1},
              {"id": "backup", "kind": "rtmp", "key": backup_key, "priority": 2}]
    path = workdir / "relay.toml"
    path.write_text(relay_toml("bench", server={"rtmp": f"127.0.0.1:{rtmp_port}"}, inputs=inputs,
                               outputs=[{"id": "platform", "urls": [output_url]}], failover=failover,
                               thresholds=thresholds, journal=workdir / "journal.sqlite3", extra=extra))
    return path
