"""The shape of Relay's configuration (BEHAVIOUR §5): every key, its type and default.

This module only declares; `relay/config/` loads a TOML file and the `RELAY_`
environment into these models, resolves secrets from files and reports every
mistake. Media-plane code receives these plain, frozen models and never touches
files or the environment itself.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

Seconds = Annotated[float, Field(ge=0)]
PositiveSeconds = Annotated[float, Field(gt=0)]

OUTPUT_SCHEMES = ("rtmp", "rtmps", "srt")
PULL_SCHEMES = ("rtmp", "rtmps", "srt", "http", "https", "file")
# SRTO_PASSPHRASE's limits (srt/docs/API/API-socket-options.md); SRT refuses other lengths.
SRT_PASSPHRASE_LENGTH = (10, 79)
# srt-live-transmit refuses listener ports below this ("Port value invalid: 1023 - must be >=1024").
SRT_LOWEST_PORT = 1024
# MQTT allows 65,535 bytes per topic; Relay appends up to about 100 (`/<id>/inputs/<id>/...`).
TOPIC_PREFIX_MAX_BYTES = 100


def split_host_port(value: str) -> tuple[str, int]:
    """``"0.0.0.0:1935"`` → ``("0.0.0.0", 1935)``; ``"[::1]:9000"`` → ``("::1", 9000)``;
    an empty host (``":1935"``) means every interface. Port 0 asks the OS for any free port.
    Raises ValueError with what is expected."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ValueError("expected host:port with a port from 0 to 65535, e.g. 0.0.0.0:1935")
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 3:
            raise ValueError("expected [IPv6]:port, e.g. [::1]:9000")
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("expected an IPv6 host in brackets, e.g. [::1]:9000")
    if any(c.isspace() or c in "/@?#" for c in host):
        raise ValueError("expected host:port with a plain host name or address, e.g. 0.0.0.0:1935")
    return (host or "0.0.0.0"), int(port)


def _host_port(value: str) -> str:
    split_host_port(value)
    return value


def _srt_listen(value: str) -> str:
    _, port = split_host_port(value)
    if 0 < port < SRT_LOWEST_PORT:
        raise ValueError(f"expected an SRT port from {SRT_LOWEST_PORT} to 65535 (srt-live-transmit refuses "
                         "lower ones), or 0 for any free port")
    return value


def _srt_passphrase(value: SecretStr) -> SecretStr:
    low, high = SRT_PASSPHRASE_LENGTH
    length = len(value.get_secret_value())
    if not low <= length <= high:
        raise ValueError(f"expected {low} to {high} characters, SRT's limits (it has {length})")
    return value


def _topic_prefix(value: str) -> str:
    """MQTT's topic-name rules (MQTT 5.0 section 4.7), so every topic Relay builds on it is valid."""
    if not value:
        raise ValueError("expected a topic prefix such as relay or studio-a/relay")
    if "+" in value or "#" in value:
        raise ValueError("expected no MQTT wildcard ('+' or '#'): a topic name cannot hold one")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value):
        raise ValueError("expected no NUL or other control character")
    if value.startswith("/") or value.endswith("/"):
        raise ValueError("expected no leading or trailing '/'")
    if "//" in value:
        raise ValueError("expected no empty level ('//')")
    if value.startswith("$"):
        raise ValueError("expected no leading '$' (those topics are the broker's own)")
    size = len(value.encode())
    if size > TOPIC_PREFIX_MAX_BYTES:
        raise ValueError(f"expected at most {TOPIC_PREFIX_MAX_BYTES} bytes (it has {size})")
    return value


def _ingest_url(value: SecretStr) -> SecretStr:
    # Messages never quote the URL itself: its path or query holds the platform's stream key.
    try:
        parts = urlsplit(value.get_secret_value())
        port = parts.port
    except ValueError as e:
        raise ValueError(f"expected a valid rtmp://, rtmps:// or srt:// URL ({e})") from None
    if parts.scheme not in OUTPUT_SCHEMES:
        got = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise ValueError(f"expected a URL with scheme rtmp, rtmps or srt, got {got}")
    if not parts.hostname:
        raise ValueError(f"expected a host in the {parts.scheme}:// URL")
    if parts.scheme == "srt" and port is None:
        raise ValueError("expected srt://host:port (SRT has no default port)")
    if parts.scheme != "srt" and len([s for s in parts.path.split("/") if s]) < 2:
        raise ValueError(f"expected {parts.scheme}://host[:port]/app/key (application and stream key)")
    return value


def _pull_url(value: SecretStr) -> SecretStr:
    text = value.get_secret_value()
    if not text.strip():
        raise ValueError("expected a URL or a file path, got an empty string")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"expected a valid URL or file path ({e})") from None
    if "://" not in text:
        return value  # a local file path
    if parts.scheme not in PULL_SCHEMES:
        got = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise ValueError(f"expected a URL with scheme {', '.join(PULL_SCHEMES)} or a file path, got {got}")
    if parts.scheme != "file" and not parts.hostname:
        raise ValueError(f"expected a host in the {parts.scheme}:// URL")
    if parts.scheme == "srt" and port is None:
        raise ValueError("expected srt://host:port (SRT has no default port)")
    return value


def pull_file_path(url: str) -> str | None:
    """The local file a pull input reads, or None if its `url` is a network URL."""
    if "://" not in url:
        return os.path.expanduser(url)
    parts = urlsplit(url)
    return parts.path if parts.scheme == "file" else None


HostPort = Annotated[str, AfterValidator(_host_port)]
SrtListen = Annotated[str, AfterValidator(_srt_listen)]
SrtPassphrase = Annotated[SecretStr, AfterValidator(_srt_passphrase)]
TopicPrefix = Annotated[str, AfterValidator(_topic_prefix)]
IngestUrl = Annotated[SecretStr, AfterValidator(_ingest_url)]
PullUrl = Annotated[SecretStr, AfterValidator(_pull_url)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(Section):
    rtmp: HostPort | None = "0.0.0.0:1935"  # host:port of the built-in RTMP ingest; None ("" in TOML) = off
    srt: SrtListen | None = None  # default host:port for SRT inputs that name no `listen`
    rtmp_app: str = "live"  # encoders publish to rtmp://<pc>:<port>/<app>/<key>
    handshake_timeout_s: PositiveSeconds = 5.0  # a connection must publish within this
    idle_timeout_s: PositiveSeconds = 10.0  # a connection with no bytes for this long is closed
    max_connections: Annotated[int, Field(ge=1)] = 64
    max_pending_per_address: Annotated[int, Field(ge=1)] = 16  # not yet publishing, from one address


class InputSettings(Section):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    kind: Literal["rtmp", "srt", "pull"]
    priority: Annotated[int, Field(ge=1)] = 1
    # The video codec the encoder is set to send; None = whatever it sends. Lets
    # config-check judge outputs and input pairs before the show; another codec arriving
    # raises the input's tier-1 `codec` fault.
    codec: Literal["h264", "hevc", "av1"] | None = None
    # rtmp
    key: SecretStr | None = None
    key_file: str | None = None
    # srt (listener, one per input)
    listen: SrtListen | None = None  # host:port; defaults to [server] srt
    streamid: str | None = None
    passphrase: SrtPassphrase | None = None
    passphrase_file: str | None = None
    latency_ms: Annotated[int, Field(ge=20, le=8000)] = 120
    # pull
    url: PullUrl | None = None
    loop: bool = False  # loop a local file
    open_timeout_s: PositiveSeconds = 5.0
    read_timeout_s: PositiveSeconds = 3.0


class SlateSettings(Section):
    image: str | None = None  # PNG/JPEG; None = a plain dark slate with Relay's text
    audio: str = "silence"  # "silence" or an audio file path
    language: Literal["en", "zh-CN"] = "en"  # the built-in slate's words (relay/i18n), as viewers read them


class OutputSettings(Section):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    # rtmp://, rtmps://, srt://; the loader fills this from `urls_file` when that is given instead
    urls: Annotated[list[IngestUrl], Field(min_length=1)]
    urls_file: str | None = None  # one URL per line
    enabled: bool = True
    queue_ms: Annotated[int, Field(ge=200, le=30000)] = 3000  # bounded queue, in media time
    connect_timeout_s: PositiveSeconds = 5.0
    reconnect_backoff_s: PositiveSeconds = 0.5  # first retry; doubles, with jitter
    reconnect_backoff_max_s: PositiveSeconds = 10.0
    failback: Literal["auto", "manual"] = "auto"
    probe_interval_s: PositiveSeconds = 30.0  # how often to probe the preferred URL
    # rtmps://: trust only the CA certificates in this PEM file (a platform or proxy with
    # its own CA, or its self-signed certificate); None = the system's CAs
    ca_file: str | None = None
    # How video goes out to rtmp(s):// URLs, as the platform reads it (rtmp/flv.py):
    # "legacy" H.264 only (codec id 7: every RTMP server); "enhanced" H.264, HEVC and AV1
    # (enhanced RTMP FourCC: YouTube, OBS 29.1+ servers); "codec_id_12" H.264 and HEVC as
    # FLV codec id 12 (Chinese platforms and CDNs). srt:// URLs carry H.264 and HEVC.
    video_tags: Literal["legacy", "enhanced", "codec_id_12"] = "legacy"


class FailoverSettings(Section):
    mode: Literal["auto", "manual"] = "auto"
    failback: Literal["auto", "manual"] = "auto"
    healthy_for_s: Seconds = 3.0
    failback_after_s: Seconds = 10.0
    min_dwell_s: Seconds = 5.0
    escalate_after_s: Seconds = 15.0
    switch_at: Literal["auto", "buffered", "next"] = "auto"
    # Switch between inputs of different video codecs (only for platforms known to follow
    # a codec change mid-stream). False: an input whose codec is not the one on air has a
    # tier-1 `codec` fault and is never switched to.
    mixed_codecs: bool = False
    max_added_delay_ms: Annotated[int, Field(ge=0)] = 1000
    verify_within_s: PositiveSeconds = 2.0


class ThresholdSettings(Section):
    """Every row of BEHAVIOUR §3. A fault clears after its condition is absent for `clear_after_s`."""

    clear_after_s: Seconds = 1.0
    # disconnected / stalled
    input_stall_ms: Annotated[int, Field(ge=50)] = 700
    # cadence
    cadence_gap_ms: Annotated[int, Field(ge=1)] = 150  # tier 3: single gap from this up to the stall
    cadence_fps_ratio: Annotated[float, Field(gt=0, le=1)] = 0.8  # tier 2: fps below this x nominal
    cadence_jitter_frames: Annotated[float, Field(gt=0)] = 3.0  # tier 2: p95 jitter in frame intervals
    cadence_hold_s: Seconds = 3.0
    # black (like blackdetect)
    black_luma: Annotated[float, Field(gt=0, lt=1)] = 0.10  # pixel is dark below this share of range
    black_pixels: Annotated[float, Field(gt=0, le=1)] = 0.98  # picture is black above this dark share
    black_s: Seconds = 2.0
    # a picture whose dark share is within this of black_pixels is watched picture by picture
    # even where the analysis looks only at keyframes (watch/decode_plan.py)
    black_watch_margin: Annotated[float, Field(ge=0, lt=1)] = 0.08
    # frozen (like freezedetect)
    frozen_db: float = -60.0
    frozen_warn_s: Seconds = 3.0
    frozen_fail_s: Seconds = 10.0
    # silence
    silence_dbfs: float = -60.0
    silence_warn_s: Seconds = 3.0
    silence_fail_s: Seconds = 10.0
    # audio_missing
    audio_missing_s: Seconds = 2.0
    # drift: audio minus video timeline vs its baseline; positive = audio stamped late (lags)
    drift_hold_s: Seconds = 2.0
    drift_baseline_s: PositiveSeconds = 3.0
    drift_minor_lead_ms: Annotated[int, Field(ge=0)] = 45
    drift_minor_lag_ms: Annotated[int, Field(ge=0)] = 125
    drift_warn_lead_ms: Annotated[int, Field(ge=0)] = 90
    drift_warn_lag_ms: Annotated[int, Field(ge=0)] = 185
    drift_fail_ms: Annotated[int, Field(ge=0)] = 500
    # bitrate
    bitrate_drop_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.5
    bitrate_median_window_s: PositiveSeconds = 60.0
    bitrate_drop_s: Seconds = 5.0
    bitrate_floor_kbps: Annotated[float, Field(ge=0)] = 0.0  # 0 = no floor
    bitrate_fail_kbps: Annotated[float, Field(ge=0)] = 50.0
    bitrate_fail_s: Seconds = 2.0
    # srt_link
    srt_rtt_ms: Annotated[float, Field(gt=0)] = 300.0
    srt_loss_pct: Annotated[float, Field(ge=0)] = 5.0
    srt_hold_s: Seconds = 5.0
    # push
    push_stall_s: PositiveSeconds = 3.0
    push_failed_reconnects: Annotated[int, Field(ge=1)] = 2
    # host
    host_cpu_pct: Annotated[float, Field(gt=0, le=100)] = 90.0
    host_cpu_s: Seconds = 10.0
    host_mem_free_pct: Annotated[float, Field(ge=0, le=100)] = 5.0
    host_disk_free_gb: Annotated[float, Field(ge=0)] = 1.0
    host_disk_path: str = "/"


class MqttSettings(Section):
    enabled: bool = True
    host: str = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None
    tls: bool = False
    ca_file: str | None = None
    topic_prefix: TopicPrefix = "relay"
    protocol: Literal["5", "3.1.1", "auto"] = "auto"
    health_interval_s: PositiveSeconds = 2.0
    thumbnail_interval_s: Seconds = 0.0
    discovery: bool = False
    # Home Assistant's discovery prefix (its MQTT options; birth messages on <prefix>/status)
    discovery_prefix: TopicPrefix = "homeassistant"
    event_buffer: Annotated[int, Field(ge=10)] = 1000
    max_request_bytes: Annotated[int, Field(ge=64)] = 4096


class JournalSettings(Section):
    path: str = "/var/lib/relay/journal.sqlite3"
    retention_days: Annotated[float, Field(gt=0)] = 30.0


class RecordingSettings(Section):
    """What went to the platform, kept on this PC (BEHAVIOUR §7a): copied, never re-encoded."""

    path: str | None = None  # a directory; None ("" in TOML) = no recording
    segment_minutes: Annotated[float, Field(ge=1, le=1440)] = 60.0  # a new file every hour (at a keyframe)
    keep_days: Annotated[float, Field(gt=0)] = 7.0  # older segments are deleted
    max_gb: Annotated[float, Field(gt=0)] = 50.0  # the oldest segments go first beyond this
    min_free_gb: Annotated[float, Field(ge=0)] = 1.0  # stop recording (a fault) with less free than this
    queue_ms: Annotated[int, Field(ge=1000, le=60000)] = 10000  # media held for a slow disk, then dropped


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


# What an `[[alerts]]` entry may name in `events`: every event of BEHAVIOUR §7, plus the
# shorthands people think in ("tier1": a tier-1 fault raised; "drill_failed").
EVENT_NAMES = (
    "started", "stopping", "input_connected", "input_disconnected", "input_rejected", "fault_raised",
    "fault_cleared", "switched", "switch_failed", "output_connected", "output_failed", "output_url_changed",
    "drill_started", "drill_finished", "command", "preflight", "config_reloaded", "config_reload_refused",
)
ALERT_SHORTHANDS = ("tier1", "tier2", "tier3", "drill_failed", "drill_passed")
DEFAULT_ALERT_EVENTS = ("tier1", "switched", "switch_failed", "output_url_changed", "drill_failed")


def _alert_events(names: list[str]) -> list[str]:
    known = (*ALERT_SHORTHANDS, *EVENT_NAMES)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown event {unknown[0]!r}; expected some of: {', '.join(known)}")
    return names


def _alert_url(value: SecretStr) -> SecretStr:
    # Never quoted back: the URL holds the service's token.
    scheme, sep, rest = value.get_secret_value().strip().partition("://")
    if not sep or not scheme or not rest:
        raise ValueError("expected an apprise URL such as dingtalk://TOKEN/, wecombot://KEY or "
                         "json://host/path")
    return value


MIN_TOKEN_LENGTH = 16


def _network(value: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an address or network (e.g. 127.0.0.1 or 10.0.0.0/8)") from None
    return value


def _token_length(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) < MIN_TOKEN_LENGTH:  # never quoted back: it is a secret
        raise ValueError(f"an API token needs at least {MIN_TOKEN_LENGTH} characters "
                         "(e.g. from `openssl rand -hex 24`)")
    return value


class HttpUser(Section):
    """One account of the dashboard and HTTP API (BEHAVIOUR §7a)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
    role: Literal["viewer", "operator"] = "viewer"  # viewer reads; operator also sends commands
    # plain text or a hash from `relay hash-password`; only a hash is kept in memory
    password: SecretStr | None = None
    password_file: str | None = None
    # API token for scripts: `Authorization: Bearer <token>`; long enough not to be guessed
    token: Annotated[SecretStr, AfterValidator(_token_length)] | None = None
    token_file: str | None = None


class HttpSettings(Section):
    listen: HostPort | None = None  # host:port of the dashboard, API and /metrics; None ("") = off
    users: list[HttpUser] = []
    public_url: str | None = None  # how people reach this dashboard (fleet links); default from listen
    session_hours: Annotated[float, Field(gt=0, le=168)] = 12.0  # a login lasts this long
    secure_cookie: bool = False  # set behind an HTTPS proxy: the cookie then only travels over TLS
    login_attempts: Annotated[int, Field(ge=1)] = 5  # failed logins per client and user per window
    login_window_s: PositiveSeconds = 300.0
    thumbnail_interval_s: Annotated[float, Field(ge=0.2)] = 1.0  # each input's picture on the page
    fleet: bool = True  # list every relay on the MQTT broker (relay/+/state) on /fleet
    # the pages' and reports' language: "auto" = each browser's Accept-Language (else English)
    language: Literal["auto", "en", "zh-CN"] = "auto"
    # Serve HTTPS (PEM files; the cookie is then Secure), or leave both empty behind an HTTPS proxy.
    tls_cert: str | None = None
    tls_key: str | None = None
    # Proxies whose X-Forwarded-For names the client (addresses or networks, e.g. "127.0.0.1");
    # from anyone else the header is ignored and the peer address is the client.
    trusted_proxies: list[Annotated[str, AfterValidator(_network)]] = []
    # Host headers answered (DNS rebinding); empty: the listen address, localhost, this PC's
    # names and public_url's host.
    allowed_hosts: list[str] = []
    max_connections: Annotated[int, Field(ge=8, le=4096)] = 128  # sockets of the HTTP port in all
    max_connections_per_address: Annotated[int, Field(ge=2, le=1024)] = 32  # trusted proxies excepted
    request_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0  # headers, then the body, each within
    idle_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30.0  # a connection with no request is closed
    live_per_account: Annotated[int, Field(ge=1, le=256)] = 16  # open live pages; the oldest is closed


class AlertSettings(Section):
    """One destination of alerts to people's phones, as an apprise URL (a secret)."""

    # e.g. dingtalk://TOKEN/, lark://…, wecombot://KEY, slack://…, tgram://…, mailtos://…, json://host/path;
    # the loader fills this from `url_file` when that is given instead
    url: Annotated[SecretStr, AfterValidator(_alert_url)]
    url_file: str | None = None
    events: Annotated[list[str], AfterValidator(_alert_events)] = list(DEFAULT_ALERT_EVENTS)
    max_per_minute: Annotated[int, Field(ge=1)] = 6  # more than this are held back and summed up
    dedup_s: Seconds = 300.0  # the same alert (event, subject, signal, kind) again within this is dropped
    retries: Annotated[int, Field(ge=0, le=10)] = 3  # after a failed send, with backoff
    timeout_s: PositiveSeconds = 10.0
    language: Literal["en", "zh-CN"] = "en"  # the alert texts' language (relay/i18n)


class RelaySettings(Section):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "relay"
    server: ServerSettings = ServerSettings()
    inputs: Annotated[list[InputSettings], Field(min_length=1)]
    slate: SlateSettings = SlateSettings()
    outputs: list[OutputSettings] = []
    failover: FailoverSettings = FailoverSettings()
    thresholds: ThresholdSettings = ThresholdSettings()
    mqtt: MqttSettings = MqttSettings()
    journal: JournalSettings = JournalSettings()
    recording: RecordingSettings = RecordingSettings()
    log: LogSettings = LogSettings()
    http: HttpSettings = HttpSettings()
    alerts: list[AlertSettings] = []
