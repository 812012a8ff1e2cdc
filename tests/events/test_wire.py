"""The hand-built protobuf bytes (notifier/events/wire.py) against the generated
descriptors: parsed back with the generated classes they give the same message as
protobuf's own serializer, and each field sits under the descriptor's field number,
wire type and length, for large values, unicode, empty fields and generated ones."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.events.cursor import CURSOR_LENGTH, format_cursor
from notifier.events.wire import pull_response, with_cursor
from zoho.notifier.v1 import notifier_pb2 as pb

EVENT = pb.NotificationEvent
LENGTH_DELIMITED = 2
CHECKS = settings(max_examples=200, derandomize=True, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow])
BIGGEST_CURSOR = 2**63 - 1  # notifier_events.cursor is a BIGINT


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def fields(data: bytes) -> list[tuple[int, int, bytes]]:
    """(field number, wire type, payload) of each length-delimited field of `data`
    (the only wire type these messages' hand-built parts use)."""
    out, at = [], 0
    while at < len(data):
        key, at = read_varint(data, at)
        number, wire_type = key >> 3, key & 7
        assert wire_type == LENGTH_DELIMITED, (number, wire_type)
        length, at = read_varint(data, at)
        out.append((number, wire_type, data[at:at + length]))
        at += length
    assert at == len(data)
    return out


def number(message: type, field: str) -> int:
    return message.DESCRIPTOR.fields_by_name[field].number


def stored(event: pb.NotificationEvent) -> bytes:
    """As the log stores an event: serialized without its cursor."""
    event.ClearField("cursor")
    return event.SerializeToString()


def rich_event() -> pb.NotificationEvent:
    event = EVENT(
        subscription_id="sub_" + "a" * 24, user_id="üser-名前-🙂", app_type=1,
        module="Leads", operation="edit", record_id="9" * 300,
        affected_fields=["Last_Name", "Ünïcode", ""], origin=pb.EVENT_ORIGIN_CALLBACK,
    )
    event.values.update({"Description": "x" * 70_000, "emoji": "🙂" * 100})
    event.event_time.FromSeconds(1_780_000_000)
    return event


def test_the_cursor_is_appended_as_the_descriptor_numbers_it() -> None:
    for event in (EVENT(), rich_event()):
        for cursor in (0, 1, 127, 128, 2**32, BIGGEST_CURSOR):
            blob = stored(event)
            wire = with_cursor(cursor, blob)
            parsed = EVENT.FromString(wire)
            assert parsed.cursor == format_cursor(cursor)
            expected = EVENT()
            expected.CopyFrom(event)
            expected.cursor = format_cursor(cursor)
            assert parsed == expected
            assert len(format_cursor(cursor)) == CURSOR_LENGTH
            appended = fields(wire[len(blob):])
            assert appended == [
                (number(EVENT, "cursor"), LENGTH_DELIMITED, format_cursor(cursor).encode())
            ]


def test_a_cursor_appended_to_an_event_that_had_one_replaces_it() -> None:
    event = rich_event()
    event.cursor = format_cursor(5)
    assert EVENT.FromString(with_cursor(6, event.SerializeToString())).cursor == format_cursor(6)


def test_a_pull_response_is_what_protobuf_would_serialize() -> None:
    events = [with_cursor(1, stored(rich_event())), with_cursor(2, stored(EVENT())), b""]
    attempts = [1, 127, 128]
    wire = pull_response(events, attempts)
    parsed = pb.PullResponse.FromString(wire)
    assert [e.SerializeToString() for e in parsed.events] == [
        EVENT.FromString(e).SerializeToString() for e in events
    ]
    assert list(parsed.delivery_attempts) == attempts
    expected = pb.PullResponse(events=[EVENT.FromString(e) for e in events],
                               delivery_attempts=attempts)
    assert parsed == expected
    layout = fields(wire)
    assert [(n, t) for n, t, _ in layout] == [
        *[(number(pb.PullResponse, "events"), LENGTH_DELIMITED)] * len(events),
        (number(pb.PullResponse, "delivery_attempts"), LENGTH_DELIMITED),
    ]
    assert [payload for _, _, payload in layout[:-1]] == events
    # The packed attempts: 1 and 127 take one byte each, 128 takes two.
    assert len(layout[-1][2]) == 4


def test_an_empty_pull_response_parses_empty() -> None:
    assert pb.PullResponse.FromString(pull_response([], [])) == pb.PullResponse()


texts = st.text(max_size=40)
events = st.builds(
    EVENT,
    subscription_id=texts, user_id=texts, app_type=st.integers(0, 2), module=texts,
    operation=texts, record_id=st.text(max_size=400),
    affected_fields=st.lists(texts, max_size=5), origin=st.integers(0, 2),
)


@CHECKS
@given(event=events, cursor=st.integers(0, BIGGEST_CURSOR))
def test_any_event_with_any_cursor_parses_back(event: pb.NotificationEvent, cursor: int) -> None:
    expected = EVENT()
    expected.CopyFrom(event)
    expected.cursor = format_cursor(cursor)
    assert EVENT.FromString(with_cursor(cursor, stored(event))) == expected


@CHECKS
@given(items=st.lists(st.tuples(events, st.integers(0, BIGGEST_CURSOR),
                                st.integers(1, 2**31 - 1)), max_size=20))
def test_any_pull_response_parses_back(
    items: list[tuple[pb.NotificationEvent, int, int]]
) -> None:
    wires = [with_cursor(cursor, stored(event)) for event, cursor, _ in items]
    attempts = [count for _, _, count in items]
    expected = pb.PullResponse(events=[EVENT.FromString(w) for w in wires],
                               delivery_attempts=attempts)
    assert pb.PullResponse.FromString(pull_response(wires, attempts)) == expected
    # Each event's bytes as they were given, under the events field, then the attempts
    # packed under theirs.
    layout = fields(pull_response(wires, attempts))
    assert layout[:-1] == [
        (number(pb.PullResponse, "events"), LENGTH_DELIMITED, wire) for wire in wires
    ]
    packed_number, _, packed = layout[-1]
    assert packed_number == number(pb.PullResponse, "delivery_attempts")
    unpacked, at = [], 0
    while at < len(packed):
        count, at = read_varint(packed, at)
        unpacked.append(count)
    assert unpacked == attempts
