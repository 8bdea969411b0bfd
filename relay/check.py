"""`relay check` (BEHAVIOUR §9): the pre-show check from the command line.

With no relay running on this configuration, a temporary media graph receives and
watches the inputs for the sample window (nothing is pushed, no policy runs); with one
running, it is asked over MQTT (``request/check``) and its checklist printed. The
check itself is relay/preflight.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from relay import i18n
from relay.preflight import CONNECT_GRACE_S, MQTT_TIMEOUT_S, PreflightResult, run_preflight
from relay.settings import RelaySettings, split_host_port

if TYPE_CHECKING:
    from relay.graph import MediaGraph


def run_check(args: argparse.Namespace) -> int:
    """`relay check [-c FILE] [--json] [--sample-s N]`: exit 0 all pass, 1 warnings, 2 a failure."""
    from relay.config import load_or_exit

    settings = load_or_exit(args.config)
    lang = i18n.from_environment()  # what a person reads; --json stays as the relay says it
    sample_s = float(args.sample_s)
    if not 0 < sample_s <= 45:
        print(i18n.t(lang, "check.sample_s"), file=sys.stderr)
        return 2
    from relay.log import configure

    # The temporary relay's own event lines (inputs "never connected" before the encoders
    # find it, "publisher gone" when it stops) would bury the checklist, which says what matters.
    configure("critical", force_json=False if sys.stderr.isatty() else None)
    progress = _progress_printer(args.json)
    try:
        running = asyncio.run(_running_elsewhere(settings, lang))
        if running is not None:
            progress(i18n.t(lang, "check.asking", why=running))
            result = asyncio.run(_check_remote(settings, sample_s, lang))
        else:
            result = asyncio.run(_check_here(settings, sample_s, progress, lang))
    except CheckUnavailable as e:
        print(f"relay check: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(result.render_text(settings.id, lang))
    return result.exit_code


class CheckUnavailable(Exception):
    """The check could not run at all; the message says why."""


def _progress_printer(quiet: bool) -> Callable[[str], None]:
    def say(text: str) -> None:
        if not quiet:
            print(f"… {text}", file=sys.stderr, flush=True)
    return say


def rtmp_port_taken(settings: RelaySettings) -> bool:
    """True if something already listens on the configured RTMP ingest address."""
    if not settings.server.rtmp:
        return False
    host, port = split_host_port(settings.server.rtmp)
    if port == 0:
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are not a relay
        try:
            sock.bind((host, port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
    return False


async def _running_elsewhere(settings: RelaySettings, lang: str = i18n.DEFAULT) -> str | None:
    """Why we think a relay already runs with this configuration (said in `lang`), or None."""
    if rtmp_port_taken(settings):
        return i18n.t(lang, "check.port_taken", address=settings.server.rtmp)
    if settings.mqtt.enabled and await _availability(settings) == "online":
        return i18n.t(lang, "check.online", relay=settings.id)
    return None


async def _availability(settings: RelaySettings) -> str | None:
    from relay.control.remote import NoAnswer, connect_broker
    from relay.control.topics import Topics

    topics = Topics(settings.mqtt.topic_prefix, settings.id)
    try:
        connecting = connect_broker(settings.mqtt, MQTT_TIMEOUT_S)
        async with asyncio.timeout(MQTT_TIMEOUT_S + 1), connecting as (client, _):
            await client.subscribe(topics.availability, qos=1)
            async with asyncio.timeout(1.5):  # a retained message follows the SUBACK at once
                async for message in client.messages:
                    payload = message.payload
                    return bytes(payload).decode(errors="replace") if isinstance(payload, bytes) else None
    except (NoAnswer, TimeoutError):
        return None
    return None


async def _check_remote(settings: RelaySettings, sample_s: float,
                        lang: str = i18n.DEFAULT) -> PreflightResult:
    """Ask the running relay (MQTT ``request/check``) and wait for its answer. Its lines
    come as it judged them, in English (the ``check`` reply is machine output)."""
    if not settings.mqtt.enabled:
        raise CheckUnavailable(i18n.t(lang, "check.no_mqtt"))
    from relay.control.remote import NoAnswer, RelayLink, connect_broker
    from relay.control.topics import Topics

    topics = Topics(settings.mqtt.topic_prefix, settings.id)
    wait_s = sample_s + CONNECT_GRACE_S + 30.0
    try:
        async with connect_broker(settings.mqtt, MQTT_TIMEOUT_S) as (client, v5):
            reply = await RelayLink(client, v5, topics).request("check", {"sample_s": sample_s}, wait_s)
    except NoAnswer as e:
        raise CheckUnavailable(e.text(lang)) from None
    if reply.get("status") != "ok" or not isinstance(reply.get("data"), dict):
        raise CheckUnavailable(i18n.t(lang, "check.remote_failed", error=reply.get("error")))
    return PreflightResult.from_dict(reply["data"])


async def _check_here(settings: RelaySettings, sample_s: float,
                      progress: Callable[[str], None], lang: str = i18n.DEFAULT) -> PreflightResult:
    """A temporary media graph: the configured ingest servers receive and watch the inputs
    for the window; nothing is pushed and no policy runs (the probes stand in for the outputs)."""
    from relay.events import EventBus
    from relay.graph import MediaGraph

    graph = MediaGraph(settings, EventBus().emit)
    graph.open_inputs()
    graph.start_analyzers()
    ticking = asyncio.create_task(_tick_watchers(graph))
    try:
        try:
            await graph.start_sources()
        except OSError as e:
            raise CheckUnavailable(i18n.t(lang, "check.no_inputs", error=e.strerror or e)) from None
        return await run_preflight(graph, sample_s, connect_grace_s=CONNECT_GRACE_S, progress=progress,
                                   lang=lang)
    finally:
        ticking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticking
        await graph.stop()


async def _tick_watchers(graph: MediaGraph) -> None:
    """The watchers' tick of the media graph (the failover policy is not run)."""
    while True:
        graph.tick_watchers(time.monotonic())
        await asyncio.sleep(0.1)
