"""Zoho's official SDK (zohocrmsdk8-0) runs a COQL query against the sandbox unchanged, and
reads the spec's errors as its APIException."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sandbox.control.client import SandboxControl

pytest.importorskip("zohocrmsdk.src.com.zoho.crm.api.coql")

from zohocrmsdk.src.com.zoho.crm.api.coql import (
    APIException,
    BodyWrapper,
    CoqlOperations,
    ResponseWrapper,
)

from tests.sandbox.test_zoho_sdk import _initialize


def _run(text: str) -> tuple[int, Any]:
    body = BodyWrapper()
    body.set_select_query(text)
    response = CoqlOperations().get_records(body)
    return response.get_status_code(), response.get_object()


async def test_sdk_runs_a_coql_query(sandbox: SandboxControl, tmp_path: Path):
    def run() -> tuple[tuple[int, Any], tuple[int, Any]]:
        _initialize(sandbox.origin, tmp_path)
        ok = _run(
            "select Last_Name, Modified_Time from Leads where Last_Name like 'Last1%'"
            " order by Modified_Time desc limit 5"
        )
        bad = _run("select Last_Name from Leads")
        return ok, bad

    (status, wrapper), (bad_status, error) = await asyncio.to_thread(run)
    assert status == 200
    assert isinstance(wrapper, ResponseWrapper), wrapper
    records = wrapper.get_data()
    assert len(records) == 5
    assert all(str(r.get_key_value("Last_Name")).startswith("Last1") for r in records)
    assert all(len(str(r.get_id())) == 19 for r in records)
    times = [r.get_key_value("Modified_Time") for r in records]
    assert times == sorted(times, reverse=True)
    assert wrapper.get_info().get_more_records() is True
    assert bad_status == 400
    assert isinstance(error, APIException)
    assert error.get_code().get_value() == "SYNTAX_ERROR"
    [call, _] = await sandbox.calls("crm.coql")
    assert call.status == 200
