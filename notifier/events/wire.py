"""The protobuf bytes the notifier builds by hand: WatchNotifications and Pull write
events as they are stored, already serialized, instead of parsing and serializing each
one again (their handlers pass bytes through: notifier/service_handlers.py).

Two rules of the protobuf encoding make this safe: a field appended to a serialized
message sets that field (for a singular field the last occurrence wins when parsed),
and a serialized message is a valid length-delimited field of a message that holds it.
The field numbers come from the generated descriptors, so a renumbered field in the
.proto changes the bytes with it; tests/events/test_wire.py parses the results back.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.descriptor import Descriptor

from notifier.events.cursor import CURSOR_LENGTH, format_cursor
from zoho.notifier.v1 import notifier_pb2

_LENGTH_DELIMITED = 2  # the wire type of strings, messages and packed repeated numbers


def _varint(value: int) -> bytes:
    """A non-negative integer as a base-128 varint."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _tag(message: Descriptor, field: str) -> bytes:
    return _varint(message.fields_by_name[field].number << 3 | _LENGTH_DELIMITED)


# NotificationEvent.cursor: the tag and the length of a cursor, which is fixed.
_CURSOR_PREFIX = _tag(notifier_pb2.NotificationEvent.DESCRIPTOR, "cursor") + _varint(
    CURSOR_LENGTH
)
_PULL_EVENT = _tag(notifier_pb2.PullResponse.DESCRIPTOR, "events")
_PULL_ATTEMPTS = _tag(notifier_pb2.PullResponse.DESCRIPTOR, "delivery_attempts")


def with_cursor(cursor: int, stored: bytes) -> bytes:
    """A stored NotificationEvent (serialized without its cursor) with its cursor set."""
    return stored + _CURSOR_PREFIX + format_cursor(cursor).encode()


def pull_response(events: Sequence[bytes], attempts: Sequence[int]) -> bytes:
    """A serialized PullResponse: `events`, each a serialized NotificationEvent, and their
    delivery attempts (each at least 1), packed as proto3 packs repeated numbers."""
    out = bytearray()
    for event in events:
        out += _PULL_EVENT + _varint(len(event)) + event
    packed = b"".join(_varint(count) for count in attempts)
    out += _PULL_ATTEMPTS + _varint(len(packed)) + packed
    return bytes(out)
