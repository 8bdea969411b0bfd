"""What the publish client says in `connect`: an enhanced-RTMP output announces the video
codecs it may send as `fourCcList` (Enhanced RTMP v1, "Extending NetConnection connect
Command": a strict array of FourCC strings); a legacy or codec-id-12 output does not.
A real socket to a listener that runs the server's handshake and reads the first
command, as a platform's ingest would."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from relay.push.rtmp_publish import PushError
from relay.push.sinks import RtmpSink
from relay.rtmp import amf0
from relay.rtmp.chunks import COMMAND_AMF0, ChunkReader
from relay.rtmp.handshake import ServerHandshake


def connect_object(form: str) -> dict[str, Any]:
    """The command object of the `connect` an RtmpSink of ``form`` sends."""
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[list[Any]] = []

    def ingest() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(10)
            handshake, reader = ServerHandshake(), ChunkReader()
            while not seen:
                data = conn.recv(65536)
                if not data:
                    return
                if not handshake.done:
                    conn.sendall(handshake.feed(data))
                    if not handshake.done:
                        continue
                    data = handshake.leftover
                for message in reader.feed(data):
                    if message.type_id == COMMAND_AMF0:
                        seen.append(amf0.decode_all(message.payload.tail(0)))
                        return  # and hang up: the test needs only the connect

    thread = threading.Thread(target=ingest, daemon=True)
    thread.start()
    try:
        port = server.getsockname()[1]
        sink = RtmpSink(f"rtmp://127.0.0.1:{port}/live/stream-key-1234", 5.0, 5.0, form=form)
        with pytest.raises(PushError):  # the listener hangs up after reading connect
            sink.open(None, None)
        thread.join(10)
    finally:
        server.close()
    name, _transaction, command, *_ = seen[0]
    assert name == "connect"
    assert isinstance(command, dict)
    return command


def test_an_enhanced_output_announces_its_fourccs_in_connect() -> None:
    command = connect_object("enhanced")
    assert command["app"] == "live" and command["tcUrl"].endswith("/live")
    assert isinstance(command["fourCcList"], list)  # an AMF0 strict array
    assert {"hvc1", "av01"} <= set(command["fourCcList"])
    assert all(isinstance(f, str) and len(f) == 4 for f in command["fourCcList"])


@pytest.mark.parametrize("form", ["legacy", "codec_id_12"])
def test_a_legacy_output_does_not(form: str) -> None:
    command = connect_object(form)
    assert command["app"] == "live" and "fourCcList" not in command
