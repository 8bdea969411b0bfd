"""A whole studio on 127.0.0.1, as the demo runs it: the platform stand-in, a broker if
one is at hand, `relay run` with one RTMP input per encoder, and synthetic encoders.

    studio = LocalStudio(workdir, failover={"healthy_for_s": 2})
    studio.start_platform(); studio.start_broker(); studio.start_relay()
    studio.start_encoder("main")        # red corner, 1 kHz; "backup": blue, 660 Hz
    ...
    studio.stop()                        # Relay first (SIGTERM, exit 0 expected), then the rest

Stream keys are random, and the configuration holding them is readable by its owner only.
"""

from __future__ import annotations

import secrets
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from studio.broker import Broker
from studio.configs import relay_toml
from studio.encoders import LOOKS, encoder_args
from studio.platform import Platform
from studio.procs import Child, free_port
from studio.relayrun import RelayRun


class LocalStudio:
    def __init__(self, workdir: Path, *, failover: Mapping[str, Any],
                 inputs: Sequence[str] = ("main", "backup"), platform_key: str = "demo-show",
                 name: str = "demo") -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.failover = dict(failover)
        self.keys = {i: f"{i}-{secrets.token_hex(6)}" for i in inputs}  # in priority order
        self.relay_id = f"{name}-{secrets.token_hex(2)}"  # unique on a shared broker
        self.platform_key = platform_key
        self.rtmp_port = free_port()
        self.journal = workdir / "journal.sqlite3"
        self.config = workdir / "relay.toml"
        self.platform: Platform | None = None
        self.broker: Broker | None = None
        self.relay: RelayRun | None = None
        self.encoders: dict[str, Child] = {}
        self.relay_exit: int | None = None

    def start_platform(self) -> Platform:
        self.platform = Platform(self.workdir, self.platform_key)
        self.platform.start()
        return self.platform

    def start_broker(self) -> Broker:
        self.broker = Broker(self.workdir)
        self.broker.start()
        return self.broker

    def write_config(self) -> None:
        assert self.platform is not None
        port = self.broker.port if self.broker is not None else None
        mqtt = {"enabled": True, "host": "127.0.0.1", "port": port} if port is not None else None
        inputs = [{"id": name, "kind": "rtmp", "key": key, "priority": priority}
                  for priority, (name, key) in enumerate(self.keys.items(), 1)]
        self.config.write_text("# Written by `relay demo`: a whole studio on 127.0.0.1.\n" + relay_toml(
            self.relay_id, server={"rtmp": f"127.0.0.1:{self.rtmp_port}"}, inputs=inputs,
            outputs=[{"id": "platform", "urls": [self.platform.url]}], failover=self.failover, mqtt=mqtt,
            journal=self.journal))
        self.config.chmod(0o600)  # it holds the stream keys

    def start_relay(self) -> RelayRun:
        """Write the configuration and start Relay; its log is `workdir/relay.log`."""
        self.write_config()
        self.relay = RelayRun(self.config, self.workdir / "relay.log").start()
        return self.relay

    def encoder_url(self, name: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{self.keys[name]}"

    def start_encoder(self, name: str, *, black_at_s: float | None = None) -> Child:
        """(Re)start encoder `name`; `black_at_s`: its picture goes black at that encoder time."""
        args = encoder_args(self.encoder_url(name), LOOKS[name], black_at_s)
        self.encoders[name] = Child(f"{name} encoder", args, self.logs / f"{name}-encoder.log",
                                    stop_signal=signal.SIGINT).start()  # both end their stream cleanly
        return self.encoders[name]

    def stop_relay(self) -> None:
        """SIGTERM, 10 s to exit (0 expected: the push closes cleanly, the session ends before
        the encoders vanish); `relay_exit` keeps the status."""
        if self.relay is not None and self.relay.proc is not None:
            self.relay_exit = self.relay.stop(grace_s=10.0)

    def stop_the_rest(self) -> None:
        """The encoders, the platform, the broker."""
        for enc in self.encoders.values():
            enc.stop(grace_s=2.0)
        if self.platform is not None:
            self.platform.stop()
        if self.broker is not None:
            self.broker.stop()

    def stop(self) -> None:
        self.stop_relay()
        self.stop_the_rest()
