"""Relay's own RTMP ingest server (publish side only).

``handshake``, ``chunks``, ``amf0``, ``flv`` and ``session`` are pure protocol
logic (bytes in, messages and media packets out); ``server`` puts them on asyncio
sockets with per-connection deadlines.
"""

from relay.ingest.rtmp.server import RtmpServer

__all__ = ["RtmpServer"]
