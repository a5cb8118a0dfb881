"""The portal as a browser sees it, on 127.0.0.1: the room's pages as the pages bucket serves
them, /queue/* through the queue API's handlers (tests/functions/local_api.py), and every other
path a stand-in portal page that names the path it was asked for."""

from __future__ import annotations

import html
from urllib.parse import urlsplit

from components.edge import PAGES_DIR, page_content_type
from tests.functions.local_api import QueueApi

PORTAL_TITLE = "Portal"


class PortalSite(QueueApi):
    def _serve(self, method: str) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/queue/"):
            super()._serve(method)
            return
        if path.startswith(("/waiting-room/", "/high-demand/", "/inbox/")) and not path.startswith(
            "/inbox/receipts/"
        ):
            file = (PAGES_DIR / path.lstrip("/")).resolve()
            if file.is_dir():
                file = file / "index.html"
            if PAGES_DIR.resolve() in file.parents and file.is_file():
                # S3's Content-Type is the one components/edge.py uploads with.
                self._send(200, page_content_type(file.name), file.read_bytes())
                return
            self._send(404, "text/plain", b"not found")
            return
        page = (
            f'<!doctype html><html lang="en"><title>{PORTAL_TITLE}</title>'
            f'<main><h1 id="portal">{html.escape(path)}</h1></main></html>'
        )
        self._send(200, "text/html; charset=utf-8", page.encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
