"""One RPC's access token: fetched from the broker once, refreshed once per Zoho call
when Zoho rejects it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from notifier.broker_client import BrokerClient, BrokerToken
from notifier.zoho_http import TokenRejected
from servicekit.deadline import Deadline
from servicekit.errors import ZohoRejected

log = logging.getLogger(__name__)

T = TypeVar("T")


class TokenSession:
    def __init__(
        self,
        broker: BrokerClient,
        user_id: str,
        app_type: int,
        deadline: Deadline,
    ) -> None:
        self._broker = broker
        self.user_id = user_id
        self.app_type = app_type
        self.deadline = deadline
        self._grant: BrokerToken | None = None

    async def grant(self) -> BrokerToken:
        if self._grant is None:
            got = await self._broker.get_token(self.user_id, self.app_type, self.deadline)
            self._grant = got
        return self._grant

    async def run(self, call: Callable[[BrokerToken], Awaitable[T]]) -> T:
        """`call` with the current token; if Zoho rejects it, once more with a fresh one.

        A rejected call changed nothing at Zoho, so repeating it loses or repeats nothing.
        """
        grant = await self.grant()
        try:
            return await call(grant)
        except TokenRejected as rejected:
            log.info(
                "zoho rejected the access token (%s); asking the broker for a fresh one",
                rejected.zoho_code,
            )
            fresh = await self._broker.refresh_token(
                self.user_id, self.app_type, grant, self.deadline
            )
            self._grant = fresh
        try:
            return await call(self._grant)
        except TokenRejected as again:
            raise ZohoRejected(
                "Zoho rejected the access token again right after the broker refreshed it",
                zoho_code=again.zoho_code,
                http_status=again.http_status,
            ) from None
