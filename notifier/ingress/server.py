"""The ingress HTTP server (aiohttp): Zoho's callbacks in, events committed, then 200.

    POST /callbacks/crm/{subscription_id}            CRM channel notify_url
    GET|POST /callbacks/desk/{subscription_id}/{secret}   Desk webhook url (and its URL check)

Unverified (unknown subscription, wrong channel, token or path secret, bad JWT, or no
JWT from a webhook that has sent one before): 401, nothing stored, counted. 410 only for
a Desk webhook whose subscription was deleted (Desk then drops it). A subscription still
pending (its CreateSubscription has not finished, or crashed: the keeper resolves it)
is 409, nothing stored: its owner cannot list it, so nothing may reach its watchers
(Desk's URL check is still answered, or the create itself would fail). Bodies are
capped, slow senders cut off, bad or too deeply nested JSON is 400; a verified delivery
past what one may expand to is 413 naming the bound (callbacks.py), split in slices
between which the event loop runs; one is answered 200 only once its events are
committed; any database fault on the way is 503 with Retry-After, never a 500
(outages.py keeps the window and tells watchers). Connections are bounded in time and
number (connections.py); a request aiohttp's parser refuses is 400 and one counted
WARNING at most, never a traceback."""

from __future__ import annotations

import asyncio
import hmac
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from notifier import app_types
from notifier.events.log import NewEvent
from notifier.events.writer import EventWriter
from notifier.ingress import desk_jwt
from notifier.ingress.callbacks import (
    DeliveryTooLarge,
    MalformedCallback,
    Subscriber,
    crm_events,
    desk_events,
)
from notifier.ingress.connections import ConnectionGuard
from notifier.ingress.directory import KnownSubscription, SubscriptionDirectory
from notifier.ingress.limits import ConnectionLimits, DeliveryLimits
from notifier.ingress.outages import REQUEST_FAULTS, RETRY_AFTER_SECONDS, Outages
from notifier.subscriptions.at_zoho import CRM_PATH, DESK_PATH, secret_matches
from servicekit import bounded_json, identifiers
from servicekit.config import ListenAddress, listen_failed
from servicekit.log_rate import Occasional, limit_accept_failure_logs
from servicekit.metrics import INGRESS_DELIVERIES

log = logging.getLogger(__name__)

# Events built between two turns of the event loop, or this many stored bytes: a large
# delivery is split without holding up the other requests, streams and commits.
SLICE_EVENTS = 32
SLICE_BYTES = 256 * 1024
# A flood of refused requests is one WARNING line per this many seconds.
WARNING_INTERVAL_SECONDS = 10.0


class _ServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger. aiohttp logs a request its parser refused (CL with TE,
    too many or too long headers, a bad method) at ERROR with a traceback, for anyone who
    can open a socket: here that is counted and one occasional WARNING line. Anything
    else it reports (a handler's exception: our fault) stays an ERROR with its traceback."""

    def __init__(self, on_refused: Any) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self._on_refused = on_refused

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kw: Any) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(error, HttpProcessingError):
            self._on_refused(error)
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kw)



class Ingress:
    def __init__(
        self,
        directory: SubscriptionDirectory,
        writer: EventWriter,
        desk_keys: desk_jwt.DeskKeys,
        *,
        max_body_bytes: int,
        read_timeout_seconds: float,
        jwks_url_override: str = "",
        outages: Outages | None = None,
        connections: ConnectionLimits | None = None,
        deliveries: DeliveryLimits | None = None,
    ) -> None:
        self._directory = directory
        self._writer = writer
        self._keys = desk_keys
        self._max_body = max_body_bytes
        self._read_timeout = read_timeout_seconds
        self._jwks_override = jwks_url_override
        self._outages = outages
        # (app, outcome) -> deliveries: also exported as a Prometheus counter.
        self.counts: Counter[tuple[str, str]] = Counter()
        self.guard = ConnectionGuard(connections or ConnectionLimits())
        self._deliveries = deliveries or DeliveryLimits()
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        # Apart, so that a flood of one kind cannot hide the other.
        self._malformed_log = Occasional(log, WARNING_INTERVAL_SECONDS)
        self._too_large_log = Occasional(log, WARNING_INTERVAL_SECONDS)

    def _count(self, app: str, outcome: str) -> None:
        self.counts[(app, outcome)] += 1
        INGRESS_DELIVERIES.labels(app, outcome).inc()

    def _answer(self, app: str, outcome: str, status: int, error: str = "") -> web.Response:
        self._count(app, outcome)
        body = {"status": outcome, **({"error": error} if error else {})}
        return web.json_response(body, status=status)

    def _malformed_http(self, error: HttpProcessingError) -> None:
        self._count("http", "malformed")
        self._malformed_log.warning(
            "refused a malformed HTTP request (%s)", type(error).__name__
        )

    def _too_large(self, app: str, subscription_id: str, why: DeliveryTooLarge) -> web.Response:
        # Verified, so Zoho's (or a holder of the channel token's): worth a line each time
        # it reaches us, but never more than one a few seconds.
        self._too_large_log.warning(
            "refused a %s delivery for %s: %s", app, subscription_id, why
        )
        return self._answer(app, "too_large", 413, str(why))

    def _unavailable(self, app: str, outcome: str) -> web.Response:
        """Refused for a database fault: the sender may try again; the window is kept."""
        if self._outages is not None:
            self._outages.refused()
        self._count(app, outcome)
        return web.json_response(
            {"status": outcome}, status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )

    @web.middleware
    async def _database_faults(
        self, request: web.Request, handler: Any
    ) -> web.StreamResponse:
        # Any database fault under any route (lookups, flags, commits): 503, one
        # counted outcome, no traceback; aiohttp would answer 500 and log each one.
        try:
            response: web.StreamResponse = await handler(request)
        except REQUEST_FAULTS:
            return self._unavailable(
                "crm" if request.path.startswith(CRM_PATH) else "desk", "db_unavailable"
            )
        return response

    def application(self) -> web.Application:
        app = web.Application(
            client_max_size=self._max_body,
            middlewares=[self.guard.middleware(), self._database_faults],
        )
        app.router.add_post(CRM_PATH + "{subscription_id}", self._crm)
        app.router.add_route("GET", DESK_PATH + "{subscription_id}/{secret}", self._desk_check)
        app.router.add_post(DESK_PATH + "{subscription_id}/{secret}", self._desk)
        return app

    async def start(self, listen: ListenAddress) -> str:
        limits = self.guard.limits
        runner = web.AppRunner(
            self.application(), access_log=None, handle_signals=False,
            keepalive_timeout=limits.idle_timeout_seconds, logger=_ServerLog(self._malformed_http),
        )
        await runner.setup()
        loop = asyncio.get_running_loop()
        limit_accept_failure_logs(loop)
        # Instead of aiohttp's TCPSite: the same server, each connection behind the guard.
        assert runner.server is not None
        try:
            self._server = await loop.create_server(
                self.guard.protocol_factory(runner.server), listen.host, listen.port,
                reuse_address=True, reuse_port=False, backlog=128,
            )
        except OSError as failed:
            await runner.cleanup()
            raise listen_failed(listen, failed) from None
        self._runner = runner
        port = self._server.sockets[0].getsockname()[1]
        return f"{listen.host}:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _built(self, events: Iterator[NewEvent]) -> list[NewEvent]:
        """The events of one delivery, the event loop let run between slices of them."""
        built: list[NewEvent] = []
        size = 0
        for event in events:
            built.append(event)
            size += event.event.ByteSize()
            if len(built) % SLICE_EVENTS == 0 or size >= SLICE_BYTES:
                size = 0
                await asyncio.sleep(0)
        return built

    def _json(self, raw: bytes) -> Any:
        return bounded_json.loads(raw, max_bytes=self._max_body)

    async def _body(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > self._max_body:
            raise web.HTTPRequestEntityTooLarge(
                max_size=self._max_body, actual_size=request.content_length
            )
        # A sender that trickles its body must not hold a connection for long.
        async with asyncio.timeout(self._read_timeout):
            return await request.read()

    async def _lookup(self, subscription_id: str, app: str) -> KnownSubscription | None:
        if not identifiers.is_subscription_id(subscription_id):
            return None
        known = await self._directory.lookup(subscription_id)
        return known if known is not None and app_types.name(known.app_type) == app else None

    async def _commit(self, app: str, events: list[Any]) -> web.Response:
        try:
            await self._writer.append(events)
        except Exception:
            # Not stored, so not acknowledged: the sender learns the delivery failed.
            return self._unavailable(app, "not_stored")
        return self._answer(app, "stored", 200)

    async def _crm(self, request: web.Request) -> web.StreamResponse:
        try:
            raw = await self._body(request)
        except TimeoutError:
            return self._answer("crm", "too_slow", 408)
        try:
            body = self._json(raw)
        except bounded_json.JsonRefused as why:
            return self._answer("crm", "malformed", 400, str(why))
        if not isinstance(body, dict):
            return self._answer("crm", "malformed", 400)
        known = await self._lookup(request.match_info["subscription_id"], "crm")
        channel = body.get("channel_id")
        channel_text = str(channel) if isinstance(channel, str | int) else ""
        # Both compared in constant time, whatever the first comparison said.
        same_channel = known is not None and hmac.compare_digest(
            channel_text.encode(), known.zoho_id.encode()
        )
        same_token = known is not None and secret_matches(body.get("token"), known.secret_digest)
        if known is None or known.deleted or not (same_channel and same_token):
            return self._answer("crm", "unverified", 401)
        if known.pending:
            return self._answer("crm", "pending", 409)
        try:
            events = await self._built(
                crm_events(Subscriber(known.id, known.user_id), body, self._deliveries)
            )
        except DeliveryTooLarge as why:
            return self._too_large("crm", known.id, why)
        except MalformedCallback as why:
            return self._answer("crm", "malformed", 400, str(why))
        return await self._commit("crm", events)

    async def _verify_desk(self, request: web.Request) -> KnownSubscription | web.Response:
        known = await self._lookup(request.match_info["subscription_id"], "desk")
        if known is None or not secret_matches(request.match_info["secret"], known.secret_digest):
            return self._answer("desk", "unverified", 401)
        if known.deleted:
            return self._answer("desk", "deleted", 410)
        return known

    async def _desk_check(self, request: web.Request) -> web.StreamResponse:
        verified = await self._verify_desk(request)
        if isinstance(verified, web.Response):
            return verified
        return self._answer("desk", "url_check", 200)

    async def _desk(self, request: web.Request) -> web.StreamResponse:
        verified = await self._verify_desk(request)
        if isinstance(verified, web.Response):
            return verified
        token = request.headers.get("X-ZDesk-JWT")
        if token:
            jwks = self._jwks_override or verified.jwks_url
            try:
                await desk_jwt.verify(
                    token,
                    self._keys,
                    jwks,
                    org_id=verified.desk_org_id,
                    webhook_id=verified.zoho_id,
                )
            except desk_jwt.JwtRejected as why:
                log.info("a Desk delivery's JWT was rejected: %s", why)
                return self._answer("desk", "unverified", 401)
            if not verified.desk_jwt_required:
                # This Desk host signs: from now on every delivery must be signed.
                await self._directory.require_desk_jwt(verified.id)
        try:
            raw = await self._body(request)
        except TimeoutError:
            return self._answer("desk", "too_slow", 408)
        if not raw.strip():
            # Desk's URL check POSTs when its GET was not answered 200.
            return self._answer("desk", "url_check", 200)
        try:
            body = self._json(raw)
        except bounded_json.JsonRefused as why:
            return self._answer("desk", "malformed", 400, str(why))
        if isinstance(body, dict):
            body = [body] if "eventType" in body else []
        if not isinstance(body, list):
            return self._answer("desk", "malformed", 400)
        if not body:
            return self._answer("desk", "url_check", 200)
        # Events, not a URL check (a repair's re-check may come unsigned).
        if not token and verified.desk_jwt_required:
            return self._answer("desk", "unverified", 401)
        if verified.pending:
            return self._answer("desk", "pending", 409)
        try:
            events = await self._built(
                desk_events(Subscriber(verified.id, verified.user_id), body, self._deliveries)
            )
        except DeliveryTooLarge as why:
            return self._too_large("desk", verified.id, why)
        except MalformedCallback as why:
            return self._answer("desk", "malformed", 400, str(why))
        return await self._commit("desk", events)
