"""The push client against a platform that answers with what it should not (BEHAVIOUR §4,
"Output failover"): every such answer is a normal push failure, with its event, a reconnect and
the next URL, never a dead worker thread."""

from __future__ import annotations

import math

import pytest
from pydantic import SecretStr

from relay.events import Event, OutputFailed, OutputUrlChanged
from relay.push.output import Output
from relay.push.rtmp_publish import PushError, RtmpPublisher
from relay.settings import OutputSettings, ThresholdSettings
from tests.support.hostile import MalformedPlatform
from tests.support.waiting import until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("stream_id", [-1.0, float(2**32), math.inf, math.nan, 0.0, 1.5])
def test_an_unusable_stream_id_is_a_push_error(stream_id: float) -> None:
    """Reproduced: -1, 2^32, inf and NaN raised OverflowError/ValueError from the reader."""
    with MalformedPlatform(stream_id=stream_id) as platform:
        publisher = RtmpPublisher(platform.url(), connect_timeout=3.0, stall_timeout=3.0)
        with pytest.raises(PushError, match="stream id"):
            publisher.connect()


def test_replies_in_one_byte_chunks_are_read() -> None:
    with MalformedPlatform(chunk_size=1, padding=3000) as platform:
        publisher = RtmpPublisher(platform.url(), connect_timeout=5.0, stall_timeout=3.0)
        publisher.connect()
        publisher.abort()


async def test_a_malformed_platform_gets_the_failover_path() -> None:
    with MalformedPlatform(stream_id=math.nan) as first, MalformedPlatform(stream_id=math.inf) as second:
        events: list[Event] = []
        settings = OutputSettings(id="douyin", urls=[SecretStr(first.url()), SecretStr(second.url())],
                                  reconnect_backoff_s=0.1, reconnect_backoff_max_s=0.5, connect_timeout_s=2.0)
        output = Output(settings, ThresholdSettings(push_failed_reconnects=2), events.append)
        await output.start()
        try:
            await until(lambda: any(isinstance(e, OutputUrlChanged) for e in events)
                        and second.connections >= 2, 10, "the second URL, twice")
        finally:
            await output.stop()
    failures = [e for e in events if isinstance(e, OutputFailed)]
    assert failures and all("stream id" in e.reason for e in failures), failures
    assert {e.url_index for e in failures} == {0, 1}
    assert any(isinstance(e, OutputUrlChanged) for e in events)
    assert first.connections >= 2 and second.connections >= 2  # it reconnected, on both URLs


class ExplodingSink:
    """A sink whose connection dies of something no one planned for."""

    progress_at = 0.0
    bytes_sent = 0

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def open(self, video: object, audio: object) -> None:
        raise self.error

    def write(self, pkt: object) -> None: ...
    def service(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


@pytest.mark.parametrize("error", [OverflowError("int too large"), RecursionError("deep"), KeyError("x")])
async def test_any_exception_from_a_connection_is_a_push_failure(
        monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """Reproduced: an exception that is not a PushError ended the worker thread silently."""
    monkeypatch.setattr("relay.push.output.make_sink", lambda *args: ExplodingSink(error))
    events: list[Event] = []
    settings = OutputSettings(id="douyin", urls=[SecretStr("rtmp://127.0.0.1:1/live/push-key-0001"),
                                                 SecretStr("rtmp://127.0.0.1:2/live/push-key-0002")],
                              reconnect_backoff_s=0.05, reconnect_backoff_max_s=0.1)
    output = Output(settings, ThresholdSettings(push_failed_reconnects=2), events.append)
    await output.start()
    try:
        await until(lambda: len([e for e in events if isinstance(e, OutputFailed)]) >= 4, 5, "four failures")
    finally:
        await output.stop()
    failures = [e for e in events if isinstance(e, OutputFailed)]
    assert len(failures) >= 4 and {e.url_index for e in failures} == {0, 1}, events
    assert all(e.reason.startswith("error: ") and type(error).__name__ in e.reason for e in failures)
