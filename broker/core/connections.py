"""Creating, reading, listing and deleting connections."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from broker.core.accounts_errors import domain_error
from broker.core.connection_cache import ConnectionCache
from broker.core.mint_budget import MintBudget, check_not_throttled
from broker.core.zoho_accounts import (
    AccountsClient,
    AccountsError,
    AccountsTokenResponse,
    AccountsUnavailable,
)
from broker.storage import audit
from broker.storage.connection_store import ConnectionStore
from broker.storage.records import AuditEntry, Connection, NewConnection, token_hash
from servicekit import page_tokens
from servicekit.deadline import Deadline
from servicekit.errors import (
    InvalidArgument,
    NotFound,
    ZohoUnavailable,
)
from servicekit.origins import OriginPolicy
from servicekit.validation import valid_user_id

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# Zoho answers in well under a second; this bounds a connect or revoke call.
ZOHO_CALL_BUDGET = 15.0


@dataclass(frozen=True)
class CreateRequest:
    user_id: str
    accounts_server: str
    api_domain: str
    scopes: Sequence[str]
    desk_org_id: str
    redirect_uri: str
    authorization_code: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)


class ConnectionService:
    def __init__(
        self,
        store: ConnectionStore,
        cache: ConnectionCache,
        budget: MintBudget,
        accounts: AccountsClient,
        policy: OriginPolicy,
        *,
        replica: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.cache = cache
        self.budget = budget
        self.accounts = accounts
        self.policy = policy
        self.replica = replica
        self.clock = clock
        self._import_locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def create(self, request: CreateRequest, deadline: Deadline) -> Connection:
        if not request.refresh_token:
            return await self._create(request, deadline)
        # One import of a refresh token at a time in this process, from the budget check
        # to the audit row of its mint: racing imports then see each other's mints.
        async with self._importing(token_hash(request.refresh_token)):
            return await self._create(request, deadline)

    async def _create(self, request: CreateRequest, caller: Deadline) -> Connection:
        accounts_server = self.policy.accounts_server(request.accounts_server)
        api_domain = (
            self.policy.api_domain(request.api_domain) if request.api_domain else ""
        )
        deadline = caller.capped(ZOHO_CALL_BUDGET)
        started = time.monotonic()
        try:
            if request.authorization_code:
                grant = await self.accounts.exchange_code(
                    accounts_server, request.authorization_code, request.redirect_uri, deadline
                )
                if not grant.refresh_token:
                    raise InvalidArgument([(
                        "authorization_code",
                        "Zoho issued no refresh token: the consent must ask access_type=offline "
                        "(and prompt=consent to get a new one)",
                    )])
                refresh_token = grant.refresh_token
            else:
                # An import is checked at once: a dead token fails here, not at first use.
                # That check mints a token, so it spends the same budget as a refresh.
                refresh_token = request.refresh_token
                await self._check_import_budget(request.user_id, refresh_token)
                grant = await self._import(request, accounts_server, deadline, started)
        except AccountsError as exc:
            raise domain_error(
                exc, request.user_id,
                refused="authorization code" if request.authorization_code else "refresh token",
            ) from None
        api_domain = self._api_domain(grant, fallback=api_domain)
        now = self.clock()
        record = await self.store.put(
            NewConnection(
                user_id=request.user_id,
                access_token=grant.access_token,
                refresh_token=refresh_token,
                token_expires_at=now + timedelta(seconds=grant.expires_in),
                api_domain=api_domain,
                accounts_server=accounts_server,
                # Zoho's answer, when it names the scopes, is the truth about the grant.
                scopes=grant.scopes or tuple(request.scopes),
                desk_org_id=request.desk_org_id,
            ),
            now,
            AuditEntry(
                user_id=request.user_id, reason="create", outcome="success",
                latency_ms=int((time.monotonic() - started) * 1000),
                refresh_token_hash=token_hash(refresh_token), replica=self.replica,
                access_token_hash=token_hash(grant.access_token),
            ),
        )
        self.cache.remember(record)
        return record

    @contextlib.asynccontextmanager
    async def _importing(self, refresh_hash: str) -> AsyncIterator[None]:
        """A lock per refresh token, dropped when its last holder leaves."""
        lock, users = self._import_locks.get(refresh_hash, (asyncio.Lock(), 0))
        self._import_locks[refresh_hash] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._import_locks[refresh_hash]
            if users == 1:
                del self._import_locks[refresh_hash]
            else:
                self._import_locks[refresh_hash] = (lock, users - 1)

    async def _check_import_budget(self, user_id: str, refresh_token: str) -> None:
        now, refresh_hash = self.clock(), token_hash(refresh_token)
        existing = await self.store.get(user_id, with_tokens=False)
        if existing is not None and existing.refresh_token_hash == refresh_hash:
            check_not_throttled(existing.throttled_until, now, what="refresh token")
        await self.budget.check(refresh_hash, now)

    async def _import(
        self, request: CreateRequest, accounts_server: str, deadline: Deadline, started: float
    ) -> AccountsTokenResponse:
        try:
            return await self.accounts.refresh(accounts_server, request.refresh_token, deadline)
        except AccountsUnavailable as exc:
            if exc.maybe_minted:
                # Zoho may have minted before the answer was lost: count it, as a refresh does.
                await audit.record(self.store, AuditEntry(
                    user_id=request.user_id, reason="create", outcome="unknown",
                    latency_ms=int((time.monotonic() - started) * 1000),
                    refresh_token_hash=token_hash(request.refresh_token),
                    replica=self.replica, detail="import: Zoho's answer was lost",
                ), self.clock())
            raise

    def _api_domain(self, grant: AccountsTokenResponse, *, fallback: str) -> str:
        if grant.api_domain:
            return self.policy.api_domain(grant.api_domain, "api_domain (in Zoho's answer)")
        if fallback:
            return fallback
        raise InvalidArgument([(
            "api_domain", "Zoho's answer named no api_domain; give it in the request",
        )])

    async def get(self, user_id: str) -> Connection:
        record = await self.store.get(user_id, with_tokens=False)
        if record is None:
            raise NotFound(f"no connection for user_id {user_id!r}", metadata={"user_id": user_id})
        return record

    async def list(self, page_size: int, page_token: str) -> tuple[list[Connection], str]:
        after = page_tokens.decode(page_token, valid_user_id)
        size = page_size or DEFAULT_PAGE_SIZE
        # One extra row tells whether another page exists, without a count query.
        rows = await self.store.list_after(after, size + 1)
        next_token = page_tokens.encode(rows[size - 1].user_id) if len(rows) > size else ""
        return rows[:size], next_token

    async def delete(self, user_id: str, revoke: bool, deadline: Deadline) -> bool:
        record = await self.store.get(user_id)
        if record is None:
            raise NotFound(f"no connection for user_id {user_id!r}", metadata={"user_id": user_id})
        revoked = False
        if revoke:
            # Revoke first: if Zoho is down, nothing is deleted and the caller retries,
            # rather than a live refresh token being forgotten while still valid.
            try:
                revoked = await self.accounts.revoke(
                    record.accounts_server, record.refresh_token, deadline.capped(ZOHO_CALL_BUDGET),
                )
            except AccountsUnavailable as exc:
                raise ZohoUnavailable(f"revoke failed, nothing deleted: {exc}",
                                      endpoint="revoke") from None
        await self.store.delete(user_id)
        self.cache.forget(user_id)
        return revoked
