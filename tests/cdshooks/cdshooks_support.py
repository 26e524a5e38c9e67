"""Helpers shared by the CDS Hooks tests: constants and a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
BASE = "https://cds.example.com"
ISS = "https://ehr.example.org"
SERVICE = "patient-greeter"
AUDIENCE = f"{BASE}/cds-services/{SERVICE}"


@contextmanager
def serve(
    make_app: Callable[[str], Any], *, scheme: str = "http", **uvicorn_options: Any
) -> Iterator[str]:
    """Run an ASGI app with uvicorn on 127.0.0.1 in a thread; yield its base URL.

    ``make_app`` receives the base URL first, because a CDS service must know the URL its
    clients put in ``aud``.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    base_url = f"{scheme}://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        make_app(base_url), log_level="warning", access_log=False, lifespan="off", **uvicorn_options
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield base_url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
