"""The processes of one benchmark chain, each started and always stopped by the bench.

- :class:`RelayUnderTest`: `relay run` with a bench configuration, its JSON log
  followed incrementally (a long run's log is read once, not re-parsed per poll).
- :class:`ClipPublisher`: `ffmpeg -re -stream_loop -1 -i clip.flv -c copy -f flv URL`,
  the encoder stand-in: it only copies, so it costs little CPU. With two URLs it
  uses the tee muxer, so both paths get each packet at the same moment.
- :class:`FfmpegWatcher`: the nearest thing a user could run instead of Relay, for
  one input: ffmpeg listening for the encoder, relaying with `-c copy` and running
  blackdetect and silencedetect on the same input.
- :class:`ViewerProcess`: bench/viewer.py in a child process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from bench.clips import FrameIndex
from bench.figures import Arrival

REPO = Path(__file__).resolve().parents[1]


class Child:
    """A child process in its own session (so a signal reaches its whole group)."""

    def __init__(self, args: list[str], log: Path, *, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.log_path = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         cwd=REPO, env=env, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGINT, grace_s: float = 5.0) -> int:
        """`sig` first (SIGINT: ffmpeg unpublishes cleanly), then SIGKILL; always reaps."""
        if self.proc.poll() is None:
            self.send(signal.SIGCONT)  # a stopped process cannot act on SIGINT
            self.send(sig)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.send(signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


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


class RelayUnderTest(Child):
    def __init__(self, config: Path, log: Path) -> None:
        super().__init__([sys.executable, "-m", "relay", "run", "-c", str(config)], log)
        self.process = psutil.Process(self.pid)
        self.events: list[dict[str, Any]] = []
        self._offset = 0
        self._partial = b""

    def poll_log(self) -> list[dict[str, Any]]:
        """New log lines since the last call, parsed (`<N>{json}` with a journald prefix)."""
        with open(self.log_path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        new: list[dict[str, Any]] = []
        for raw in lines:
            text = raw.decode("utf-8", "replace")
            if text.startswith("<") and ">" in text[:4]:
                text = text[text.index(">") + 1:]
            with contextlib.suppress(ValueError):
                d = json.loads(text)
                if isinstance(d, dict):
                    new.append(d)
        self.events.extend(new)
        return new

    def matching(self, name: str, **match: Any) -> list[dict[str, Any]]:
        self.poll_log()
        return [e for e in self.events
                if e.get("event") == name and all(e.get(k) == v for k, v in match.items())]

    def wait_for(self, name: str, *, after: int = 0, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The (after+1)-th event `name` matching `match`; `after` = how many were already seen."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.matching(name, **match)
            if len(found) > after:
                return found[after]
            if not self.alive():
                raise RuntimeError(f"relay died waiting for {name} {match}\n{self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {name} {match} within {timeout} s\n{self.tail()}")
            time.sleep(0.02)

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
                 failover: dict[str, float], thresholds: dict[str, float]) -> Path:
    """A relay.toml for the bench: two RTMP inputs, one output, MQTT off, JSON logs."""
    def table(name: str, values: dict[str, Any]) -> str:
        return f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()) + "\n"

    text = 'id = "bench"\n\n'
    text += table("server", {"rtmp": f"127.0.0.1:{rtmp_port}"})
    text += f'[[inputs]]\nid = "main"\nkind = "rtmp"\nkey = "{main_key}"\npriority = 1\n\n'
    text += f'[[inputs]]\nid = "backup"\nkind = "rtmp"\nkey = "{backup_key}"\npriority = 2\n\n'
    text += f'[[outputs]]\nid = "platform"\nurls = ["{output_url}"]\n\n'
    text += table("failover", failover)
    text += table("thresholds", thresholds)
    text += table("mqtt", {"enabled": False})
    text += table("journal", {"path": str(workdir / "journal.sqlite3")})
    text += table("log", {"level": "info", "format": "json"})
    path = workdir / "relay.toml"
    path.write_text(text)
    return path
