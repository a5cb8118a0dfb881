"""moto for tests: its server on 127.0.0.1 only, in a thread of this process, and DynamoDB's
per-item write atomicity for tests whose threads write concurrently."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import moto.backends
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler
from moto.server import ThreadedMotoServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def atomic_item_writes(patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """Give moto's DynamoDB the per-item write atomicity the real service has (and no more):
    its in-memory backend is not thread-safe, and its server runs each request in a thread.

    `patch` is `setattr`, or a pytest `monkeypatch.setattr` to undo it after a test.
    """
    lock = threading.RLock()
    # Every write path: the inlet seals with BatchWriteItem while joins put and update items,
    # and moto's unlocked table dict can lose or mix writes under that concurrency. The request
    # handlers are locked too, not only the backend: moto's UpdateItem handler renders
    # ReturnValues from the live item after the backend returns, so a concurrent ADD could hand
    # two joins the same counter value (two visitors, one place). DynamoDB returns the value of
    # that update, atomically.
    for owner in (DynamoDBBackend, DynamoHandler):
        for method in ("update_item", "put_item", "delete_item", "batch_write_item"):
            original = getattr(owner, method)

            def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
                with lock:
                    return _original(self, *args, **kwargs)

            patch(owner, method, locked)


def cache_module_listing() -> Callable[[], None]:
    """moto's server lists its package directory (a listdir, ~70 stats) on every request to
    find the service; the list never changes while it runs, so list once (~10 % per call).
    Returns the undo."""
    listing = moto.backends.list_of_moto_modules
    moto.backends.list_of_moto_modules = cache(lambda: tuple(listing()))

    def undo() -> None:
        moto.backends.list_of_moto_modules = listing

    return undo


@contextmanager
def moto_thread(port: int | None = None) -> Iterator[str]:
    """moto's server in a thread of this process (on a free port by default); yields its URL."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    undo = cache_module_listing()
    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        undo()
