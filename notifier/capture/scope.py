"""What a subscription's events ask change capture to read back: per CRM module or Desk
resource, which kinds of change (events/dedupe.py: c, e, d) it hears."""

from __future__ import annotations

from collections.abc import Sequence

from notifier.app_types import CRM
from notifier.capture.desk_reads import SEARCH_PATHS
from notifier.events.dedupe import CREATED, DELETED, EDITED

_CRM_ACTIONS = {
    "create": {CREATED}, "edit": {EDITED}, "delete": {DELETED},
    "all": {CREATED, EDITED, DELETED},
}
_DESK_ACTIONS = {"Add": CREATED, "Update": EDITED, "Delete": DELETED}


def heard(app_type: int, events: Sequence[str]) -> dict[str, set[str]]:
    """Module -> the kinds of change of its records the events name. Desk events about
    something else than the record itself (Ticket_Thread_Add, ...) and Desk resources
    search cannot read are left out: callbacks alone carry those."""
    kinds: dict[str, set[str]] = {}
    for event in events:
        if app_type == CRM:
            module, _, action = event.rpartition(".")
            if module and action in _CRM_ACTIONS:
                kinds.setdefault(module, set()).update(_CRM_ACTIONS[action])
        else:
            resource, _, action = event.partition("_")
            if resource in SEARCH_PATHS and action in _DESK_ACTIONS:
                kinds.setdefault(resource, set()).add(_DESK_ACTIONS[action])
    return kinds


def covered_modules(app_type: int, events: Sequence[str]) -> list[str]:
    return sorted(heard(app_type, events))


def desk_operation(resource: str, kind: str) -> str:
    action = {CREATED: "Add", EDITED: "Update", DELETED: "Delete"}[kind]
    return f"{resource}_{action}"


def crm_operation(kind: str) -> str:
    return {CREATED: "create", EDITED: "edit", DELETED: "delete"}[kind]
