"""Zoho JSON -> protos: the edges the sandbox does not produce."""

from __future__ import annotations

import pytest

from notifier import converters
from servicekit.errors import ZohoBadResponse
from zoho.notifier.v1 import notifier_pb2


def test_write_results_keep_zohos_details_but_never_a_token() -> None:
    entries = [
        {
            "code": "SUCCESS",
            "status": "success",
            "message": "ok",
            "details": {"events": [{"channel_id": "1", "token": "verify-x"}], "token": "verify-y"},
        },
        {"code": "MANDATORY_NOT_FOUND", "status": "error", "message": "no", "details": None},
    ]
    results = converters.write_results(entries, "crm.watch.post")
    assert [(r.index, r.code) for r in results] == [(0, "SUCCESS"), (1, "MANDATORY_NOT_FOUND")]
    assert (
        results[0]
        .details.fields["events"]
        .list_value.values[0]
        .struct_value.fields["channel_id"]
        .string_value
        == "1"
    )
    assert "verify" not in str(results[0])


@pytest.mark.parametrize("entry", ["SUCCESS", None, {"code": ["x"]}])
def test_unreadable_write_results_are_bad_responses(entry: object) -> None:
    with pytest.raises(ZohoBadResponse):
        converters.write_results([entry], "crm.watch.post")


def test_channel_ids_sent_as_numbers_are_read_as_strings() -> None:
    note = converters.crm_channel({"channel_id": 1000000068001}, "crm.watch.list")
    assert note.crm.channel_id == "1000000068001"


def test_desk_update_body_holds_only_the_fields_asked_for() -> None:
    spec = notifier_pb2.DeskWebhookSpec(name="n", url="https://x", is_enabled=False)
    assert converters.desk_spec_json(spec, ["name", "is_enabled"]) == {
        "name": "n",
        "isEnabled": False,
    }


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-02T10:30:00+05:30",
        "2026-12-02T10:30:00.123456-08:00",
        "2026-12-02T10:30:00",  # no offset: read as UTC
        "1969-07-20T20:17:40.5Z",  # before the epoch: nanos stay in [0, 1e9)
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
    ],
)
def test_channel_expiry_is_the_instant_protobuf_itself_computes(text: str) -> None:
    from datetime import UTC, datetime

    from google.protobuf import timestamp_pb2

    moment = datetime.fromisoformat(text)
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    item = converters.crm_channel({"channel_id": "1", "channel_expiry": text}, "crm.watch.list")
    assert item.crm.channel_expiry == expected
    assert item.WhichOneof("item") == "crm"


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_a_zoho_time_outside_the_timestamp_range_is_a_bad_response(text: str) -> None:
    with pytest.raises(ZohoBadResponse):
        converters.crm_channel({"channel_id": "1", "channel_expiry": text}, "crm.watch.list")
