"""A local webhook receiver standing in for a chat service (DingTalk, Slack…) in tests.

    with WebhookReceiver(fail_first=1) as hook:     # answers 500 to the first request
        url = hook.apprise_url                       # json://127.0.0.1:PORT/hook
        ...
        hook.wait_for(lambda m: "black" in m["title"], timeout=10)

Every POST is kept with its arrival time (``time.time()``) and parsed JSON body.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.waiting import until_sync


class WebhookReceiver:
    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.messages: list[dict[str, Any]] = []  # accepted ones, with "_arrived"
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests += 1
                    refuse = receiver.fail_first > 0
                    if refuse:
                        receiver.fail_first -= 1
                    else:
                        body = json.loads(raw or b"{}")
                        receiver.messages.append({**body, "_arrived": time.time(), "_path": self.path})
                self.send_response(500 if refuse else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def apprise_url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        def first() -> dict[str, Any] | None:
            return next((m for m in self.received() if predicate(m)), None)

        until_sync(lambda: first() is not None, timeout, "a matching webhook", poll=0.02,
                   detail=lambda: f"got {self.received()}")
        found = first()
        assert found is not None
        return found
