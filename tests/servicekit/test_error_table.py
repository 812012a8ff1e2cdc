"""The README's error table and servicekit's errors say the same: one class per reason,
and the code the README names."""

from __future__ import annotations

import re
from pathlib import Path

import grpc

from servicekit import error_status, errors

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_table() -> dict[str, str]:
    rows: dict[str, str] = {}
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("| reason | code | what to do |") + 2
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        reasons, code = (cell.strip() for cell in line.split("|")[1:3])
        for reason in re.findall(r"`([A-Z_]+)`", reasons):
            rows[reason] = reason if code == "as named" else code
    return rows


def error_classes() -> dict[str, list[type[errors.ServiceError]]]:
    found: dict[str, list[type[errors.ServiceError]]] = {}
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, errors.ServiceError):
            if value is not errors.ServiceError:
                found.setdefault(value.reason, []).append(value)
    return found


def test_every_reason_in_the_readme_has_one_class_and_its_code() -> None:
    table = readme_table()
    classes = error_classes()
    assert len(table) >= 18
    assert sorted(table) == sorted(classes)
    assert {reason: len(found) for reason, found in classes.items() if len(found) != 1} == {}
    assert sorted(table) == sorted(error_status.CODES)
    for reason, code in table.items():
        assert error_status.CODES[reason] == getattr(grpc.StatusCode, code), reason


def test_the_status_carries_the_reason_and_the_code() -> None:
    status = error_status.to_status(errors.DeskOrgUnresolved(3))
    assert status.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error_status.to_status(errors.CursorExpired()).code == grpc.StatusCode.OUT_OF_RANGE


def test_the_error_module_needs_no_grpc() -> None:
    source = Path(errors.__file__).read_text(encoding="utf-8")
    assert "import grpc" not in source and "from grpc" not in source
