"""Reading control-call bodies: JSON objects whose keys are checked by name and type."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sandbox.http import read_json


class ControlError(ValueError):
    """A control call that makes no sense; answered 400 with its text."""


async def body_of(request: web.Request) -> dict[str, Any]:
    if not (await request.read()).strip():
        return {}
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ControlError("the body must be a JSON object")
    return body


def get(body: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if key not in body or body[key] is None:
        if default is ...:
            raise ControlError(f"missing {key!r}")
        return default
    value = body[key]
    # bool is an int in Python; an int field must not accept true.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ControlError(f"{key!r} has the wrong type")
    if not isinstance(value, kind):
        raise ControlError(f"{key!r} has the wrong type")
    return value


def str_list(body: dict[str, Any], key: str, default: Any = ...) -> list[str]:
    value = get(body, key, list, default)
    if value is not None and not all(isinstance(v, str) for v in value):
        raise ControlError(f"{key!r} must be a list of strings")
    return list(value) if value is not None else []
