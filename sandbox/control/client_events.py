"""The control client's calls for record changes and callback deliveries (a mixin of
`SandboxControl`; see sandbox/README.md, "Callbacks")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.control.calls import ControlCalls


@dataclass(frozen=True)
class DeliveryRecord:
    """One POST the sandbox made (or would have: status "blocked")."""

    seq: int
    app: str  # "crm" or "desk"
    subscription: str  # channel id or webhook id
    url: str
    status: int | str  # receiver's status, or "timeout", "error", "blocked", "dropped"
    latency_ms: float
    attempt: int
    note: str  # "", "duplicate", "wrong_url"
    body: str  # the JSON sent

    @property
    def ok(self) -> bool:
        """Delivered: Desk counts only 200, CRM any 2xx."""
        if not isinstance(self.status, int):
            return False
        return self.status == 200 if self.app == "desk" else 200 <= self.status < 300


_UNSET: Any = object()


class EventsControl(ControlCalls):
    async def change_records(
        self,
        app: str,
        module: str,
        operation: str,
        records: list[str | dict[str, Any]],
        *,
        fields: list[str] | None = None,
        user: str | None = None,
        org_id: str | None = None,
        event: str | None = None,
        related: list[dict[str, Any]] | None = None,
        source_id: str | None = None,
        permanent: bool | None = None,
        at: float | None = None,
        wait: bool = True,
        timeout: float = 30.0,
    ) -> list[DeliveryRecord]:
        """Records of `module` changed (`operation` insert/update/delete): the sandbox POSTs
        to every matching live CRM channel (app "crm"; `user`, default demo) or enabled Desk
        webhook (app "desk"; `org_id`, default the demo org; `module` an entity such as
        "Ticket", or `event` such as "Ticket_Thread_Add"). A record is an id or
        `{"id", "values": {...}, "prev": {...}}`. `related`: `[{"module", "ids"}]` for CRM's
        related-record callbacks. The records change first (an insert may give no id: the
        sandbox picks one); a delete goes to the recycle bin/trash, or for good with
        `permanent`; `at`: the change's sandbox time (default now). With `wait`, returns the
        deliveries once all are done."""
        body = {
            "app": app,
            "module": module,
            "operation": operation,
            "records": records,
            "fields": fields,
            "user": user,
            "org_id": org_id,
            "event": event,
            "related": related,
            "source_id": source_id,
            "permanent": permanent,
            "at": at,
            "wait": wait,
            "timeout": timeout,
        }
        data = await self._call(
            "POST", "changes", {k: v for k, v in body.items() if v is not None}, timeout=timeout + 5
        )
        return [DeliveryRecord(**d) for d in data["deliveries"]]

    async def deliveries(
        self, app: str | None = None, subscription: str | None = None
    ) -> list[DeliveryRecord]:
        """Every delivery attempt so far (oldest first), optionally of one app/subscription."""
        params = {k: v for k, v in (("app", app), ("subscription", subscription)) if v}
        data = await self._call("GET", "deliveries", params=params)
        return [DeliveryRecord(**d) for d in data["deliveries"]]

    async def delivery_stats(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(app, subscription) -> attempts, delivered, failed, statuses {"200": n, ...},
        latency_ms {count, p50, p99, max}."""
        data = await self._call("GET", "deliveries")
        return {(s["app"], s["subscription"]): s for s in data["stats"]}

    async def delivery_fault(
        self,
        kind: str,
        *,
        count: int | None = 1,
        app: str | None = None,
        subscription: str | None = None,
        delay_ms: int = 0,
        url: str | None = None,
        retries: int = 0,
        backoff_ms: int = 0,
        probability: float | None = None,
        seed: int | None = None,
        start: float | None = None,
        end: float | None = None,
        seconds: float | None = None,
    ) -> dict[str, Any]:
        """A fault on the next `count` deliveries (None: until cleared): duplicate, reorder,
        delay (delay_ms), wrong_url (url), retry (retries, backoff_ms), drop (nothing sent).
        `drop` also takes `probability` with `seed`, or a window of sandbox time (`start`,
        `end`, or `seconds` from now); those last until cleared unless `count` (drops) is
        given other than 1."""
        body: dict[str, Any] = {
            "kind": kind,
            "count": count,
            "app": app,
            "subscription": subscription,
            "delay_ms": delay_ms,
            "url": url,
            "retries": retries,
            "backoff_ms": backoff_ms,
            "probability": probability,
            "seed": seed,
            "start": start,
            "end": end,
            "seconds": seconds,
        }
        windowed = probability is not None or start is not None or seconds is not None
        if windowed and count == 1:
            del body["count"]
        result: dict[str, Any] = await self._call("POST", "deliveries/faults", body)
        return result

    async def clear_deliveries(self) -> None:
        """Forget the delivery log, counters and delivery faults."""
        await self._call("POST", "deliveries/clear", {})

    async def wait_for_deliveries(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued or in flight; False if `timeout` passed first."""
        data = await self._call(
            "POST", "deliveries/wait", {"timeout": timeout}, timeout=timeout + 5
        )
        return bool(data["idle"])
