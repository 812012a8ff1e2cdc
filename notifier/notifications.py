"""The notifier's domain core: lists and writes of notification subscriptions, routed
to CRM or Desk by app_type. Knows nothing of gRPC contexts; the servicer translates."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

from cachetools import TTLCache

from notifier import crm, desk
from notifier.broker_client import BrokerClient, BrokerToken
from notifier.crm import CrmClient
from notifier.desk import DeskClient
from notifier.paging import Page, prefetching
from notifier.queries import ListQuery
from notifier.tokens import TokenSession
from servicekit import identifiers
from servicekit.deadline import Deadline
from servicekit.errors import (
    DeskOrgUnresolved,
    NotFound,
    ServiceError,
    ZohoBadResponse,
    ZohoRejected,
)
from servicekit.origins import OriginPolicy
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2

CRM = common_pb2.APP_TYPE_CRM
T = TypeVar("T")
DESK = common_pb2.APP_TYPE_DESK
# Resolved Desk orgs kept: one per user and Desk host.
MAX_DESK_ORGS = 50_000


@dataclass(frozen=True)
class DeskOrg:
    """Where one RPC's Desk calls go: the host, the org, and the grant it was found for."""

    origin: str
    org_id: str
    grant_id: str


class DeskOrgCache:
    """(user, Desk host, grant) -> resolved Desk org id, for `ttl` seconds: saves a call
    per request, and notices within the TTL when the user's default org changes. The
    broker's grant_id is in the key because a reconnect may be another Zoho account,
    whose token the old account's org refuses (OAUTH_ORG_MISMATCH)."""

    def __init__(self, ttl: float, *, max_entries: int = MAX_DESK_ORGS) -> None:
        # One entry per user and host, holding the grant it was found for: the previous
        # grant's org goes at once. Past the cap, the least recently used goes first.
        self._entries: TTLCache[tuple[str, str], tuple[str, str]] | None = (
            TTLCache(maxsize=max_entries, ttl=ttl) if ttl > 0 else None
        )

    def get(self, user_id: str, origin: str, grant_id: str) -> str | None:
        entry = self._entries.get((user_id, origin)) if self._entries is not None else None
        return entry[1] if entry is not None and entry[0] == grant_id else None

    def put(self, user_id: str, origin: str, grant_id: str, org_id: str) -> None:
        if self._entries is not None:
            self._entries[(user_id, origin)] = (grant_id, org_id)

    def drop(self, user_id: str, origin: str, grant_id: str) -> None:
        if self.get(user_id, origin, grant_id) is not None:
            assert self._entries is not None
            self._entries.pop((user_id, origin), None)


class Notifications:
    def __init__(
        self,
        broker: BrokerClient,
        crm_client: CrmClient,
        desk_client: DeskClient,
        policy: OriginPolicy,
        org_cache: DeskOrgCache,
    ) -> None:
        self._broker = broker
        self._crm = crm_client
        self._desk = desk_client
        self._policy = policy
        self._orgs = org_cache

    def session(
        self, user_id: str, app_type: int, deadline: Deadline
    ) -> TokenSession:
        return TokenSession(self._broker, user_id, app_type, deadline)

    # ---- listing -------------------------------------------------------------------------

    async def stream_pages(
        self, query: ListQuery, deadline: Deadline, *, whole_pages: bool = False
    ) -> AsyncGenerator[Sequence[notifier_pb2.Notification], None]:
        """Every item, in Zoho's order, a page at a time as each page arrives.
        `whole_pages`: the caller sends each page as one message (see `prefetching`)."""
        session = self.session(query.user_id, query.app_type, deadline)
        if query.app_type == CRM:
            # The token first: a broker error (NOT_CONNECTED, ...) comes before any Zoho call.
            await session.grant()
            pages = self._crm_pages(session, query, whole_pages)
        else:
            pages = await self._desk_pages(session, query, whole_pages)
        async with aclosing(pages) as fetched:
            async for page in fetched:
                yield page

    def _crm_pages(
        self, session: TokenSession, query: ListQuery, whole_pages: bool
    ) -> AsyncGenerator[Sequence[notifier_pb2.Notification], None]:
        per_page = query.page_size or crm.MAX_PAGE_SIZE

        async def fetch(page: int) -> Page[notifier_pb2.Notification, int]:
            return await session.run(
                lambda grant: self._crm.list_page(
                    grant,
                    page=page,
                    per_page=per_page,
                    module=query.module,
                    channel_id=query.channel_id,
                    deadline=session.deadline,
                )
            )

        return prefetching(1, fetch, next_request_first=whole_pages)

    async def _desk_pages(
        self, session: TokenSession, query: ListQuery, whole_pages: bool
    ) -> AsyncGenerator[Sequence[notifier_pb2.Notification], None]:
        limit = query.page_size or desk.MAX_PAGE_SIZE
        org = await self._desk_org(session)

        async def fetch(start: int) -> Page[notifier_pb2.Notification, int]:
            return await self._desk_call(
                session,
                org,
                lambda grant: self._desk.list_page(
                    grant, org.origin, org.org_id, start=start, limit=limit,
                    deadline=session.deadline,
                ),
            )

        return prefetching(0, fetch, next_request_first=whole_pages)

    # ---- Desk organisation ---------------------------------------------------------------

    async def _desk_org(self, session: TokenSession) -> DeskOrg:
        """The RPC's one token (a broker error comes before any Zoho call), its Desk host
        and org. The host comes from the API domain the broker checked when it stored it."""
        grant = await session.grant()
        origin = self._policy.desk_origin(grant.api_domain)
        if grant.desk_org_id:
            stored = identifiers.desk_org_id(grant.desk_org_id)
            if stored is None:
                raise ZohoBadResponse("the connection's desk_org_id is not a Desk org id")
            return DeskOrg(origin, stored, grant.grant_id)
        cached = self._orgs.get(session.user_id, origin, grant.grant_id)
        if cached is not None:
            return DeskOrg(origin, cached, grant.grant_id)
        orgs = await session.run(
            lambda g: self._desk.organizations(g, origin, deadline=session.deadline)
        )
        org_id = _pick_org(orgs)
        self._orgs.put(session.user_id, origin, grant.grant_id, org_id)
        return DeskOrg(origin, org_id, grant.grant_id)

    async def _desk_call(
        self, session: TokenSession, org: DeskOrg, call: Callable[[BrokerToken], Awaitable[T]]
    ) -> T:
        """`call(grant)`, with the token refreshed once if Desk rejects it."""
        try:
            return await session.run(call)
        except ZohoRejected as refused:
            if refused.zoho_code == "OAUTH_ORG_MISMATCH":
                # The cached org is no longer the user's: look it up again next time.
                self._orgs.drop(session.user_id, org.origin, org.grant_id)
            raise

    # ---- CRM writes ----------------------------------------------------------------------

    async def crm_write(
        self,
        user_id: str,
        method: str,
        items: Sequence[dict[str, Any]],
        *,
        scope: str,
        deadline: Deadline,
    ) -> list[notifier_pb2.WriteResult]:
        session = self.session(user_id, CRM, deadline)
        return await session.run(
            lambda g: self._crm.write(g, method, items, scope=scope, deadline=deadline)
        )

    async def crm_disable_channels(
        self, user_id: str, channel_ids: Sequence[str], deadline: Deadline
    ) -> list[notifier_pb2.WriteResult]:
        session = self.session(user_id, CRM, deadline)
        return await session.run(
            lambda g: self._crm.disable_channels(g, channel_ids, deadline=deadline)
        )

    # ---- Desk writes ---------------------------------------------------------------------

    async def desk_create(
        self, user_id: str, body: dict[str, Any], deadline: Deadline
    ) -> notifier_pb2.DeskWebhook:
        webhook, _, _ = await self.desk_create_in_org(user_id, body, deadline)
        return webhook

    async def desk_create_in_org(
        self, user_id: str, body: dict[str, Any], deadline: Deadline
    ) -> tuple[notifier_pb2.DeskWebhook, str, str]:
        """The webhook, the org it was created in and the Desk origin (a subscription
        checks the webhook's JWT against both)."""
        session = self.session(user_id, DESK, deadline)
        org = await self._desk_org(session)
        result = await self._desk_call(
            session,
            org,
            lambda g: self._desk.create(g, org.origin, org.org_id, body, deadline=deadline),
        )
        return result, org.org_id, org.origin

    async def desk_org_of(self, user_id: str, deadline: Deadline) -> tuple[str, str]:
        """The org the user's webhooks are made in, and its Desk origin (as
        desk_create_in_org reports them)."""
        org = await self._desk_org(self.session(user_id, DESK, deadline))
        return org.org_id, org.origin

    async def desk_update(
        self, user_id: str, webhook_id: str, body: dict[str, Any], deadline: Deadline
    ) -> notifier_pb2.DeskWebhook:
        session = self.session(user_id, DESK, deadline)
        org = await self._desk_org(session)
        try:
            result = await self._desk_call(
                session,
                org,
                lambda g: self._desk.update(
                    g, org.origin, org.org_id, webhook_id, body, deadline=deadline
                ),
            )
        except ZohoRejected as refused:
            raise _not_found_or(refused, webhook_id) from None
        return result

    async def desk_delete(self, user_id: str, webhook_id: str, deadline: Deadline) -> None:
        session = self.session(user_id, DESK, deadline)
        org = await self._desk_org(session)
        try:
            await self._desk_call(
                session,
                org,
                lambda g: self._desk.delete(
                    g, org.origin, org.org_id, webhook_id, deadline=deadline
                ),
            )
        except ZohoRejected as refused:
            raise _not_found_or(refused, webhook_id) from None


def _not_found_or(refused: ZohoRejected, webhook_id: str) -> ServiceError:
    if refused.http_status == 404:
        return NotFound(f"Desk webhook {webhook_id} not found", metadata={"webhook_id": webhook_id})
    return refused


def _pick_org(orgs: list[dict[str, Any]]) -> str:
    """The default org, or the only one."""
    # Desk's examples also give the flag as a string ("true").
    defaults = [org for org in orgs if org.get("isDefault") in (True, "true")]
    if len(defaults) == 1:
        chosen = defaults[0]
    elif len(orgs) == 1:
        chosen = orgs[0]
    else:
        raise DeskOrgUnresolved(len(orgs))
    org_id = identifiers.desk_org_id(chosen.get("id"))
    if org_id is None:
        raise ZohoBadResponse(
            "an organisation's id is not a Desk org id", endpoint="desk.organizations"
        )
    return org_id
