"""Fidelity: Zoho's official Python SDK (zohocrmsdk8-0) reads the sandbox's records unchanged:
Get Records with If-Modified-Since and page tokens, and deleted records.

The SDK is synchronous and keeps global state, so it runs in a worker thread; its token store,
resource files and log go to tmp_path (see test_zoho_sdk.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sandbox.control.client import SandboxControl
from tests.sandbox.test_zoho_sdk import _initialize

sdk = pytest.importorskip("zohocrmsdk.src.com.zoho.crm.api.record")

from zohocrmsdk.src.com.zoho.crm.api.header_map import HeaderMap  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.parameter_map import ParameterMap  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.record import (  # noqa: E402
    DeletedRecordsWrapper,
    GetDeletedRecordsHeader,
    GetDeletedRecordsParam,
    GetRecordsHeader,
    GetRecordsParam,
    RecordOperations,
    ResponseWrapper,
)


def _read_since(since: datetime, per_page: int) -> tuple[list[Any], list[int]]:
    operations = RecordOperations("Leads")
    records: list[Any] = []
    statuses: list[int] = []
    token = None
    while True:
        params = ParameterMap()
        params.add(GetRecordsParam.fields, "Last_Name,Company,Modified_Time")
        params.add(GetRecordsParam.per_page, per_page)
        params.add(GetRecordsParam.sort_by, "Modified_Time")
        params.add(GetRecordsParam.sort_order, "asc")
        if token is not None:
            params.add(GetRecordsParam.page_token, token)
        headers = HeaderMap()
        headers.add(GetRecordsHeader.if_modified_since, since)
        response = operations.get_records(params, headers)
        statuses.append(response.get_status_code())
        if response.get_status_code() != 200:
            return records, statuses
        wrapper = response.get_object()
        assert isinstance(wrapper, ResponseWrapper), wrapper
        records.extend(wrapper.get_data())
        info = wrapper.get_info()
        if not info.get_more_records():
            return records, statuses
        token = info.get_next_page_token()


def _read_deleted(since: datetime) -> list[Any]:
    params = ParameterMap()
    params.add(GetDeletedRecordsParam.type, "all")
    headers = HeaderMap()
    headers.add(GetDeletedRecordsHeader.if_modified_since, since)
    response = RecordOperations("Leads").get_deleted_records(params, headers)
    assert response.get_status_code() == 200
    wrapper = response.get_object()
    assert isinstance(wrapper, DeletedRecordsWrapper), wrapper
    return list(wrapper.get_data())


async def test_sdk_reads_changes_since_with_page_tokens_and_deletes(
    sandbox: SandboxControl, tmp_path: Path
):
    stored = (await sandbox.records("crm", "Leads", full=True))["records"]
    now = await sandbox.now()
    since = datetime.fromtimestamp(int(now), UTC)
    changed = [r["id"] for r in stored[:25]]
    await sandbox.change_records(
        "crm", "Leads", "update", [{"id": i, "values": {"Company": "Read back"}} for i in changed]
    )
    gone = stored[30]["id"]
    await sandbox.change_records("crm", "Leads", "delete", [gone], permanent=True)

    def run() -> tuple[tuple[list[Any], list[int]], list[Any]]:
        _initialize(sandbox.origin, tmp_path)
        return _read_since(since, per_page=10), _read_deleted(since)

    (records, statuses), deleted = await asyncio.to_thread(run)
    assert statuses == [200, 200, 200]  # 25 records, 10 a page, by page token
    assert sorted(str(r.get_id()) for r in records) == sorted(changed)
    assert {r.get_key_value("Company") for r in records} == {"Read back"}
    assert all(isinstance(r.get_key_value("Modified_Time"), datetime) for r in records)
    [entry] = deleted
    assert str(entry.get_id()) == gone
    assert entry.get_type() == "permanent" and entry.get_deleted_by() is None
    calls = [(c.route, c.status) for c in await sandbox.calls() if c.route.startswith("crm.")]
    assert ("crm.records", 200) in calls and ("crm.deleted", 200) in calls
    assert ("crm.fields", 200) in calls  # the SDK types values by the module's fields
    assert all(status == 200 for _, status in calls), calls
    log = (tmp_path / "sdk.log").read_text()
    assert " ERROR " not in log and "Exception" not in log
