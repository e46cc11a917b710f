"""A Slack incoming webhook on loopback, for the tests (stdlib only).

A ``ThreadingHTTPServer`` on 127.0.0.1 on a free port, in a background thread, that answers
``POST`` to its webhook path as Slack does, records every request, and answers on demand::

    with SlackServer() as slack:
        slack.url                          # http://127.0.0.1:PORT/services/T.../B.../TOKEN
        slack.script(Reply(429, "rate_limited", retry_after=30), OK_REPLY)  # the next answers
        slack.always(Reply(500, "rollup_error"))   # every answer after the script (default 200 ok)
        slack.hang(True)                   # hold answers until hang(False) (or 30 s)
        slack.wait_for(3, timeout=10)      # until 3 requests arrived
        slack.payloads()                   # the JSON body of each request, in order
        slack.stop(); slack.start()        # down (connection refused) and up, same port

Slack's own answers are plain text: ``ok``; ``invalid_payload`` (400), ``invalid_token``
(403), ``no_service`` (404, also given here for any other path), ``rate_limited`` (429
with ``Retry-After``), ``rollup_error`` (500). A request through an HTTP proxy (an
absolute URI in the request line) is recorded with that URI as ``target``.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOST = "127.0.0.1"
HANG_LIMIT = 30.0


class Reply:
    """One answer: HTTP status, body text (`{target}` in it becomes the request's target, as
    a proxy's error page names the URL it could not reach), and a `Retry-After` header."""

    def __init__(self, status: int = 200, body: str = "ok", retry_after: float | None = None):
        self.status = status
        self.body = body
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body!r}, retry_after={self.retry_after!r})"


OK_REPLY = Reply(200, "ok")
RATE_LIMITED = Reply(429, "rate_limited", retry_after=30)
SERVER_ERROR = Reply(500, "rollup_error")
INVALID_PAYLOAD = Reply(400, "invalid_payload")
INVALID_TOKEN = Reply(403, "invalid_token")
NO_SERVICE = Reply(404, "no_service")


class Request:
    """One request as it arrived: when (time.monotonic()), its target, headers, body, and the
    reply it got."""

    __slots__ = ("at", "method", "target", "headers", "body", "reply")

    def __init__(self, at: float, method: str, target: str, headers: dict, body: bytes) -> None:
        self.at = at
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.reply: Reply | None = None

    def json(self) -> dict:
        return json.loads(self.body)


class SlackServer:
    def __init__(self) -> None:
        token = secrets.token_hex(12)
        self.path = f"/services/T0TESTTEAM/B0TESTHOOK/{token}"
        self.token = token
        self.port = 0
        self.requests: list[Request] = []
        self._script: list[Reply] = []
        self._default = OK_REPLY
        self._lock = threading.Condition()
        self._released = threading.Event()
        self._released.set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- running ------------------------------------------------------------------------

    def start(self) -> SlackServer:
        server = ThreadingHTTPServer((HOST, self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Down: connections are refused until start() (on the same port)."""
        self._released.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> SlackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"

    # -- behaviour ----------------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """The next answers, in order (then the default one)."""
        with self._lock:
            self._script.extend(replies)

    def always(self, reply: Reply) -> None:
        """The answer once the script is used up."""
        with self._lock:
            self._default = reply

    def hang(self, on: bool) -> None:
        """Hold every answer while on (each for at most HANG_LIMIT seconds)."""
        if on:
            self._released.clear()
        else:
            self._released.set()

    # -- what arrived -------------------------------------------------------------------

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Whether `count` requests arrived within `timeout` seconds."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.requests) >= count, timeout)

    def payloads(self) -> list[dict]:
        with self._lock:
            return [request.json() for request in self.requests]

    def delivered(self) -> list[dict]:
        """The payloads Slack took (answered 2xx)."""
        with self._lock:
            return [r.json() for r in self.requests if r.reply is not None and r.reply.status < 300]

    def _next_reply(self, target: str) -> Reply:
        with self._lock:
            if urlsplit(target).path != self.path:
                return NO_SERVICE
            return self._script.pop(0) if self._script else self._default

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)
            self._lock.notify_all()

    def _handler(self) -> type:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # one answer, one segment: no delayed-ACK stalls

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                request = Request(
                    time.monotonic(), "POST", self.path, dict(self.headers.items()), body
                )
                owner._record(request)
                owner._released.wait(HANG_LIMIT)
                reply = owner._next_reply(self.path)
                request.reply = reply
                self._answer(Reply(reply.status, reply.body.replace("{target}", self.path),
                                   reply.retry_after))  # fmt: skip

            def do_GET(self) -> None:  # noqa: N802
                self._answer(Reply(405, "invalid_method"))

            def _answer(self, reply: Reply) -> None:
                data = reply.body.encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(data)))
                if reply.retry_after is not None:
                    self.send_header("Retry-After", f"{reply.retry_after:g}")
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up waiting: its choice

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
