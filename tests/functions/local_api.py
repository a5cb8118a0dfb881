"""The queue API's Lambda handlers behind a loopback HTTP server, called as API Gateway calls
them (HTTP API, payload format 2.0): the adapter the end-to-end test talks HTTP to."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

from functions.admission import handlers
from functions.admission.room import Room
from tests.functions.room_fixtures import THROUGH_CLOUDFRONT

Handler = Callable[[dict[str, Any], object, Room | None], dict[str, Any]]
ROUTES: dict[str, Handler] = {
    "POST /queue/join": handlers.join,
    "GET /queue/status": handlers.status,
    "GET /queue/room": handlers.status,  # the same function as in components/admission.py
}


def api_event(
    method: str, target: str, headers: dict[str, str], viewer: str = "127.0.0.1:0"
) -> dict[str, Any]:
    """An HTTP API v2 event as CloudFront and API Gateway pass it on: `cookies` split out of the
    Cookie header, headers lower-cased, CloudFront's origin secret and viewer address added."""
    url = urlsplit(target)
    lowered = {k.lower(): v for k, v in headers.items()}
    lowered |= {**THROUGH_CLOUDFRONT, "cloudfront-viewer-address": viewer}
    cookie = lowered.pop("cookie", "")
    return {
        "version": "2.0",
        "routeKey": f"{method} {url.path}",
        "rawPath": url.path,
        "rawQueryString": url.query,
        "cookies": [c.strip() for c in cookie.split(";") if c.strip()],
        "headers": lowered,
        "requestContext": {"http": {"method": method, "path": url.path, "sourceIp": "127.0.0.1"}},
        "isBase64Encoded": False,
    }


class QueueApi(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as CloudFront keeps origin connections
    disable_nagle_algorithm = True  # else headers then body wait out a 40 ms delayed ACK

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        viewer = f"{self.client_address[0]}:{self.client_address[1]}"
        event = api_event(method, self.path, dict(self.headers.items()), viewer)
        route = ROUTES.get(event["routeKey"])
        if route is None:
            answer: dict[str, Any] = {"statusCode": 404, "headers": {}, "body": ""}
        else:
            answer = route(event, None, cast(_Server, self.server).room)
        body = answer["body"].encode()
        self.send_response(answer["statusCode"])
        for name, value in answer["headers"].items():
            self.send_header(name, value)
        for cookie in answer.get("cookies", []):
            self.send_header("set-cookie", cookie)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a thousand visitors would flood the test output."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    room: Room


@contextmanager
def serve(room: Room, handler: type[QueueApi] = QueueApi) -> Iterator[tuple[str, int]]:
    """Serve `room`'s queue API (or `handler`, a QueueApi that serves more) on 127.0.0.1, a free
    port; yields (host, port)."""
    server = _Server(("127.0.0.1", 0), handler)
    server.room = room
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
