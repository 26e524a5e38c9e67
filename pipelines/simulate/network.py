"""The simulated network: httpx transports that carry requests to ASGI apps in this process.

A CDS client's requests go through its real ``httpx.Client`` and the service's real ASGI
stack (Starlette and ``CdsHooksMiddleware``); only the sockets are missing. Each transport
stands for one machine: it has a peer address and the TLS version that machine negotiates,
which the service sees in the ASGI scope as it would behind a TLS-terminating server
(the ``tls`` extension). A transport can also drop connections (a network blip, which the
client retries) and lets an incident tap what goes over the wire (a captured token).
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from starlette.types import ASGIApp, Message

from auditor.errors import UnavailableError

_EPHEMERAL_PORTS: Final = 16384
_START_TIMEOUT_S: Final = 10.0
_TLS_CIPHER: Final = {0x0304: 0x1301, 0x0303: 0xC02F, 0x0302: 0xC013, 0x0301: 0x002F}
"""A plausible cipher suite per TLS version (TLS_AES_128_GCM_SHA256, ECDHE-RSA-AES128...)."""

Tap = Callable[[httpx.Request], None]


class Network:
    """Routes requests by origin to ASGI applications in this process.

    In process (the default) a request is handed to the application directly. With
    ``http``, each application is served by uvicorn on 127.0.0.1 (a free port) and requests
    travel over real loopback HTTP, as behind a TLS-terminating proxy: the public origin
    stays the application's base URL, the connection goes to the local port.

    Not thread-safe: a simulation runs its requests one after the other.

    Args:
        http: Serve the applications with uvicorn and call them over HTTP.
    """

    def __init__(self, *, http: bool = False) -> None:
        self._apps: dict[str, ASGIApp] = {}
        self._ports = itertools.count()
        self.http = http
        self._servers: dict[str, _LocalServer] = {}
        self._http_transport = httpx.HTTPTransport() if http else None

    def serve(self, base_url: str, app: ASGIApp) -> None:
        """Make ``app`` answer every request to the origin of ``base_url``."""
        origin = _origin(base_url)
        self._apps[origin] = app
        if self.http:
            self._servers[origin] = _LocalServer(app)

    def close(self) -> None:
        """Stop the local servers (``http`` mode)."""
        for server in self._servers.values():
            server.stop()
        if self._http_transport is not None:
            self._http_transport.close()

    def forward(self, request: httpx.Request, *, peer_ip: str) -> httpx.Response:
        """Send ``request`` over loopback HTTP to the server of its origin (``http`` mode).

        Raises:
            httpx.ConnectError: No server serves that origin.
        """
        origin = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
        server = self._servers.get(origin)
        if server is None or self._http_transport is None:
            raise httpx.ConnectError("name or service not known", request=request)
        local = request.url.copy_with(scheme="http", host="127.0.0.1", port=server.port)
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"host"]
        headers += [(b"host", request.url.netloc), (b"x-forwarded-for", peer_ip.encode())]
        sent = httpx.Request(request.method, local, headers=headers, content=request.read())
        response = self._http_transport.handle_request(sent)
        try:
            content = response.read()
        finally:
            response.close()
        return httpx.Response(
            response.status_code, headers=response.headers, content=content, request=request
        )

    def transport(self, peer_ip: str, *, tls_version: int | None) -> SimulatedTransport:
        """A transport for one machine at ``peer_ip`` negotiating ``tls_version``."""
        return SimulatedTransport(self, peer_ip, tls_version)

    def app_for(self, url: httpx.URL) -> ASGIApp | None:
        """The application behind the origin of ``url``, if any."""
        return self._apps.get(f"{url.scheme}://{url.netloc.decode('ascii')}")

    def next_port(self) -> int:
        """An ephemeral client port, as the peer's kernel would pick one."""
        return 49152 + next(self._ports) % _EPHEMERAL_PORTS

    def exchange(
        self, app: ASGIApp, scope: dict[str, Any], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Run one HTTP exchange through ``app``; returns status, headers and body.

        The applications do no I/O (JWK Sets come from :class:`JwksHost`, verification runs
        inline), so the exchange completes without ever suspending and is driven directly,
        without an event loop — a third of the cost of a call otherwise.

        Raises:
            RuntimeError: The application suspended on real I/O.
        """
        exchange = _exchange(app, scope, body)
        try:
            exchange.send(None)
        except StopIteration as done:
            result: tuple[int, list[tuple[bytes, bytes]], bytes] = done.value
            return result
        exchange.close()
        raise RuntimeError("a simulated application waited on I/O; it must run in process")


class SimulatedTransport(httpx.BaseTransport):
    """The httpx transport of one simulated machine (see the module docstring).

    Attributes:
        peer_ip: The address services see.
        tls_version: The TLS version services see (``None``: plain HTTP).
        drops: How many of the next requests fail to connect.
        tap: Called with each request before it is sent (an incident's wiretap).
    """

    def __init__(self, network: Network, peer_ip: str, tls_version: int | None) -> None:
        self._network = network
        self.peer_ip = peer_ip
        self.tls_version = tls_version
        self.drops = 0
        self.tap: Tap | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Deliver ``request`` to the application that serves its origin."""
        if self.tap is not None:
            self.tap(request)
        if self.drops > 0:
            self.drops -= 1
            raise httpx.ConnectError("connection reset by peer", request=request)
        if self._network.http:
            return self._network.forward(request, peer_ip=self.peer_ip)
        app = self._network.app_for(request.url)
        if app is None:
            raise httpx.ConnectError("name or service not known", request=request)
        body = request.read()
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "server": (request.url.host, request.url.port or 443),
            "client": (self.peer_ip, self._network.next_port()),
            "extensions": {},
        }
        if self.tls_version is not None:
            scope["extensions"]["tls"] = {
                "server_cert": None,
                "client_cert_chain": [],
                "client_cert_name": None,
                "client_cert_error": None,
                "tls_version": self.tls_version,
                "cipher_suite": _TLS_CIPHER.get(self.tls_version),
            }
        status, headers, content = self._network.exchange(app, scope, body)
        return httpx.Response(status, headers=headers, content=content, request=request)


async def _exchange(
    app: ASGIApp, scope: dict[str, Any], body: bytes
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    delivered = False
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    await app(scope, receive, send)
    return status, headers, b"".join(chunks)


class _LocalServer:
    """uvicorn serving one application on 127.0.0.1 in a background thread."""

    def __init__(self, app: ASGIApp) -> None:
        import uvicorn

        # proto=IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets
        # that say they are TCP, and accepted sockets inherit it. With Nagle on, each
        # response waits ~40 ms for the client's delayed ACK.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"simulate-uvicorn-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise UnavailableError("a simulated CDS service did not start on 127.0.0.1")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=_START_TIMEOUT_S)
        self._socket.close()


class JwksHost(httpx.BaseTransport):
    """Serves EHRs' JWK Sets at their URLs, for the services' trust registries.

    Args:
        documents: URL -> a function returning the JWK Set published there now.
    """

    def __init__(self, documents: Mapping[str, Callable[[], Mapping[str, Any]]]) -> None:
        self._documents = dict(documents)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer a GET of a published JWK Set; 404 for anything else."""
        document = self._documents.get(str(request.url))
        if request.method != "GET" or document is None:
            return httpx.Response(404, request=request)
        return httpx.Response(
            200,
            headers={"content-type": "application/jwk-set+json"},
            content=json.dumps(document()).encode(),
            request=request,
        )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
