"""Zoho's consent, seen from the operator's machine: the authorization URL and a one-shot
local callback that receives Zoho's redirect (docs/zoho.md section 1).

The redirect carries `code`, `location` and `accounts-server` (the data centre to exchange
the code at) and our `state` back. A redirect whose `state` is not the one this flow made is
refused and the flow keeps waiting: it did not come from the consent we started (a forged or
stale link), and exchanging its code would connect someone else's Zoho account.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass, field
from html import escape
from urllib.parse import urlencode, urlsplit

from aiohttp import web

DEFAULT_ACCOUNTS_SERVER = "https://accounts.zoho.com"
DEFAULT_SCOPES = ("ZohoCRM.notifications.ALL", "Desk.webhooks.ALL", "Desk.basic.READ")
# How long the browser's request waits for the exchange, to show its outcome on the page.
OUTCOME_WAIT_SECONDS = 60.0


class ConsentError(Exception):
    """The consent did not produce a code (the user refused, Zoho reported an error)."""


@dataclass(frozen=True)
class Redirect:
    code: str = field(repr=False)
    location: str
    accounts_server: str


def authorization_url(
    accounts_server: str, *, client_id: str, scopes: list[str], redirect_uri: str, state: str
) -> str:
    """`{accounts}/oauth/v2/auth?...` asking for offline access (a refresh token) and a fresh
    consent (Zoho issues a new refresh token only with prompt=consent)."""
    query = urlencode(
        {
            "scope": ",".join(scopes),
            "client_id": client_id,
            "response_type": "code",
            "access_type": "offline",
            "prompt": "consent",
            "redirect_uri": redirect_uri,
            "state": state,
        }
    )
    return f"{accounts_server.rstrip('/')}/oauth/v2/auth?{query}"


def _page(title: str, text: str, status: int = 200) -> web.Response:
    body = f"<!doctype html><title>{escape(title)}</title><h1>{escape(title)}</h1>" \
        f"<p>{escape(text)}</p>\n"
    return web.Response(status=status, text=body, content_type="text/html")


class CallbackServer:
    """Serves GET on the redirect URI's path until one good redirect has arrived."""

    def __init__(self, host: str, port: int, *, redirect_uri: str | None = None) -> None:
        self.host = host
        self.port = port
        self.state = secrets.token_urlsafe(24)
        self._fixed_redirect_uri = redirect_uri
        self.path = (urlsplit(redirect_uri).path or "/") if redirect_uri else "/callback"
        self._redirect: asyncio.Future[Redirect] | None = None
        self._outcome: asyncio.Future[tuple[bool, str]] | None = None
        self._runner: web.AppRunner | None = None
        self.refused = 0

    @property
    def redirect_uri(self) -> str:
        if self._fixed_redirect_uri:
            return self._fixed_redirect_uri
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    async def start(self) -> str:
        """Listens; returns the redirect URI (with the bound port when port was 0)."""
        loop = asyncio.get_running_loop()
        self._redirect = loop.create_future()
        self._outcome = loop.create_future()
        app = web.Application()
        app.router.add_get(self.path, self._callback)
        self._runner = web.AppRunner(app, access_log=None)  # the query carries the code
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.redirect_uri

    async def wait(self, timeout: float) -> Redirect:
        assert self._redirect is not None, "start() first"
        async with asyncio.timeout(timeout):
            return await asyncio.shield(self._redirect)

    def finish(self, ok: bool, message: str) -> None:
        """What the browser's page says once the code was exchanged (or not)."""
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result((ok, message))

    async def close(self) -> None:
        self.finish(False, "The command stopped before the connection was made.")
        if self._runner is not None:
            await self._runner.cleanup()

    async def _callback(self, request: web.Request) -> web.Response:
        assert self._redirect is not None and self._outcome is not None
        query = request.query
        if not hmac.compare_digest(query.get("state", ""), self.state):
            self.refused += 1
            return _page(
                "Refused",
                "This redirect's state does not match the consent this command started; "
                "it was ignored. Use the link the command printed.",
                status=400,
            )
        if self._redirect.done():
            return _page("Already done", "This consent was already received.", status=409)
        error = query.get("error")
        if error:
            self._redirect.set_exception(ConsentError(f"Zoho did not grant access: {error}"))
            return _page("Not connected", f"Zoho did not grant access ({error}).", status=400)
        code = query.get("code", "")
        accounts_server = query.get("accounts-server", "")
        if not code or not accounts_server:
            self._redirect.set_exception(
                ConsentError("Zoho's redirect had no code or no accounts-server")
            )
            return _page("Not connected", "Zoho's redirect had no code.", status=400)
        self._redirect.set_result(Redirect(code, query.get("location", ""), accounts_server))
        try:
            async with asyncio.timeout(OUTCOME_WAIT_SECONDS):
                ok, message = await asyncio.shield(self._outcome)
        except TimeoutError:
            ok, message = False, "The exchange is taking long: see the command's output."
        return _page("Connected" if ok else "Not connected", message, status=200 if ok else 502)
