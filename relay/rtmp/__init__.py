"""RTMP, the protocol alone: bytes in, messages and bytes out, no sockets and no clock.

Adobe RTMP specification 1.0 (handshake 5.2, chunk stream 5.3, control messages 5.4,
user control 6.2, commands 7.2), AMF0, and FLV tag bodies as RTMP carries them. Both
sides of a connection live here, so the ingest server and the push client share one
chunk reader and writer, one handshake module and one AMF0 codec:

- ``handshake``: the server's and the client's side of the plain handshake;
- ``chunks``: the chunk stream both ways, every bound a parameter (a publisher on the
  LAN and a platform's replies are bounded differently);
- ``amf0``: commands and metadata;
- ``flv``: FLV tag bodies read into media packets;
- ``server_session``: one publisher's conversation with Relay's ingest server;
- ``client_session``: Relay's conversation with a platform, as a publisher (or as a
  probe that stops after ``connect``).

The asyncio and blocking shells that put these on sockets are
relay/ingest/rtmp_server.py, relay/push/rtmp_publish.py and relay/push/probe.py.
"""
