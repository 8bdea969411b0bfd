"""relay/early_listen.py: `relay run` binds the ingest's socket before importing the media
stack, an encoder connecting meanwhile is held (not refused), and the server then
serves on that same socket."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from relay.config import load_settings
from relay.early_listen import EarlyListeners
from relay.settings import RelaySettings
from studio.procs import free_port
from tests.support.relay_toml import studio_config


def settings_listening_on(tmp: Path, port: int, **kw: Any) -> RelaySettings:
    path = tmp / "relay.toml"
    path.write_text(studio_config(tmp, port, **kw))
    return load_settings(path, environ={})


def test_an_encoder_connecting_before_the_server_exists_is_held_then_served(tmp_path: Path) -> None:
    port = free_port()
    early = EarlyListeners.bind(settings_listening_on(tmp_path, port))
    assert early.addresses == [("127.0.0.1", port)]
    # The media stack would be importing now: the connection is accepted by the kernel.
    encoder = socket.create_connection(("127.0.0.1", port), timeout=2)
    encoder.sendall(b"\x03hello")

    async def serve() -> bytes:
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.set_result(await reader.readexactly(6))
            writer.close()

        # As the RTMP server asks for its address: the loop hands it the early socket.
        server = await asyncio.start_server(on_connection, "127.0.0.1", port, reuse_address=True, backlog=128)
        async with server:
            assert [s.getsockname()[1] for s in server.sockets] == [port]
            return await asyncio.wait_for(got, 5)

    with asyncio.Runner(loop_factory=early.loop_factory()) as runner:
        assert runner.run(serve()) == b"\x03hello"
    encoder.close()
    assert early.close() == []  # taken by the server: nothing left over


def test_other_addresses_are_bound_by_the_server_as_usual(tmp_path: Path) -> None:
    early = EarlyListeners.bind(settings_listening_on(tmp_path, free_port()))
    other = free_port()

    async def serve() -> int:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", other)
        async with server:
            return int(server.sockets[0].getsockname()[1])

    with asyncio.Runner(loop_factory=early.loop_factory()) as runner:
        assert runner.run(serve()) == other
    assert len(early.close()) == 1  # the early socket nobody asked for is closed


def test_nothing_is_bound_early_without_rtmp_inputs_a_fixed_port_or_a_literal_address(tmp_path: Path) -> None:
    srt_only = [{"id": "main", "kind": "srt", "listen": "127.0.0.1:0", "priority": 1}]
    srt = settings_listening_on(tmp_path, free_port(), inputs=srt_only)
    assert EarlyListeners.bind(srt).addresses == []
    assert EarlyListeners.bind(settings_listening_on(tmp_path, 0)).addresses == []
    named = settings_listening_on(tmp_path, free_port(), server={"rtmp": "localhost:19350"})
    assert EarlyListeners.bind(named).addresses == []


def test_an_address_already_taken_is_left_for_the_server_to_report(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        assert EarlyListeners.bind(settings_listening_on(tmp_path, port)).addresses == []


def test_the_guess_from_the_file_is_kept_when_the_configuration_agrees(tmp_path: Path) -> None:
    port = free_port()
    settings = settings_listening_on(tmp_path, port)
    early = EarlyListeners.guess(str(tmp_path / "relay.toml"))
    assert early.addresses == [("127.0.0.1", port)]
    sock = early._sockets[("127.0.0.1", port)]
    early.settle(settings)
    assert early.take("127.0.0.1", port) is sock  # not closed and bound again
    sock.close()


def test_a_wrong_guess_is_closed_and_what_the_configuration_says_is_bound(tmp_path: Path) -> None:
    guessed, configured = free_port(), free_port()
    (tmp_path / "guess.toml").write_text(studio_config(tmp_path, guessed))
    early = EarlyListeners.guess(str(tmp_path / "guess.toml"))
    assert early.addresses == [("127.0.0.1", guessed)]
    early.settle(settings_listening_on(tmp_path, configured))  # e.g. RELAY_SERVER__RTMP said otherwise
    assert early.addresses == [("127.0.0.1", configured)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", guessed))  # free again
    early.close()


def test_no_guess_from_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    assert EarlyListeners.guess(str(tmp_path / "missing.toml")).addresses == []
    (tmp_path / "bad.toml").write_text("[server\nrtmp = 1")
    assert EarlyListeners.guess(str(tmp_path / "bad.toml")).addresses == []
    (tmp_path / "odd.toml").write_text('server = "x"\ninputs = [{kind = "rtmp"}]')
    assert EarlyListeners.guess(str(tmp_path / "odd.toml")).addresses == []
