"""CRM's item-level error: `{"code","details","message","status":"error"}` inside `watch`."""

from __future__ import annotations

from typing import Any


class WatchError(ValueError):
    """One item's failure."""

    def __init__(self, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(f"{code}: {message} {details}")
        self.code = code
        self.message = message
        self.details = details

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "details": self.details,
            "message": self.message,
            "status": "error",
        }


def invalid(name: str, path: str, message: str = "invalid data", **extra: Any) -> WatchError:
    return WatchError("INVALID_DATA", message, {"api_name": name, "json_path": path, **extra})


def mandatory(name: str, path: str) -> WatchError:
    return WatchError(
        "MANDATORY_NOT_FOUND", "required field not found", {"api_name": name, "json_path": path}
    )
