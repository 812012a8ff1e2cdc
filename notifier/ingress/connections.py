"""The ingress's connections, bounded in time and in number.

aiohttp bounds neither the time to a complete request head nor, usefully, the idle time
of a new connection (its keep-alive timer only closes a connection between requests), and
it accepts as many connections as arrive: idle sockets and sockets trickling a header
byte every few seconds were all open after 150 s, and 300 of them under a 256-file limit
made every real callback fail. Each connection is therefore aiohttp's protocol behind a
`GuardedConnection`, which

- closes a connection whose request head is not complete `header_timeout` after it was
  accepted, or after the first byte of a later request;
- closes one that waits more than `idle_timeout` for the next request;
- caps connections in all and per client address. At a cap, the connection that has
  waited longest without a request in progress gives way (a new one is refused only when
  every connection is busy), so idle and slow sockets cannot keep Zoho out.

The request handler tells the guard when a request starts and ends (`track` middleware).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from notifier.ingress.limits import ConnectionLimits
from servicekit.metrics import INGRESS_CONNECTIONS, INGRESS_CONNECTIONS_CLOSED

log = logging.getLogger(__name__)


def connection_cap(limits: ConnectionLimits) -> int:
    """`max_connections`, but never more than half the process's file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limits.max_connections
    return max(1, min(limits.max_connections, soft // 2))


class GuardedConnection(asyncio.Protocol):
    """One connection: aiohttp's protocol (`inner`), with a deadline while no request runs."""

    def __init__(self, guard: ConnectionGuard, inner: Any) -> None:
        self.guard = guard
        self.inner = inner
        self.peer = ""
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.admitted = False
        # Between requests: waiting for the first byte of the next one (idle) or for the
        # rest of its head (header).
        self._waiting_for_head = True
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self.guard.admit(self):
            transport.abort()
            return
        self.admitted = True
        self._arm(self.guard.limits.header_timeout_seconds, "header_timeout")
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.busy and not self._waiting_for_head:
            # The first byte of the next request: its head is now due.
            self._waiting_for_head = True
            self._arm(self.guard.limits.header_timeout_seconds, "header_timeout")
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.guard.release(self)
        if self.admitted:
            self.admitted = False
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def request_started(self) -> None:
        self.busy = True
        self._disarm()
        self.guard.busy(self)

    def request_finished(self) -> None:
        self.busy = False
        if not self.admitted:  # the connection was lost while the request ran
            return
        self._waiting_for_head = False
        self._arm(self.guard.limits.idle_timeout_seconds, "idle_timeout")
        self.guard.idle(self)

    def close(self, reason: str) -> None:
        if not self.admitted:
            return
        self._disarm()
        self.guard.release(self)
        INGRESS_CONNECTIONS_CLOSED.labels(reason).inc()
        if self.transport is not None:
            self.transport.abort()

    def _arm(self, seconds: float, reason: str) -> None:
        self._disarm()
        self._deadline = asyncio.get_running_loop().call_later(seconds, self._expired, reason)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, reason: str) -> None:
        self._deadline = None
        if not self.busy:
            self.close(reason)


class ConnectionGuard:
    """The connections open now: counted in all and per peer address, the ones without a
    request in progress in the order they became so (oldest first)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.cap = connection_cap(limits)
        self.open = 0
        self._per_peer: dict[str, int] = {}
        self._waiting: OrderedDict[GuardedConnection, None] = OrderedDict()
        self._by_transport: dict[asyncio.BaseTransport, GuardedConnection] = {}

    def protocol_factory(self, inner: Callable[[], Any]) -> Callable[[], GuardedConnection]:
        return lambda: GuardedConnection(self, inner())

    def admit(self, conn: GuardedConnection) -> bool:
        if self._per_peer.get(conn.peer, 0) >= self.limits.max_connections_per_peer:
            if not self._make_room(conn.peer):
                INGRESS_CONNECTIONS_CLOSED.labels("refused_peer").inc()
                return False
        if self.open >= self.cap and not self._make_room(None):
            INGRESS_CONNECTIONS_CLOSED.labels("refused_total").inc()
            return False
        self.open += 1
        self._per_peer[conn.peer] = self._per_peer.get(conn.peer, 0) + 1
        self._waiting[conn] = None
        assert conn.transport is not None
        self._by_transport[conn.transport] = conn
        INGRESS_CONNECTIONS.set(self.open)
        return True

    def _make_room(self, peer: str | None) -> bool:
        """Closes the connection (of `peer`, if given) waiting longest without a request."""
        victim = next((c for c in self._waiting if peer is None or c.peer == peer), None)
        if victim is None:
            return False
        victim.close("evicted")
        return True

    def release(self, conn: GuardedConnection) -> None:
        if conn.transport is None or self._by_transport.pop(conn.transport, None) is None:
            return
        self._waiting.pop(conn, None)
        self.open -= 1
        left = self._per_peer.get(conn.peer, 1) - 1
        if left:
            self._per_peer[conn.peer] = left
        else:
            self._per_peer.pop(conn.peer, None)
        INGRESS_CONNECTIONS.set(self.open)

    def busy(self, conn: GuardedConnection) -> None:
        self._waiting.pop(conn, None)

    def idle(self, conn: GuardedConnection) -> None:
        if conn.transport in self._by_transport:
            self._waiting[conn] = None
            self._waiting.move_to_end(conn)

    def of(self, request: web.BaseRequest) -> GuardedConnection | None:
        transport = request.transport
        return None if transport is None else self._by_transport.get(transport)

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def track(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            conn = self.of(request)
            if conn is not None:
                conn.request_started()
            try:
                return await handler(request)
            finally:
                if conn is not None:
                    conn.request_finished()

        return track
