"""CRM `notification_condition` on watch writes, checked with the codes and details of Zoho's
notifications spec (zoho/crm-oas v8.0 notifications.yaml, its BadRequest examples):
at most 2 conditions, `type` `field_selection`, `module` by `api_name` or `id` (not both),
`field_selection.group_operator` `and`/`or`, at most 10 fields in `group`.

A condition is stored normalised (module with both `api_name` and `id`, each field as
`{"field": {...}, "group_operator": null, "group": null}`), as GET answers show it.
"""

from __future__ import annotations

from typing import Any

from sandbox.crm.errors import WatchError, invalid, mandatory
from sandbox.demo import tenant as demo

MAX_CONDITIONS = 2
MAX_CONDITION_FIELDS = 10
GROUP_OPERATORS = ("or", "and")


def _expect(value: Any, kind: type, name: str, path: str, type_name: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise invalid(name, path, expected_data_type=type_name)
    return value


def parse_conditions(value: Any, path: str) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid("notification_condition", path)
    if len(value) > MAX_CONDITIONS:
        raise invalid("notification_condition", path, maximum_length=MAX_CONDITIONS)
    return [_condition(one, f"{path}[{i}]") for i, one in enumerate(value)]


def _condition(raw: Any, path: str) -> dict[str, Any]:
    _expect(raw, dict, "notification_condition", path, "jsonobject")
    if raw.get("type") is None:
        raise mandatory("type", f"{path}.type")
    _expect(raw["type"], str, "type", f"{path}.type", "text")
    if raw["type"] != "field_selection":
        raise invalid("type", f"{path}.type", supported_values=["field_selection"])
    if raw.get("module") is None:
        # The spec's own example: INVALID_DATA with "required field not found".
        raise WatchError(
            "INVALID_DATA",
            "required field not found",
            {"api_name": "module", "json_path": f"{path}.module"},
        )
    module = _module(raw["module"], f"{path}.module")
    if raw.get("field_selection") is None:
        raise WatchError(
            "DEPENDENT_FIELD_MISSING",
            "DEPENDENT_FIELD_MISSING",
            {
                "api_name": "field_selection",
                "json_path": f"{path}.field_selection",
                "dependee": {"api_name": "type", "json_path": f"{path}.type"},
            },
        )
    selection = _selection(raw["field_selection"], f"{path}.field_selection")
    return {"type": "field_selection", "module": module, "field_selection": selection}


def _module(raw: Any, path: str) -> dict[str, str]:
    _expect(raw, dict, "module", path, "jsonobject")
    api_name, module_id = raw.get("api_name"), raw.get("id")
    if api_name is not None:
        _expect(api_name, str, "api_name", f"{path}.api_name", "string")
    if module_id is not None:
        _expect(module_id, str, "id", f"{path}.id", "string")
    both = [
        {"api_name": "api_name", "json_path": f"{path}.api_name"},
        {"api_name": "id", "json_path": f"{path}.id"},
    ]
    if api_name is None and module_id is None:
        raise WatchError(
            "EXPECTED_FIELD_MISSING", "Specify atleast one field", {"expected_fields": both}
        )
    if api_name is not None and module_id is not None:
        raise WatchError(
            "AMBIGUITY_DURING_PROCESSING", "AMBIGUITY_DURING_PROCESSING", {"ambiguity_due_to": both}
        )
    if api_name is not None:
        if api_name not in demo.CRM_MODULES:
            raise invalid("api_name", f"{path}.api_name")
        return {"api_name": api_name, "id": demo.CRM_MODULES[api_name]}
    by_id = {v: k for k, v in demo.CRM_MODULES.items()}
    if module_id not in by_id:
        raise invalid("id", f"{path}.id")
    return {"api_name": by_id[module_id], "id": module_id}


def _selection(raw: Any, path: str) -> dict[str, Any]:
    _expect(raw, dict, "field_selection", path, "jsonobject")
    operator = raw.get("group_operator")
    if operator is None:
        raise mandatory("group_operator", f"{path}.group_operator")
    _expect(operator, str, "group_operator", f"{path}.group_operator", "text")
    if operator not in GROUP_OPERATORS:
        raise invalid(
            "group_operator", f"{path}.group_operator", supported_values=list(GROUP_OPERATORS)
        )
    group = raw.get("group")
    if group is None:
        raise mandatory("group", f"{path}.group")
    if not isinstance(group, list) or not group:
        raise invalid("group", f"{path}.group")
    fields = [_field(entry, f"{path}.group[{i}]") for i, entry in enumerate(group)]
    if len(fields) > MAX_CONDITION_FIELDS:
        raise invalid("field_selection", path, maximum_length=MAX_CONDITION_FIELDS)
    return {"group_operator": operator, "group": fields}


def _field(raw: Any, path: str) -> dict[str, Any]:
    """A field as PATCH's examples send it (`{"api_name"}`) or as GET shows it
    (`{"field": {"api_name", "id"}}`)."""
    _expect(raw, dict, "group", path, "jsonobject")
    inner = raw.get("field", raw)
    _expect(inner, dict, "field", f"{path}.field", "jsonobject")
    name = inner.get("api_name")
    if name is None:
        raise mandatory("api_name", f"{path}.api_name")
    _expect(name, str, "api_name", f"{path}.api_name", "string")
    field = {"api_name": name, "id": inner.get("id") or _field_id(name)}
    return {"field": field, "group_operator": None, "group": None}


def _field_id(name: str) -> str:
    # Stable made-up field ids, so a condition reads back the same every time.
    return str(554023000000000000 + sum(ord(c) * (i + 1) for i, c in enumerate(name)))


def condition_fields(conditions: list[dict[str, Any]] | None, module: str) -> tuple[str, set[str]]:
    """The fields a module's conditions watch, and how they combine ("or"/"and"); ("", set())
    when nothing restricts the module."""
    for condition in conditions or []:
        if condition.get("module", {}).get("api_name") == module:
            selection = condition["field_selection"]
            names = {f["field"]["api_name"] for f in selection["group"]}
            return selection["group_operator"], names
    return "", set()
