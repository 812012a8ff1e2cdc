"""broker/storage/ owns the broker's database: no other broker module builds a statement,
opens a connection or a transaction, or holds a table. Read from each module's syntax tree,
so the boundary holds without running anything (and a lazy import inside a function counts)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BROKER = Path(__file__).resolve().parents[2] / "broker"
STORAGE = BROKER / "storage"

# Calls that open a connection or a transaction, or run a statement: on an engine, a
# connection, or the store's own context managers.
OPENS_OR_RUNS = {"begin", "begin_nested", "connect", "execute", "exec_driver_sql", "scalar",
                 "scalars", "stream", "reading", "writing"}
# What storage names its tables by: outside it, nothing could use them but a statement.
TABLES = {"connections_table", "audit_table", "ZohoConnection", "RefreshAudit", "Base"}


def _outside_storage() -> list[Path]:
    return sorted(p for p in BROKER.rglob("*.py") if STORAGE not in p.parents)


def crossings(source: str) -> list[str]:
    """What in this module's source reaches past storage into the database."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names
                      if a.name.split(".")[0] == "sqlalchemy"]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] == "sqlalchemy":
                found.append(f"from {module} import ...")
            elif module.startswith("broker.storage"):
                found += [f"from {module} import {a.name}" for a in node.names
                          if a.name in TABLES]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in OPENS_OR_RUNS):
            found.append(f"line {node.lineno}: .{node.func.attr}(...)")
    return found


def test_there_are_modules_outside_storage_to_check() -> None:
    names = {p.relative_to(BROKER).as_posix() for p in _outside_storage()}
    assert {"app.py", "servicer.py"} <= names
    assert not any(name.startswith("storage/") for name in names)


@pytest.mark.parametrize("module", _outside_storage(),
                         ids=lambda p: p.relative_to(BROKER).as_posix())
def test_no_sql_outside_storage(module: Path) -> None:
    assert crossings(module.read_text()) == []


@pytest.mark.parametrize("source", [
    "from sqlalchemy import update\n",
    "import sqlalchemy.ext.asyncio\n",
    "def f():\n    from sqlalchemy.exc import IntegrityError\n",
    "from broker.storage.tables import connections_table\n",
    "async def f(store):\n    async with store.writing() as db:\n        pass\n",
    "async def f(engine):\n    async with engine.begin() as db:\n        await db.execute(q)\n",
])
def test_each_kind_of_crossing_is_seen(source: str) -> None:
    assert crossings(source)
