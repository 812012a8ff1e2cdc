"""The sandbox's in-memory Zoho: clients, users, tokens, and the limits Zoho enforces on them.

Everything lives on one event loop and no method awaits, so no locks are needed: each request
sees and leaves a consistent model. Lookups are by dict so a benchmark's 500 concurrent
connections never pay for a scan.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from sandbox.clock import Clock
from sandbox.config import CONFIG_CHOICES, Config
from sandbox.counters import CallLog
from sandbox.credits import CreditBook
from sandbox.crm_store import CrmStore
from sandbox.deliver_to import DeliverTo
from sandbox.delivery import Deliverer
from sandbox.desk_store import DeskOrg
from sandbox.faults import FaultBook
from sandbox.jwt_keys import SigningKey
from sandbox.records import RecordStore

__all__ = ["CONFIG_CHOICES", "AccessToken", "Config", "SandboxState", "User"]

DeadReason = Literal["revoked", "evicted", "invalidated", "expired", "unknown"]


@dataclass
class Client:
    client_id: str
    client_secret: str


@dataclass
class User:
    user_id: str
    email: str
    crm: CrmStore
    desk_org_ids: list[str] = field(default_factory=list)
    crm_user_id: str = ""


@dataclass
class AccessToken:
    token: str
    refresh: RefreshToken | None
    user: User
    scopes: frozenset[str]
    api_origin: str | None
    issued_at: float
    expires_at: float
    folded_scopes: frozenset[str] = frozenset()  # lower-cased, for Zoho's scope comparison

    def __post_init__(self) -> None:
        self.folded_scopes = frozenset(s.lower() for s in self.scopes)


@dataclass
class RefreshToken:
    token: str
    client_id: str
    user: User
    scopes: tuple[str, ...]
    api_origin: str | None
    accounts_origin: str | None
    lifetimes: list[int]
    legacy: bool
    created_at: float
    revoked: bool = False
    minted_total: int = 0
    # Mint times inside the rolling window, oldest first; pruned on every mint attempt.
    window: deque[float] = field(default_factory=deque)
    # Live access tokens, oldest first: the 16th mint evicts the head.
    live: deque[AccessToken] = field(default_factory=deque)

    def next_lifetime(self, default: int) -> int:
        if not self.lifetimes:
            return default
        return self.lifetimes[min(self.minted_total, len(self.lifetimes) - 1)]


@dataclass
class GrantCode:
    code: str
    client_id: str
    user: User
    scopes: tuple[str, ...]
    redirect_uri: str | None
    expires_at: float
    api_origin: str | None
    accounts_origin: str | None
    lifetimes: list[int]
    legacy: bool
    used: bool = False


def new_token() -> str:
    """Zoho's token shape: `1000.` then two hex blocks."""
    return f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"


class SandboxState:
    def __init__(self) -> None:
        self.clock = Clock()
        self.config = Config()
        self.faults = FaultBook()
        self.calls = CallLog()
        self.credits = CreditBook()
        self.deliveries = Deliverer(
            DeliverTo(), lambda: self.config.delivery_concurrency, self.clock.now
        )
        # Desk signs its callbacks (X-ZDesk-JWT); one key per process, kept across resets.
        self.signing_key = SigningKey()
        # Zoho's records per org (see sandbox/records.py); emptied by clear().
        self.records = RecordStore()
        # The origin the server bound, set by the app once listening; api_domain and
        # resource_uri default to it.
        self.origin = "http://127.0.0.1:8780"
        self.clear()

    def clear(self) -> None:
        """Forget everything except the bound origin."""
        self.config = Config()
        self.clock.reset()
        self.faults.clear()
        self.calls.clear()
        self.credits.clear()
        self.deliveries.clear()
        self.clients: dict[str, Client] = {}
        self.users: dict[str, User] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.grant_codes: dict[str, GrantCode] = {}
        self.desk_orgs: dict[str, DeskOrg] = {}
        self.records.clear()
        # Why a token stopped working, so the control API can explain a 401.
        self.dead_tokens: dict[str, DeadReason] = {}
        self._crm_user_seq = 0
        self._desk_seq = 0

    def next_desk_id(self) -> str:
        """Desk ids are long digit strings, unique across orgs and webhooks."""
        self._desk_seq += 1
        return str(4000000000001 + self._desk_seq)

    # ---- seeding -------------------------------------------------------------------------

    def add_client(self, client_id: str, client_secret: str) -> Client:
        client = Client(client_id, client_secret)
        self.clients[client_id] = client
        return client

    def add_user(self, user_id: str, email: str | None = None) -> User:
        user = self.users.get(user_id)
        if user is None:
            self._crm_user_seq += 1
            user = User(
                user_id=user_id,
                email=email or f"{user_id}@sandbox.example",
                crm=CrmStore(),
                crm_user_id=str(5725767000000411001 + self._crm_user_seq),
            )
            self.users[user_id] = user
        elif email:
            user.email = email
        return user

    def add_refresh_token(
        self,
        *,
        user: str,
        client_id: str,
        scopes: list[str] | tuple[str, ...],
        token: str | None = None,
        api_origin: str | None = None,
        accounts_origin: str | None = None,
        lifetimes: list[int] | None = None,
        legacy: bool = False,
    ) -> RefreshToken:
        owner = self.add_user(user)
        rt = RefreshToken(
            token=token or new_token(),
            client_id=client_id,
            user=owner,
            scopes=tuple(scopes),
            api_origin=api_origin,
            accounts_origin=accounts_origin,
            lifetimes=list(lifetimes or []),
            legacy=legacy,
            created_at=self.clock.now(),
        )
        self._enforce_refresh_token_cap(owner, client_id)
        self.refresh_tokens[rt.token] = rt
        return rt

    def _enforce_refresh_token_cap(self, user: User, client_id: str) -> None:
        # Zoho keeps at most 20 refresh tokens per user per client; a new one deletes the
        # oldest with its access tokens. Refresh tokens are few, so this scan is cheap.
        mine = [
            rt
            for rt in self.refresh_tokens.values()
            if rt.user is user and rt.client_id == client_id and not rt.revoked
        ]
        while len(mine) >= self.config.max_refresh_tokens_per_user_client:
            oldest = mine.pop(0)
            self.revoke_refresh_token(oldest.token)

    def add_grant_code(
        self,
        *,
        user: str,
        client_id: str,
        scopes: list[str] | tuple[str, ...],
        redirect_uri: str | None = None,
        ttl_seconds: float | None = None,
        api_origin: str | None = None,
        accounts_origin: str | None = None,
        lifetimes: list[int] | None = None,
        legacy: bool = False,
    ) -> GrantCode:
        owner = self.add_user(user)
        ttl = self.config.default_grant_code_ttl_seconds if ttl_seconds is None else ttl_seconds
        code = GrantCode(
            code=new_token(),
            client_id=client_id,
            user=owner,
            scopes=tuple(scopes),
            redirect_uri=redirect_uri,
            expires_at=self.clock.now() + ttl,
            api_origin=api_origin,
            accounts_origin=accounts_origin,
            lifetimes=list(lifetimes or []),
            legacy=legacy,
        )
        self.grant_codes[code.code] = code
        return code

    # ---- minting -------------------------------------------------------------------------

    def window_count(self, rt: RefreshToken) -> int:
        """Mints of `rt` inside the rolling window ending now."""
        horizon = self.clock.now() - self.config.mint_window_seconds
        while rt.window and rt.window[0] <= horizon:
            rt.window.popleft()
        return len(rt.window)

    def mint(self, rt: RefreshToken) -> AccessToken | None:
        """A new access token for `rt`, or None when Zoho's throttle blocks it."""
        if self.window_count(rt) >= self.config.mint_limit:
            return None
        now = self.clock.now()
        lifetime = rt.next_lifetime(self.config.default_lifetime_seconds)
        access = AccessToken(
            token=new_token(),
            refresh=rt,
            user=rt.user,
            scopes=frozenset(rt.scopes),
            api_origin=rt.api_origin,
            issued_at=now,
            expires_at=now + lifetime,
        )
        rt.window.append(now)
        rt.minted_total += 1
        self._drop_expired(rt, now)
        while len(rt.live) >= self.config.max_live_access_tokens:
            self._kill(rt.live.popleft(), "evicted")
        rt.live.append(access)
        self.access_tokens[access.token] = access
        return access

    def _drop_expired(self, rt: RefreshToken, now: float) -> None:
        # At most 15 entries: expired ones no longer count as live.
        for access in [a for a in rt.live if a.expires_at <= now]:
            rt.live.remove(access)
            self._kill(access, "expired")

    def _kill(self, access: AccessToken, reason: DeadReason) -> None:
        self.access_tokens.pop(access.token, None)
        self.dead_tokens[access.token] = reason
        # Bound the explanation map; it only serves diagnostics.
        if len(self.dead_tokens) > 100_000:
            self.dead_tokens.pop(next(iter(self.dead_tokens)))

    def live_tokens(self, rt: RefreshToken) -> list[AccessToken]:
        self._drop_expired(rt, self.clock.now())
        return list(rt.live)

    # ---- revocation ----------------------------------------------------------------------

    def revoke_refresh_token(self, token: str) -> bool:
        rt = self.refresh_tokens.get(token)
        if rt is None:
            return False
        rt.revoked = True
        while rt.live:
            self._kill(rt.live.popleft(), "revoked")
        return True

    def invalidate_access_token(self, token: str) -> bool:
        access = self.access_tokens.get(token)
        if access is None:
            return False
        if access.refresh is not None and access in access.refresh.live:
            access.refresh.live.remove(access)
        self._kill(access, "invalidated")
        return True

    # ---- API authentication --------------------------------------------------------------

    def authenticate(self, token: str, request_origin: str) -> AccessToken | None:
        """The live access token behind `token`, or None (unknown, expired, revoked...)."""
        access = self.access_tokens.get(token)
        if access is None:
            return None
        if access.expires_at <= self.clock.now():
            return None
        if access.refresh is not None and access.refresh.revoked:
            return None
        # A token minted for another data centre's API domain fails there with INVALID_TOKEN.
        if access.api_origin is not None and access.api_origin != request_origin:
            return None
        return access
