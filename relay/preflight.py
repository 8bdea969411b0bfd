"""The pre-show check (BEHAVIOUR §9): the whole chain, in under a minute, as a checklist.

    ✔ input main          30.0 fps, 2480 kbit/s, drift +3 ms, -18.2 dBFS
    ⚠ compatible backup   720x1280 vs 1080x1920 on main: the switch will not be seamless
    ✖ output douyin 2/2   rtmp://push-2.example.com/live/***: tcp failed: Connection refused

What is checked, each line pass (✔), warn (⚠) or fail (✖):

- every input, watched over a sample window: connected throughout and no fault at all
  (a tier-3 or tier-2 fault warns, a tier-1 fault or a disconnection fails);
- every input's keyframe interval: at most 2 s, what the platforms require (and what
  keeps a switch's wait for a keyframe short); a longer one warns and names the
  setting (OBS: Settings → Output → Keyframe Interval);
- every backup input against the primary (the most preferred): video codec,
  resolution, frame rate, audio codec, sample rate and channels; a mismatch warns
  (the switch will work but not seamlessly: the platform sees new parameters); a
  different video codec warns that Relay will not switch to it at all (BEHAVIOUR §2);
- every enabled output against the codec each input sends: one it cannot carry
  (HEVC to ``video_tags = "legacy"``, AV1 over SRT) fails (codec/carriage.py);
- every URL of every enabled output: resolve, TCP (TLS), RTMP handshake and
  ``connect``, never publishing (:mod:`relay.push.probe`); SRT: the caller handshake;
- MQTT: the broker is reachable and accepts our login (a pass if MQTT is off);
- the host: CPU over the window, memory and disk against the BEHAVIOUR §3 thresholds;
- the clock: synchronised per systemd-timesyncd/timedatectl, chrony or ntpd.

Exit status 0 all pass, 1 warnings only, 2 a failure.

`run_preflight` looks at the inputs through a narrow view (:class:`CheckedStudio`:
the settings and the inputs, each with its status, figures and stream format). The
running relay's media graph is one (the MQTT ``check`` command); when no relay runs
with this configuration, `relay check` starts a media graph of its own that only
receives (its ingest servers and watchers, no policy, nothing pushed); with a relay
running, `relay check` asks it over MQTT instead. The judging functions
(``judge_*``) are pure and unit-tested with made-up samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import time
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import psutil

from relay.codec.carriage import CannotCarry, carries, form_of
from relay.codec.video import label
from relay.events import SIGNAL_WORDS
from relay.i18n import DEFAULT, count, t
from relay.i18n import label as label_of
from relay.media import AudioConfig, VideoConfig
from relay.push.probe import ProbeResult, probe_url
from relay.settings import MqttSettings, RelaySettings, ThresholdSettings
from relay.watch.host import DiskProbe, HostSample, read_host_sample
from relay.watch.status import InputStatus, OpenFault

if TYPE_CHECKING:
    pass

Result = Literal["pass", "warn", "fail"]
_RANK: dict[Result, int] = {"pass": 0, "warn": 1, "fail": 2}
_MARK: dict[Result, str] = {"pass": "✔", "warn": "⚠", "fail": "✖"}

SAMPLE_EVERY_S = 0.5
SETTLE_S = 1.5  # after an input connects: the `disconnected` fault clears, fps and levels settle
PROBE_TIMEOUT_S = 5.0
MQTT_TIMEOUT_S = 5.0
CONNECT_GRACE_S = 10.0  # a temporary relay: encoders retrying every few seconds find it by then
FPS_TOLERANCE = 0.02  # 29.97 and 30 are "the same" to a person, not to a seamless switch


# A line's name and detail in a language (relay/i18n); English gives `name` and `detail`.
Words = Callable[[str], tuple[str, str]]
Text = Callable[[str], str]


@dataclass
class CheckItem:
    name: str
    result: Result
    detail: str
    # Kept out of equality and of the payload: the MQTT ``preflight`` payload and ``--json``
    # stay in English; a person's terminal reads the line in its own language.
    words: Words | None = field(default=None, repr=False, compare=False)

    @classmethod
    def said(cls, result: Result, name: Text, detail: Text) -> CheckItem:
        """A line whose words come from the catalogues; `name` and `detail` are its English."""
        return cls(name(DEFAULT), result, detail(DEFAULT), lambda lang: (name(lang), detail(lang)))

    def text(self, lang: str) -> tuple[str, str]:
        """Its name and detail in `lang` (a line heard from another relay stays as it came)."""
        return self.words(lang) if self.words is not None else (self.name, self.detail)

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "result": self.result, "detail": self.detail}


def _width(text: str) -> int:
    """Columns on a terminal: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


@dataclass
class PreflightResult:
    items: list[CheckItem]
    sample_s: float = 0.0
    elapsed_s: float = 0.0

    @property
    def result(self) -> Result:
        worst = max((_RANK[i.result] for i in self.items), default=0)
        return next(r for r, rank in _RANK.items() if rank == worst)

    @property
    def exit_code(self) -> int:
        return _RANK[self.result]

    def to_dict(self) -> dict[str, Any]:
        """The retained MQTT ``preflight`` payload and the ``check`` reply's data."""
        return {"result": self.result, "exit_code": self.exit_code, "sample_s": self.sample_s,
                "elapsed_s": round(self.elapsed_s, 1), "checks": [i.to_dict() for i in self.items]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreflightResult:
        """Back from :meth:`to_dict` (a reply from a running relay). Unknown results fail."""
        items = []
        for c in data.get("checks") or []:
            result = c.get("result")
            items.append(CheckItem(str(c.get("name", "?")), result if result in _RANK else "fail",
                                   str(c.get("detail", ""))))
        return cls(items, float(data.get("sample_s") or 0.0), float(data.get("elapsed_s") or 0.0))

    def render_text(self, relay_id: str | None = None, lang: str = "en") -> str:
        """The checklist as staff read it, its frame in `lang` (relay/i18n)."""
        said = [i.text(lang) for i in self.items]
        width = max((_width(name) for name, _ in said), default=0)
        head = t(lang, "check.head_of", relay=relay_id) if relay_id else t(lang, "check.head")
        if self.sample_s:
            head += t(lang, "check.watched", seconds=f"{self.sample_s:g}")
        lines = [head]
        lines += [f"{_MARK[i.result]} {name}{' ' * (width - _width(name))}  {detail}"
                  for i, (name, detail) in zip(self.items, said, strict=True)]
        fails = sum(i.result == "fail" for i in self.items)
        warns = sum(i.result == "warn" for i in self.items)
        verdict = t(lang, f"check.verdict_{self.result}")
        counts = t(lang, "common.list_sep").join(
            count(lang, key, n) for key, n in (("check.n_failures", fails), ("check.n_warnings", warns)) if n)
        counts = counts or count(lang, "check.n_checks", len(self.items))
        lines.append(verdict + t(lang, "check.counts", counts=counts))
        return "\n".join(lines)


# -- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputSample:
    """One look at one input during the window."""

    connected: bool
    faults: tuple[OpenFault, ...] = ()
    health: dict[str, Any] = field(default_factory=dict)


def _fixed(key: str, /, **params: object) -> Text:
    """The text of one catalogue key, in whichever language is asked."""
    return lambda lang: t(lang, key, **params)


def judge_input(input_id: str, samples: Sequence[InputSample]) -> CheckItem:
    name = _fixed("check.name_input", input=input_id)
    if not any(s.connected for s in samples):
        return CheckItem.said("fail", name, _fixed("check.input_absent"))
    if not all(s.connected for s in samples):
        return CheckItem.said("fail", name, _fixed("check.input_dropped"))
    worst: dict[str, OpenFault] = {}
    for s in samples:
        for f in s.faults:
            if f.signal == "disconnected":
                continue  # connected throughout: this is the fault still clearing after the connect
            if f.signal not in worst or f.tier < worst[f.signal].tier:
                worst[f.signal] = f
    health = samples[-1].health
    if not worst:
        return CheckItem.said("pass", name,
                              lambda lang: _figures(lang, health) or t(lang, "check.input_healthy"))
    faults = sorted(worst.values(), key=lambda f: f.tier)
    result: Result = "fail" if faults[0].tier == 1 else "warn"

    def detail(lang: str) -> str:
        parts = [t(lang, "check.fault", what=_signal_words(lang, f.signal), tier=f.tier,
                   value=t(lang, "check.fault_value", value=_value(f.value)) if f.value is not None else "")
                 for f in faults]
        figures = _figures(lang, health)
        return t(lang, "check.sep_strong").join(parts + ([figures] if figures else []))
    return CheckItem.said(result, name, detail)


def _signal_words(lang: str, signal: str) -> str:
    """A signal as the checklist says it: English keeps the logs' words; another language
    says its label with the SPEC's name beside it (``黑屏 black``)."""
    if lang == DEFAULT:
        return SIGNAL_WORDS.get(signal, signal)
    said = label_of(lang, "signal", signal)
    return signal if said == signal else f"{said} {signal}"


def _value(v: float | str) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _figures(lang: str, h: dict[str, Any]) -> str:
    parts = []
    if h.get("fps") is not None:
        parts.append(t(lang, "check.fig_fps", fps=f"{h['fps']:.1f}"))
    if h.get("bitrate_kbps") is not None:
        parts.append(t(lang, "check.fig_bitrate", kbps=f"{h['bitrate_kbps']:.0f}"))
    if h.get("drift_ms") is not None:
        parts.append(t(lang, "check.fig_drift", ms=f"{h['drift_ms']:+.0f}"))
    if h.get("loudness_dbfs") is not None:
        parts.append(t(lang, "check.fig_loudness", dbfs=f"{h['loudness_dbfs']:.1f}"))
    return t(lang, "check.sep").join(parts)


# -- keyframes ---------------------------------------------------------------------------------------

MAX_KEYFRAME_INTERVAL_S = 2.0  # the platforms' rule
KEYFRAME_TOLERANCE_S = 0.05  # millisecond timestamps: 2 s at 29.97 fps measures 2.002 s
KEYFRAME_ADVICE = t(DEFAULT, "check.keyframe_advice")  # names OBS's setting and FFmpeg's option


def judge_keyframes(input_id: str, interval_ms: int | None, since_last_s: float | None) -> CheckItem:
    """The keyframe interval measured on the input (``since_last_s``: how long ago its latest
    keyframe arrived, which bounds an interval not yet seen twice)."""
    name = _fixed("check.name_keyframes", input=input_id)
    limit = MAX_KEYFRAME_INTERVAL_S + KEYFRAME_TOLERANCE_S

    def too_long(key: str, seconds: float) -> Text:
        return lambda lang: t(lang, key, s=f"{seconds:.1f}", advice=t(lang, "check.keyframe_advice"))
    if interval_ms is not None and interval_ms / 1000 > limit:
        return CheckItem.said("warn", name, too_long("check.keyframes_long", interval_ms / 1000))
    if since_last_s is not None and since_last_s > limit:
        return CheckItem.said("warn", name, too_long("check.keyframes_none_for", since_last_s))
    if interval_ms is None:
        return CheckItem.said("warn", name, _fixed("check.keyframes_unmeasured"))
    return CheckItem.said("pass", name, _fixed("check.keyframes_ok", s=f"{interval_ms / 1000:.1f}"))


# -- primary/backup compatibility -----------------------------------------------------------------


@dataclass(frozen=True)
class StreamFormat:
    """What a seamless switch needs to be equal between two inputs (None: unknown/absent)."""

    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None

    @property
    def known(self) -> bool:
        return self.video_codec is not None


def judge_compatibility(primary_id: str, primary: StreamFormat, backup_id: str,
                        backup: StreamFormat) -> CheckItem:
    name = _fixed("check.name_compatible", input=backup_id)
    if not primary.known or not backup.known:
        missing = primary_id if not primary.known else backup_id
        return CheckItem.said("warn", name, _fixed("check.compat_unknown", input=missing))
    if backup.video_codec != primary.video_codec:  # not merely unseamless: never switched to (BEHAVIOUR §2)
        return CheckItem.said("warn", name, _fixed("check.compat_codec", codec=label(backup.video_codec),
                                                   primary=primary_id,
                                                   primary_codec=label(primary.video_codec)))
    differences: list[Text] = []
    if (backup.width, backup.height) != (primary.width, primary.height):
        differences.append(_fixed("check.diff_size", size=f"{backup.width}x{backup.height}",
                                  primary_size=f"{primary.width}x{primary.height}"))
    if backup.fps and primary.fps and abs(backup.fps - primary.fps) > FPS_TOLERANCE * max(backup.fps,
                                                                                           primary.fps):
        differences.append(_fixed("check.diff_fps", fps=_fps(backup.fps), primary_fps=_fps(primary.fps)))
    if (backup.audio_codec is None) != (primary.audio_codec is None):
        has, lacks = (primary_id, backup_id) if backup.audio_codec is None else (backup_id, primary_id)
        differences.append(_fixed("check.diff_audio_one", has=has, lacks=lacks))
    elif backup.audio_codec is not None:
        if backup.audio_codec != primary.audio_codec:
            differences.append(_fixed("check.diff_audio_codec", codec=backup.audio_codec,
                                      primary_codec=primary.audio_codec))
        if backup.sample_rate != primary.sample_rate:
            differences.append(_fixed("check.diff_rate", rate=backup.sample_rate,
                                      primary_rate=primary.sample_rate))
        if backup.channels != primary.channels:
            differences.append(_fixed("check.diff_channels", channels=backup.channels,
                                      primary_channels=primary.channels))
    if differences:
        return CheckItem.said("warn", name, lambda lang: t(
            lang, "check.compat_differs", primary=primary_id,
            differences=t(lang, "check.sep").join(d(lang) for d in differences)))
    return CheckItem.said("pass", name, lambda lang: t(lang, "check.compat_same", primary=primary_id,
                                                       format=_describe(lang, primary)))


def _fps(fps: float) -> str:
    return f"{fps:.2f}".rstrip("0").rstrip(".")


def _describe(lang: str, f: StreamFormat) -> str:
    fps = t(lang, "check.fmt_fps", fps=_fps(f.fps)) if f.fps else ""
    video = f"{f.video_codec} {f.width}x{f.height}{fps}"
    audio = (t(lang, "check.fmt_audio", codec=f.audio_codec, rate=f.sample_rate, channels=f.channels)
             if f.audio_codec else t(lang, "check.fmt_no_audio"))
    return video + audio


# -- outputs ----------------------------------------------------------------------------------


def judge_carriage(settings: RelaySettings, codecs: dict[str, str]) -> list[CheckItem]:
    """Every enabled output against the video codec each input sends (codec/carriage.py)."""
    items = []
    for out in (o for o in settings.outputs if o.enabled):
        forms = sorted({form_of(u.get_secret_value(), out.video_tags) for u in out.urls})
        refused = [(i, c, f) for i, c in codecs.items() for f in forms if not carries(f, c)]
        sent = sorted({label(c) for c in codecs.values()})
        name = _fixed("check.name_codecs", output=out.id)
        if refused:
            input_id, codec, form = refused[0]
            items.append(CheckItem.said("fail", name, _cannot_carry(input_id, CannotCarry(codec, form))))
        elif codecs:
            items.append(CheckItem.said("pass", name, _carries(sent, out.video_tags)))
    return items


def _carries(codecs: list[str], tags: str) -> Text:
    return lambda lang: t(lang, "check.carries", codecs=t(lang, "check.sep").join(codecs), tags=tags)


def _cannot_carry(input_id: str, refusal: CannotCarry) -> Text:
    """codec/carriage.py's refusal in the catalogue's words (its English is the same sentence)."""
    codec, form = refusal.codec, refusal.form
    advice = "mpegts" if form == "mpegts" else codec if codec in ("hevc", "av1") else "other"

    def said(lang: str) -> str:
        where = (t(lang, "check.carry_where_mpegts") if form == "mpegts"
                 else t(lang, "check.carry_where_flv", form=form))
        return t(lang, "check.cannot_carry", input=input_id, codec=label(codec), where=where,
                 advice=t(lang, f"check.carry_advice_{advice}"))
    return said


def judge_probe(output_id: str, index: int, count: int, probe: ProbeResult) -> CheckItem:
    name = _fixed("check.name_output", output=output_id, n=index + 1, of=count)
    if probe.ok:
        what = "check.probe_srt" if probe.url.startswith("srt:") else "check.probe_rtmp"
        return CheckItem.said("pass", name, lambda lang: t(
            lang, "check.probe_ok", url=probe.url, what=t(lang, what),
            took=t(lang, "check.probe_took", ms=f"{probe.rtt_ms:g}") if probe.rtt_ms is not None else ""))
    return CheckItem.said("fail", name, _fixed("check.probe_failed", url=probe.url, stage=probe.stage,
                                               error=probe.error))


# -- host and clock ---------------------------------------------------------------------------------


def cpu_busy_pct(before: Any, after: Any) -> float:
    """CPU use of all cores between two ``psutil.cpu_times()``. (``psutil.cpu_percent`` keeps
    its previous reading per thread since psutil 7, so from a thread pool it often says 0.)"""
    idle = (after.idle + getattr(after, "iowait", 0.0)) - (before.idle + getattr(before, "iowait", 0.0))
    def all_time(times: Any) -> float:  # Linux counts guest time inside user time already
        return float(sum(times)) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)

    total = all_time(after) - all_time(before)
    return 0.0 if total <= 0 else max(0.0, min(100.0, 100.0 * (1.0 - idle / total)))


def judge_host(sample: HostSample, thresholds: ThresholdSettings) -> CheckItem:
    """``sample`` taken at the end of the window: its CPU figure covers the window."""
    limits = thresholds
    problems: list[tuple[Result, Text]] = []
    if sample.cpu_pct > limits.host_cpu_pct:
        problems.append(("warn", _fixed("check.host_cpu", pct=f"{sample.cpu_pct:.0f}",
                                        limit=f"{limits.host_cpu_pct:g}")))
    if sample.mem_free_pct < limits.host_mem_free_pct:
        problems.append(("warn", _fixed("check.host_memory", pct=f"{sample.mem_free_pct:.1f}",
                                        limit=f"{limits.host_mem_free_pct:g}")))
    if sample.disk_free_gb is None:
        problems.append(("warn", _fixed("check.host_disk_unknown", path=limits.host_disk_path)))
    elif sample.disk_free_gb < limits.host_disk_free_gb:
        problems.append(("warn", _fixed("check.host_disk", gb=f"{sample.disk_free_gb:.2f}",
                                        path=limits.host_disk_path, limit=f"{limits.host_disk_free_gb:g}")))
    if sample.nics_up and not any(sample.nics_up.values()):
        problems.append(("fail", _fixed("check.host_no_network")))
    name = _fixed("check.name_host")
    if not problems:
        def figures(lang: str) -> str:
            disk = (t(lang, "check.host_disk_na") if sample.disk_free_gb is None
                    else t(lang, "check.host_disk_gb", gb=f"{sample.disk_free_gb:.1f}"))
            return t(lang, "check.host_figures", cpu=f"{sample.cpu_pct:.0f}",
                     memory=f"{sample.mem_free_pct:.0f}", disk=disk)
        return CheckItem.said("pass", name, figures)
    result: Result = "fail" if any(r == "fail" for r, _ in problems) else "warn"
    return CheckItem.said(result, name, lambda lang: t(lang, "check.sep_strong").join(
        text(lang) for _, text in problems))


# A command's (exit status, output), or None when the program is not installed.
CommandRunner = Callable[[Sequence[str]], Awaitable[tuple[int, str] | None]]


async def run_command(argv: Sequence[str], timeout_s: float = 3.0) -> tuple[int, str] | None:
    binary = shutil.which(argv[0])
    if binary is None:
        return None
    try:
        proc = await asyncio.create_subprocess_exec(binary, *argv[1:], stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None
    return proc.returncode or 0, out.decode("utf-8", "replace")


async def check_clock(run: CommandRunner = run_command) -> CheckItem:
    """Asks systemd (timedatectl), then chrony, then ntpd; the first that answers decides."""
    name = _fixed("check.name_clock")
    answer = await run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if answer is not None and answer[0] == 0 and answer[1].strip() in ("yes", "no"):
        if answer[1].strip() == "yes":
            return CheckItem.said("pass", name, _fixed("check.clock_synced", tool="timedatectl"))
        return CheckItem.said("warn", name, _fixed("check.clock_off", tool="timedatectl"))
    answer = await run(["chronyc", "-n", "tracking"])
    if answer is not None and answer[0] == 0 and "Leap status" in answer[1]:
        leap = next(line for line in answer[1].splitlines() if "Leap status" in line).split(":", 1)[1].strip()
        if leap == "Normal":
            return CheckItem.said("pass", name, _fixed("check.clock_synced", tool="chrony"))
        return CheckItem.said("warn", name, _fixed("check.clock_leap", tool="chrony", leap=leap))
    answer = await run(["ntpq", "-c", "rv 0 leap,sync"])
    if answer is not None and answer[0] == 0 and "leap=" in answer[1]:
        if "leap=11" in answer[1] or "unsync" in answer[1]:
            return CheckItem.said("warn", name, _fixed("check.clock_unsynced", tool="ntpd"))
        return CheckItem.said("pass", name, _fixed("check.clock_synced", tool="ntpd"))
    return CheckItem.said("warn", name, _fixed("check.clock_unknown"))


# -- MQTT ------------------------------------------------------------------------------------------


async def check_mqtt(s: MqttSettings, timeout_s: float = MQTT_TIMEOUT_S) -> CheckItem:
    """A short connection with the configured credentials: reachable, and the login accepted."""
    name = _fixed("check.name_mqtt")
    if not s.enabled:
        return CheckItem.said("pass", name, _fixed("check.mqtt_off"))
    from relay.control.remote import NoAnswer, connect_broker

    broker = f"{s.host}:{s.port}"
    try:
        async with asyncio.timeout(timeout_s), connect_broker(s, timeout_s, name="relay-check"):
            pass
    except TimeoutError:
        return CheckItem.said("fail", name, _fixed("check.mqtt_silent", broker=broker, s=f"{timeout_s:g}"))
    except NoAnswer as e:
        return CheckItem.said("fail", name, e.text)
    user = s.username
    return CheckItem.said("pass", name, lambda lang: t(
        lang, "check.mqtt_ok", broker=broker,
        login=t(lang, "check.mqtt_as", user=user) if user else t(lang, "check.mqtt_anonymous")))


# -- the check ----------------------------------------------------------------------------------------


class CheckedInput(Protocol):
    """What the check reads of one input (relay.graph.InputChannel)."""

    video_config: VideoConfig | None
    audio_config: AudioConfig | None
    fps: float  # smoothed from the video timestamps; 0 when unknown

    @property
    def input_id(self) -> str: ...

    @property
    def priority(self) -> int: ...

    @property
    def connected(self) -> bool: ...

    def status(self, now: float) -> InputStatus: ...

    def health(self, now: float) -> dict[str, Any]: ...

    def keyframes(self) -> tuple[int | None, float | None]:
        """Its keyframe interval (ms, once two were seen) and when its latest keyframe
        arrived (monotonic; None: none yet)."""
        ...


class CheckedStudio(Protocol):
    """What the check looks at (relay.graph.MediaGraph)."""

    settings: RelaySettings

    def inputs(self) -> Sequence[CheckedInput]:
        """Every input, most preferred first."""
        ...


def _format_of(inp: CheckedInput) -> StreamFormat:
    video, audio = inp.video_config, inp.audio_config
    # The smoothed rate of the timestamps: the cadence watcher's nominal rate is whole
    # milliseconds per frame (33 ms → 30.3 fps), too coarse to compare.
    fps = inp.fps or inp.health(time.monotonic()).get("nominal_fps") or None
    return StreamFormat(
        video_codec=video.codec if video else None, width=video.width if video else None,
        height=video.height if video else None, fps=round(float(fps), 2) if fps else None,
        audio_codec=audio.codec if audio else None, sample_rate=audio.sample_rate if audio else None,
        channels=audio.channels if audio else None,
    )


async def _probe_outputs(settings: RelaySettings, timeout_s: float) -> list[CheckItem]:
    jobs: list[tuple[str, int, int, Awaitable[ProbeResult]]] = []
    for out in settings.outputs:
        if not out.enabled:
            continue
        urls = [u.get_secret_value() for u in out.urls]
        for i, url in enumerate(urls):
            probe = probe_url(url, min(timeout_s, out.connect_timeout_s), out.ca_file)
            jobs.append((out.id, i, len(urls), probe))
    if not jobs:
        return [CheckItem.said("warn", _fixed("check.name_outputs"), _fixed("check.no_outputs"))]
    probes = await asyncio.gather(*(job for *_, job in jobs))
    return [judge_probe(o, i, n, p) for (o, i, n, _), p in zip(jobs, probes, strict=True)]


async def _host_sample(disk_path: str) -> HostSample:
    """A host reading off the loop; the disk is waited for at most a second (dead mounts)."""
    return await asyncio.to_thread(read_host_sample, disk_path, DiskProbe(disk_path))


async def _wait_for_inputs(studio: CheckedStudio, grace_s: float, progress: Callable[[str], None],
                           lang: str = DEFAULT) -> None:
    """Until every input is connected and settled, or ``grace_s`` has passed."""
    if grace_s <= 0:
        return
    deadline = time.monotonic() + grace_s
    told = False
    while time.monotonic() < deadline:
        inputs = studio.inputs()
        if inputs and all(inp.connected for inp in inputs):
            await asyncio.sleep(SETTLE_S)
            return
        if not told:
            waiting = t(lang, "common.list_sep").join(inp.input_id for inp in inputs if not inp.connected)
            progress(t(lang, "check.waiting", s=f"{grace_s:g}", inputs=waiting))
            told = True
        await asyncio.sleep(0.2)


async def run_preflight(studio: CheckedStudio, sample_s: float = 10.0, *, connect_grace_s: float = 0.0,
                        probe_timeout_s: float = PROBE_TIMEOUT_S,
                        progress: Callable[[str], None] | None = None,
                        on_item: Callable[[CheckItem], None] | None = None,
                        clock_runner: CommandRunner = run_command, lang: str = DEFAULT) -> PreflightResult:
    """The pre-show check: watches the inputs for ``sample_s`` while the outputs, MQTT
    and the clock are checked at the same time. ``on_item`` hears each line of the
    checklist as soon as it is judged (the dashboard shows the list growing); the result
    keeps the lines in their fixed order. ``progress`` hears what it is doing, in `lang`."""
    say = progress or (lambda _: None)
    told = on_item or (lambda _: None)
    started = time.monotonic()
    settings = studio.settings
    cpu_before = psutil.cpu_times()

    async def tell(job: Awaitable[Any]) -> Any:
        found = await job
        for item in found if isinstance(found, list) else [found]:
            told(item)
        return found

    side = asyncio.gather(
        tell(_probe_outputs(settings, probe_timeout_s)), tell(check_mqtt(settings.mqtt)),
        tell(check_clock(clock_runner)),
    )
    try:
        await _wait_for_inputs(studio, connect_grace_s, say, lang)
        inputs = studio.inputs()
        say(t(lang, "check.watching", n=len(inputs), s=f"{sample_s:g}"))
        samples: dict[str, list[InputSample]] = {inp.input_id: [] for inp in inputs}
        end = time.monotonic() + sample_s
        while True:
            now = time.monotonic()
            for inp in inputs:
                st = inp.status(now)
                samples[inp.input_id].append(InputSample(st.connected, st.faults, inp.health(now)))
            if now >= end:
                break
            await asyncio.sleep(min(SAMPLE_EVERY_S, max(end - now, 0.0)))
        host = await _host_sample(settings.thresholds.host_disk_path)
        host = dataclasses.replace(host, cpu_pct=cpu_busy_pct(cpu_before, psutil.cpu_times()))
        outputs, mqtt, clock = await side
    except BaseException:
        side.cancel()
        with contextlib.suppress(BaseException):
            await side
        raise

    items = [judge_input(i, s) for i, s in samples.items()]
    now = time.monotonic()
    for inp in inputs:
        interval_ms, last_at = inp.keyframes()
        if last_at is not None:  # no video at all: the input's own line says so
            items.append(judge_keyframes(inp.input_id, interval_ms, now - last_at))
    if len(inputs) > 1:
        primary = inputs[0]
        primary_format = _format_of(primary)
        items += [judge_compatibility(primary.input_id, primary_format, inp.input_id, _format_of(inp))
                  for inp in inputs[1:]]
    carriage = judge_carriage(settings, {i.input_id: i.video_config.codec for i in inputs if i.video_config})
    host_item = judge_host(host, settings.thresholds)
    for item in [*items, *carriage, host_item]:  # outputs, MQTT and the clock were told already
        told(item)
    items += outputs
    items += carriage
    items += [mqtt, host_item, clock]
    return PreflightResult(items, sample_s, time.monotonic() - started)


__all__ = ["CheckItem", "InputSample", "PreflightResult", "StreamFormat", "check_clock", "check_mqtt",
           "judge_carriage", "judge_compatibility", "judge_host", "judge_input", "judge_keyframes",
           "judge_probe", "run_preflight"]
