"""`--trickle RATE`: a steady stream of made-up changes for the demo, so a running stack
shows live events: RATE changes a second, alternating between the demo user's CRM modules
and the demo Desk org's tickets, delivered like any other change."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random

from sandbox.control.args import ControlError
from sandbox.control.events import make_deliveries
from sandbox.demo import tenant as demo
from sandbox.records.store import RecordError
from sandbox.state import SandboxState

log = logging.getLogger("sandbox.trickle")
OPERATIONS = ("insert", "update", "update", "update", "delete")


def _change(n: int, rng: random.Random) -> dict[str, object]:
    operation = rng.choice(OPERATIONS)
    record_id = str(5725767000004000000 + rng.randrange(1000))
    if n % 2 == 0:
        module = rng.choice(demo.DEMO_MODULES)
        values = {"Last_Name": f"Trickle {n}", "Email": f"t{n}@example.com"}
        record = {"id": record_id, "values": values}
        return {"app": "crm", "module": module, "operation": operation, "records": [record]}
    ticket = {
        "id": record_id,
        "values": {"subject": f"Trickle ticket {n}", "status": rng.choice(["Open", "Closed"])},
        "prev": {"subject": f"Trickle ticket {n}", "status": "Open"},
    }
    return {"app": "desk", "module": "Ticket", "operation": operation, "records": [ticket]}


async def trickle(state: SandboxState, rate: float) -> None:
    rng = random.Random(7)
    for n in itertools.count():
        await asyncio.sleep(1 / rate)
        try:
            for delivery in make_deliveries(state, _change(n, rng)):
                state.deliveries.submit(delivery)
        except (ControlError, RecordError) as exc:  # the demo tenant was reset away
            log.debug("trickle change skipped: %s", exc)
