"""What the control client's mixins (`client_events.py`, `client_records.py`) call:
`SandboxControl._call` (client.py), declared once here for the type checker."""

from __future__ import annotations

from typing import Any


class ControlCalls:
    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        raise NotImplementedError
