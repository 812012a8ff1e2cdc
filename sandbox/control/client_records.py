"""The control client's calls for Zoho's records and API credits (a mixin of
`SandboxControl`; see sandbox/README.md, "Records" and "API credits")."""

from __future__ import annotations

from typing import Any

from sandbox.control.calls import ControlCalls


class RecordsControl(ControlCalls):
    async def bulk_changes(
        self,
        app: str,
        module: str,
        *,
        changes: list[dict[str, Any]] | None = None,
        generate: dict[str, Any] | None = None,
        user: str | None = None,
        org_id: str | None = None,
        callbacks: bool = True,
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        """Many changes at once: `changes` as `change_records` bodies (`operation`,
        `records`, `at`, `permanent`, `fields`), and/or `generate={"count", "operation"
        (insert/update/delete/mix), "start", "end", "seed"}`. Callbacks are queued, not
        awaited. Returns `{"applied", "queued", "elapsed_ms"}`."""
        body = {
            "app": app,
            "module": module,
            "changes": changes,
            "generate": generate,
            "user": user,
            "org_id": org_id,
            "callbacks": callbacks,
        }
        result: dict[str, Any] = await self._call(
            "POST",
            "changes/bulk",
            {k: v for k, v in body.items() if v is not None},
            timeout=timeout,
        )
        return result

    async def records(
        self,
        app: str,
        module: str,
        *,
        user: str | None = None,
        org_id: str | None = None,
        full: bool = False,
    ) -> dict[str, Any]:
        """`{"live", "deleted"}` counts of a module; with `full`, also `records` (as the
        read APIs show them) and `deleted_records`."""
        params = {"app": app, "module": module, "user": user, "org_id": org_id}
        if full:
            params["full"] = "1"
        result: dict[str, Any] = await self._call(
            "GET", "records", params={k: v for k, v in params.items() if v is not None}
        )
        return result

    async def credits(self, app: str, org: str | None = None) -> dict[str, Any]:
        """An org's API credits (CRM: org = user, default demo; Desk: org id, default the
        demo org): edition, allowance, used, remaining, in_flight, max_in_flight,
        credits_by_kind, calls_by_kind, rejected."""
        params = {"app": app} if org is None else {"app": app, "org": org}
        result: dict[str, Any] = await self._call("GET", "credits", params=params)
        return result

    async def set_credits(
        self,
        app: str,
        org: str | None = None,
        *,
        edition: str | None = None,
        users: int | None = None,
        allowance: int | None = None,
        max_in_flight: int | None = None,
        reset_counters: bool = False,
    ) -> dict[str, Any]:
        """Give an org an edition (free, standard, professional, enterprise, ultimate, or
        none: unlimited), a number of users, or a fixed allowance / calls in flight."""
        body: dict[str, Any] = {"app": app, "org": org, "edition": edition}
        for name, value in (
            ("users", users),
            ("allowance", allowance),
            ("max_in_flight", max_in_flight),
        ):
            if value is not None:
                body[name] = value
        body["reset_counters"] = reset_counters
        result: dict[str, Any] = await self._call(
            "POST", "credits", {k: v for k, v in body.items() if v is not None}
        )
        return result
