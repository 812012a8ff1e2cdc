"""CRM `actions/watch` where Zoho's notifications spec (crm-oas v8.0) says what to answer:
request limits, notification_condition's codes, defaults, expiry, 429/401 codes, messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sandbox.control.client import SandboxControl
from tests.sandbox.conftest import access_token, auth

WATCH = "/crm/v8/actions/watch"


@pytest.fixture
async def token(sandbox: SandboxControl, http: httpx.AsyncClient) -> str:
    return await access_token(http, sandbox)


def _item(channel_id: str = "2000001", **extra: Any) -> dict[str, Any]:
    return {
        "channel_id": channel_id,
        "events": ["Leads.create", "Leads.edit"],
        "notify_url": "https://app.example/hook",
        **extra,
    }


async def _write(http, sb, token, method: str, *items: dict[str, Any]) -> httpx.Response:
    return await http.request(
        method, f"{sb.origin}{WATCH}", json={"watch": list(items)}, headers=auth(token)
    )


async def _listed(http, sb, token, channel_id: str) -> list[dict[str, Any]]:
    response = await http.get(
        f"{sb.origin}{WATCH}", params={"channel_id": channel_id}, headers=auth(token)
    )
    return [] if response.status_code == 204 else response.json()["watch"]


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def test_token_of_256_characters_is_accepted(sandbox, http, token):
    created = await _write(http, sandbox, token, "POST", _item(token="t" * 256))
    assert created.status_code == 201
    [item] = await _listed(http, sandbox, token, "2000001")
    assert item["token"] == "t" * 256


async def test_get_shows_null_fields_and_conditions(sandbox, http, token):
    await _write(http, sandbox, token, "POST", _item())
    [item] = await _listed(http, sandbox, token, "2000001")
    assert item["fields"] is None
    assert item["notification_condition"] is None
    demo = (await http.get(f"{sandbox.origin}{WATCH}", headers=auth(token))).json()["watch"]
    conditions = [i["notification_condition"] for i in demo]
    assert None in conditions
    assert any(c and c[0]["type"] == "field_selection" for c in conditions)


def _condition(**overrides: Any) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": "field_selection",
        "module": {"api_name": "Leads"},
        "field_selection": {
            "group_operator": "and",
            "group": [{"api_name": "Company"}, {"api_name": "Email"}],
        },
    }
    condition.update(overrides)
    return {k: v for k, v in condition.items() if v is not None}


async def test_a_valid_condition_is_stored_as_get_shows_it(sandbox, http, token):
    created = await _write(
        http, sandbox, token, "POST", _item(notification_condition=[_condition()])
    )
    assert created.status_code == 201
    [item] = await _listed(http, sandbox, token, "2000001")
    [condition] = item["notification_condition"]
    assert condition["module"]["api_name"] == "Leads"
    assert condition["module"]["id"]
    group = condition["field_selection"]["group"]
    assert [g["field"]["api_name"] for g in group] == ["Company", "Email"]
    assert group[0]["group_operator"] is None and group[0]["group"] is None


NC = "$.watch[0].notification_condition"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("condition", "code", "details"),
    [
        ("x", "INVALID_DATA", {"api_name": "notification_condition", "json_path": NC}),
        (
            [_condition()] * 3,
            "INVALID_DATA",
            {"api_name": "notification_condition", "json_path": NC, "maximum_length": 2},
        ),
        (
            [{"module": {"api_name": "Leads"}}],
            "MANDATORY_NOT_FOUND",
            {"api_name": "type", "json_path": f"{NC}[0].type"},
        ),
        (
            [_condition(type="other")],
            "INVALID_DATA",
            {
                "api_name": "type",
                "json_path": f"{NC}[0].type",
                "supported_values": ["field_selection"],
            },
        ),
        (
            [_condition(module={})],
            "EXPECTED_FIELD_MISSING",
            {
                "expected_fields": [
                    {"api_name": "api_name", "json_path": f"{NC}[0].module.api_name"},
                    {"api_name": "id", "json_path": f"{NC}[0].module.id"},
                ]
            },
        ),
        (
            [_condition(module={"api_name": "Leads", "id": "5725767000000002175"})],
            "AMBIGUITY_DURING_PROCESSING",
            {
                "ambiguity_due_to": [
                    {"api_name": "api_name", "json_path": f"{NC}[0].module.api_name"},
                    {"api_name": "id", "json_path": f"{NC}[0].module.id"},
                ]
            },
        ),
        (
            [{"type": "field_selection", "module": {"api_name": "Leads"}}],
            "DEPENDENT_FIELD_MISSING",
            {
                "api_name": "field_selection",
                "json_path": f"{NC}[0].field_selection",
                "dependee": {"api_name": "type", "json_path": f"{NC}[0].type"},
            },
        ),
        (
            [_condition(field_selection={"group_operator": "xor", "group": [{"api_name": "A"}]})],
            "INVALID_DATA",
            {
                "api_name": "group_operator",
                "json_path": f"{NC}[0].field_selection.group_operator",
                "supported_values": ["or", "and"],
            },
        ),
        (
            [_condition(field_selection={"group": [{"api_name": "A"}]})],
            "MANDATORY_NOT_FOUND",
            {"api_name": "group_operator", "json_path": f"{NC}[0].field_selection.group_operator"},
        ),
        (
            [
                _condition(
                    field_selection={
                        "group_operator": "or",
                        "group": [{"api_name": f"F{i}"} for i in range(11)],
                    }
                )
            ],
            "INVALID_DATA",
            {
                "api_name": "field_selection",
                "json_path": f"{NC}[0].field_selection",
                "maximum_length": 10,
            },
        ),
    ],
)
async def test_condition_errors_use_the_specs_codes(sandbox, http, token, condition, code, details):
    response = await _write(http, sandbox, token, "POST", _item(notification_condition=condition))
    assert response.status_code == 400
    [result] = response.json()["watch"]
    assert (result["code"], result["details"]) == (code, details)


async def test_unknown_keys_and_numeric_channel_ids_are_refused(sandbox, http, token):
    unknown = await _write(http, sandbox, token, "POST", _item(colour="blue"))
    [result] = unknown.json()["watch"]
    assert (result["code"], result["details"]["json_path"]) == ("INVALID_DATA", "$.watch[0].colour")
    numeric = await _write(http, sandbox, token, "POST", _item(channel_id=2000002))
    [result] = numeric.json()["watch"]
    assert result["details"] == {
        "api_name": "channel_id",
        "json_path": "$.watch[0].channel_id",
        "expected_data_type": "string",
    }
    # The older docs' reading (a long) on request.
    await sandbox.configure(crm_numeric_channel_id=True)
    assert (
        await _write(http, sandbox, token, "POST", _item(channel_id=2000002))
    ).status_code == 201


async def test_notify_on_related_action_defaults_to_true(sandbox, http, token):
    await _write(http, sandbox, token, "POST", _item())
    [item] = await _listed(http, sandbox, token, "2000001")
    assert item["notify_on_related_action"] is True


async def test_expiry_missing_or_past_a_week_is_one_hour(sandbox, http, token):
    now = await sandbox.now()
    later = (datetime.now(UTC) + timedelta(days=8)).isoformat(timespec="seconds")
    await _write(
        http, sandbox, token, "POST", _item("2000001"), _item("2000002", channel_expiry=later)
    )
    for channel in ("2000001", "2000002"):
        [item] = await _listed(http, sandbox, token, channel)
        assert abs(_epoch(item["channel_expiry"]) - (now + 3600)) < 5


async def test_an_expired_channel_vanishes(sandbox, http, token):
    await _write(http, sandbox, token, "POST", _item())
    assert len(await _listed(http, sandbox, token, "2000001")) == 1
    await sandbox.advance_clock(3601)
    token = await access_token(http, sandbox)  # the old one expired with the channel
    assert await _listed(http, sandbox, token, "2000001") == []
    assert all(c["channel_id"] != "2000001" for c in await sandbox.crm_channels())
    gone = await http.delete(
        f"{sandbox.origin}{WATCH}", params={"channel_ids": "2000001"}, headers=auth(token)
    )
    assert gone.json()["watch"][0]["code"] == "NOT_SUBSCRIBED"


@pytest.mark.slow
@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_a_write_without_expiry_moves_it_to_one_hour(sandbox, http, token, method):
    now = await sandbox.now()
    five_days = (datetime.now(UTC) + timedelta(days=5)).isoformat(timespec="seconds")
    await _write(http, sandbox, token, "POST", _item(channel_expiry=five_days))
    body = _item() if method == "PUT" else {"channel_id": "2000001", "token": "new"}
    assert (await _write(http, sandbox, token, method, body)).status_code == 200
    [item] = await _listed(http, sandbox, token, "2000001")
    assert abs(_epoch(item["channel_expiry"]) - (now + 3600)) < 5
    # The other reading: a write without channel_expiry leaves it.
    await sandbox.configure(crm_write_without_expiry="keep")
    await _write(http, sandbox, token, "POST", _item("2000003", channel_expiry=five_days))
    body = _item("2000003") if method == "PUT" else {"channel_id": "2000003", "token": "new"}
    await _write(http, sandbox, token, method, body)
    [item] = await _listed(http, sandbox, token, "2000003")
    assert item["channel_expiry"] == five_days


async def test_throttle_codes(sandbox, http, token):
    await sandbox.fault("crm.watch", "throttle")
    spec = await http.get(f"{sandbox.origin}{WATCH}", headers=auth(token))
    assert spec.status_code == 429
    assert spec.json() == {
        "code": "RATE_LIMIT_EXCEEDED",
        "message": "Too many requests. Please try again later.",
        "status": "error",
    }
    await sandbox.configure(crm_throttle_code="TOO_MANY_REQUESTS", crm_retry_after_seconds=7)
    await sandbox.fault("crm.watch", "throttle")
    v8 = await http.get(f"{sandbox.origin}{WATCH}", headers=auth(token))
    assert v8.status_code == 429
    assert (v8.json()["code"], v8.json()["details"]) == ("TOO_MANY_REQUESTS", {"retry_after": 7})


async def test_dead_token_code_is_a_knob(sandbox, http):
    await sandbox.configure(crm_token_error_code="AUTHORIZATION_FAILED")
    response = await http.get(f"{sandbox.origin}{WATCH}", headers=auth("1000.dead.token"))
    assert response.status_code == 401
    assert response.json()["code"] == "AUTHORIZATION_FAILED"


async def test_success_messages(sandbox, http, token):
    created = await _write(http, sandbox, token, "POST", _item())
    assert created.json()["watch"][0]["message"] == (
        "Successfully subscribed for actions-watch of the given module"
    )
    removed = await _write(
        http,
        sandbox,
        token,
        "PATCH",
        {"channel_id": "2000001", "events": ["Leads.edit"], "_delete_events": True},
    )
    assert removed.json()["watch"][0]["message"] == "Successfully removed the subscribe details"
    patched = await _write(http, sandbox, token, "PATCH", {"channel_id": "2000001", "token": "x"})
    assert patched.json()["watch"][0]["message"] == "Successfully updated the subscribe details"
