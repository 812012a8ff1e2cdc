"""The ingress HTTP server (aiohttp): Zoho's callbacks in, events committed, then 200.

    POST /callbacks/crm/{subscription_id}            CRM channel notify_url
    GET|POST /callbacks/desk/{subscription_id}/{secret}   Desk webhook url (and its URL check)

Unverified (unknown subscription, wrong channel, token or path secret, bad JWT, or no
JWT from a webhook that has sent one before): 401, nothing stored, counted. 410 only for
a Desk webhook whose subscription was deleted (Desk then drops it). A subscription still
pending (its CreateSubscription has not finished, or crashed: the keeper resolves it)
is 409, nothing stored: its owner cannot list it, so nothing may reach its watchers
(Desk's URL check is still answered, or the create itself would fail). Bodies are
capped, slow senders cut off, bad JSON is 400; a verified delivery is answered 200 only
once its events are committed; any database fault on the way is 503 with Retry-After,
never a 500 (outages.py keeps the window and tells watchers)."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections import Counter
from typing import Any

from aiohttp import web

from notifier.events.writer import EventWriter
from notifier.ingress import desk_jwt
from notifier.ingress.callbacks import MalformedCallback, Subscriber, crm_events, desk_events
from notifier.ingress.directory import KnownSubscription, SubscriptionDirectory
from notifier.ingress.outages import REQUEST_FAULTS, RETRY_AFTER_SECONDS, Outages
from notifier.subscriptions.at_zoho import CRM_PATH, DESK_PATH, secret_matches
from servicekit import identifiers
from servicekit.config import ListenAddress
from servicekit.metrics import INGRESS_DELIVERIES

log = logging.getLogger(__name__)


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
        self._runner: web.AppRunner | None = None

    def _count(self, app: str, outcome: str) -> None:
        self.counts[(app, outcome)] += 1
        INGRESS_DELIVERIES.labels(app, outcome).inc()

    def _answer(self, app: str, outcome: str, status: int) -> web.Response:
        self._count(app, outcome)
        return web.json_response({"status": outcome}, status=status)

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
        app = web.Application(client_max_size=self._max_body, middlewares=[self._database_faults])
        app.router.add_post(CRM_PATH + "{subscription_id}", self._crm)
        app.router.add_route("GET", DESK_PATH + "{subscription_id}/{secret}", self._desk_check)
        app.router.add_post(DESK_PATH + "{subscription_id}/{secret}", self._desk)
        return app

    async def start(self, listen: ListenAddress) -> str:
        runner = web.AppRunner(self.application(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, listen.host, listen.port, reuse_port=False)
        await site.start()
        self._runner = runner
        port = listen.port
        for address in runner.addresses:
            port = address[1]
            break
        return f"{listen.host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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
        return known if known is not None and known.app_type == app else None

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
            body = json.loads(raw)
        except ValueError:
            return self._answer("crm", "malformed", 400)
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
            events = crm_events(Subscriber(known.id, known.user_id), body)
        except MalformedCallback:
            return self._answer("crm", "malformed", 400)
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
            body = json.loads(raw)
        except ValueError:
            return self._answer("desk", "malformed", 400)
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
            events = desk_events(Subscriber(verified.id, verified.user_id), body)
        except MalformedCallback:
            return self._answer("desk", "malformed", 400)
        return await self._commit("desk", events)
