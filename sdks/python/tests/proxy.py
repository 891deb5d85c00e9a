"""A scripted HTTP proxy in front of the real server, for the retry tests.

Every POST is recorded (operation name and idempotency key). Requests whose operation has a
scripted action take the next one:

- ``Forward()``: pass it on and relay the answer (what unscripted requests get);
- ``Drop()``: pass it on, let the server apply it and answer, then close the client's
  connection without sending a byte of that answer;
- ``Reply(status, headers, body)``: answer without asking the server.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host"}


@dataclass(frozen=True)
class Forward:
    pass


@dataclass(frozen=True)
class Drop:
    pass


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


Action = Union[Forward, Drop, Reply]


@dataclass(frozen=True)
class Seen:
    operation: str | None
    idempotency_key: str | None
    action: Action
    body: dict[str, Any]


class Proxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        assert parts.hostname and parts.port
        self.upstream = (parts.hostname, parts.port)
        self.seen: list[Seen] = []
        self._script: dict[str, deque[Action]] = defaultdict(deque)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                operation = body.get("operationName") if isinstance(body, dict) else None
                variables = body.get("variables") if isinstance(body, dict) else None
                key = variables.get("idempotencyKey") if isinstance(variables, dict) else None
                with proxy._lock:
                    queue = proxy._script.get(operation or "")
                    action: Action = queue.popleft() if queue else Forward()
                    proxy.seen.append(Seen(operation, key, action, body))
                if isinstance(action, Reply):
                    self._answer(action.status, list(action.headers.items()), action.body)
                    return
                status, headers, answer = proxy._forward(self.path, dict(self.headers), raw)
                if isinstance(action, Drop):
                    # The server has applied the request and answered; the client never hears.
                    self.close_connection = True
                    return
                self._answer(status, headers, answer)

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response_only(status)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, operation: str, *actions: Action) -> None:
        with self._lock:
            self._script[operation].extend(actions)

    def requests(self, operation: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.operation == operation]

    def _forward(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request("POST", path, body=body, headers=forwarded)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
