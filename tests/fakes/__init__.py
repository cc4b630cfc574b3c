"""Loopback HTTP fakes of the Anthropic and Airtable APIs, for the real SDK clients to talk to.

Each fake is a stdlib `ThreadingHTTPServer` on 127.0.0.1 and a free port, served from a background
thread. It records every request, can add latency, counts requests in flight, and answers a route
it does not know with an error, never a silent 200.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

# Never recorded: the fakes must not become a place where a key could leak from.
SECRET_HEADERS = frozenset({"authorization", "x-api-key"})


@dataclass
class FakeRequest:
    """One request as the fake received it.

    Attributes:
        method: "GET", "POST", …
        path: The path without the query string.
        query: Query parameters, each a list of values.
        headers: Lower-case header names; Authorization and X-Api-Key are left out.
        body: The raw body.
        json: The body parsed as JSON, or None.
        token: The bearer token or API key the request carried (kept apart from `headers`).
        time: `time.monotonic()` when it arrived.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    token: Optional[str] = field(default=None, repr=False)
    time: float = 0.0


@dataclass
class FakeResponse:
    """What the fake answers; status 0 closes the connection without answering (a dropped connection)."""

    status: int
    body: Any = None  # JSON-serialisable, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)


class LoopbackServer:
    """Base of the fakes: start/stop, recording, latency and the in-flight counter.

    Attributes:
        url: "http://127.0.0.1:<port>" once started.
        requests: Every `FakeRequest` received, in order of arrival.
        latency: Seconds to wait before answering each request.
        in_flight: Requests being handled right now.
        max_in_flight: The most requests that were ever in flight at once.
    """

    def __init__(self) -> None:
        self.requests: list[FakeRequest] = []
        self.latency = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.RLock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("fake server not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LoopbackServer":
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # -- dispatch

    def reset_counters(self) -> None:
        """Forget recorded requests and the in-flight maximum."""
        with self.lock:
            self.requests.clear()
            self.max_in_flight = self.in_flight

    def dispatch(self, request: FakeRequest) -> FakeResponse:
        with self.lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            return self.handle(request)
        except Exception as exc:  # a bug in the fake must show, not hang the client
            return FakeResponse(500, {"error": {"type": "FAKE_BUG", "message": f"fake crashed: {exc!r}"}})
        finally:
            with self.lock:
                self.in_flight -= 1

    def handle(self, request: FakeRequest) -> FakeResponse:
        raise NotImplementedError


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    server_owner: LoopbackServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        token = None
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        elif "x-api-key" in headers:
            token = headers["x-api-key"]
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        request = FakeRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={name: value for name, value in headers.items() if name not in SECRET_HEADERS},
            body=body,
            json=parsed,
            token=token,
            time=time.monotonic(),
        )
        response = self.server_owner.dispatch(request)
        if response.status == 0:
            self.close_connection = True
            return
        payload = response.body if isinstance(response.body, bytes) else json.dumps(response.body).encode()
        self.send_response(response.status)
        if not any(name.lower() == "content-type" for name in response.headers):
            self.send_header("Content-Type", "application/json")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass
