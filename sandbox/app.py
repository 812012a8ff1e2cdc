"""The aiohttp application: Zoho's routes, the control routes, and an in-process runner."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from aiohttp import web

from sandbox import accounts, consent, crm, crm_coql, demo, desk, desk_records
from sandbox.control import CONTROL_NETWORKS_KEY, Network, add_control_routes, control_guard
from sandbox.deliver_to import LOOPBACK, DeliverTo
from sandbox.demo import DemoSizes
from sandbox.http import DEMO_SIZES_KEY, STATE_KEY
from sandbox.middleware import zoho_middleware
from sandbox.records import crm_org_key
from sandbox.state import SandboxState


def create_app(
    state: SandboxState | None = None,
    sizes: DemoSizes | None = None,
    control_networks: Sequence[Network] = (),
) -> web.Application:
    """The app, without any tenant: `seed` after the origin is known."""
    # control_guard first: control calls must never be recorded or faulted.
    app = web.Application(middlewares=[control_guard, zoho_middleware])
    app[STATE_KEY] = state or SandboxState()
    app[DEMO_SIZES_KEY] = sizes or DemoSizes()
    app[CONTROL_NETWORKS_KEY] = tuple(control_networks)

    async def close_deliveries(app: web.Application) -> None:
        await app[STATE_KEY].deliveries.close()

    app.on_cleanup.append(close_deliveries)
    # COQL reads the same records Get Records answers with (merged here for issue 25's
    # end-to-end tests; sandbox-records and sandbox-coql each left this unwired).
    app[crm_coql.RECORDS_SOURCE] = lambda access, module: app[STATE_KEY].records.crm_records(
        crm_org_key(access.user), module
    )

    token = app.router.add_resource("/oauth/v2/token", name="token")
    token.add_route("POST", accounts.token)
    revoke = app.router.add_resource("/oauth/v2/token/revoke", name="revoke")
    revoke.add_route("POST", accounts.revoke)
    consent.add_routes(app)
    crm_coql.add_routes(app)  # before crm's /crm/{tail} catch-all
    crm.add_routes(app)
    # Before desk's own routes: those end with a catch-all.
    desk_records.add_routes(app)
    desk.add_routes(app)
    add_control_routes(app)
    return app


def seed(app: web.Application, *, with_demo: bool) -> None:
    state = app[STATE_KEY]
    state.clear()
    if with_demo:
        sizes = app[DEMO_SIZES_KEY]
        demo.seed_demo(
            state,
            crm_items=sizes.crm_items,
            desk_webhooks=sizes.desk_webhooks,
            records=sizes.records,
        )


def format_origin(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@asynccontextmanager
async def run_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    with_demo: bool = True,
    sizes: DemoSizes | None = None,
    control_networks: Sequence[Network] = (),
    deliver_to: str = LOOPBACK,
    trickle_per_second: float = 0.0,
) -> AsyncIterator[str]:
    """Serve the sandbox on this event loop; yields its origin (`http://127.0.0.1:40123`).

    Port 0 binds a free port. `deliver_to`: networks and host names callbacks may go to.
    `trickle_per_second`: made-up changes a second for the demo (0: none).
    """
    app = create_app(sizes=sizes, control_networks=control_networks)
    app[STATE_KEY].deliveries.deliver_to = DeliverTo(deliver_to)
    # No access log: a line per request would cost the benchmark and would print query
    # strings, which carry tokens on Zoho's token endpoint.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=2048, reuse_address=True)
        await site.start()
        bound_port = runner.addresses[0][1]
        origin = format_origin(host, bound_port)
        app[STATE_KEY].origin = origin
        seed(app, with_demo=with_demo)
        trickling = None
        if trickle_per_second > 0:
            from sandbox.trickle import trickle

            trickling = asyncio.create_task(trickle(app[STATE_KEY], trickle_per_second))
        try:
            yield origin
        finally:
            if trickling is not None:
                trickling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await trickling
    finally:
        await runner.cleanup()
