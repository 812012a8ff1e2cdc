"""Hypothesis strategies for any request message, built from its proto descriptor.

Strings are short, empty, odd (NUL, controls, RTL marks, emoji, lone combining marks,
padding), or huge (up to past the 1 MiB message limit); numbers span their whole range,
negatives included; enums take unknown values; repeated fields are empty to many;
oneofs pick one member or none. Fields with a meaning get extra cases: ids the servers
know, origins inside and outside the allowed ones, page tokens forged from what a real
one looks like. Classes found by attacks get strategies of their own: malformed URLs,
text JSON holds but UTF-8 and PostgreSQL refuse (lone surrogates, NUL), Timestamps outside
their range.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
ODD = [
    "", " ", "\x00", "a\x00b", "\t\n\r", "\u202eevil", "\u0301", "🙂" * 3, "é", "null",
    "../../etc/passwd", "' OR 1=1 --", "%00", "${jndi:ldap://x}", "<script>", "\ufeffdemo",
    "demo ", " demo", "DEMO",
]


def huge(max_repeat: int = 400_000) -> st.SearchStrategy[str]:
    return st.builds(lambda unit, n: unit * n,
                     st.sampled_from(["a", "é", "\x00", "🙂", "1"]), st.integers(256, max_repeat))


def text() -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=40), st.sampled_from(ODD), huge())


def forged_page_token() -> st.SearchStrategy[str]:
    def encode(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()

    json_values = st.one_of(
        st.fixed_dictionaries({"after": st.one_of(st.text(max_size=300), st.integers(),
                                                  st.none(), st.lists(st.integers()))}),
        st.fixed_dictionaries({"after": undecodable_text()}),
        st.lists(st.integers(), max_size=3), st.integers(), st.text(max_size=10),
    )
    return st.one_of(text(), json_values.map(encode),
                     st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()))


def origin(known: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from([*known, "https://accounts.zoho.com", "http://169.254.169.254",
                         "https://accounts.zoho.com.evil.example", "https://user@accounts.zoho.eu",
                         "file:///etc/passwd", "https://accounts.zoho.com/path?q=1",
                         "https://[::1]:99999", "gopher://x"]),
        malformed_url(),
        text(),
    )


# ---- value classes an attack pass found (issue 11): each class, not one instance ----------

# Text that JSON can carry but UTF-8 and PostgreSQL cannot: lone surrogates, NUL.
UNDECODABLE = ["\ud800", "\udfff", "a\udc80b", "\x00", "demo\x00", "\ud800\x00"]


def undecodable_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(UNDECODABLE),
        st.builds(lambda head, bad, tail: head + bad + tail, st.text(max_size=8),
                  st.sampled_from(UNDECODABLE), st.text(max_size=8)),
        st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1,
                max_size=4),
    )


def malformed_url() -> st.SearchStrategy[str]:
    """URLs that make urlsplit raise (bad IPv6 brackets, ports out of range or not numbers),
    or that pass a prefix check and are still not URLs."""
    hosts = st.sampled_from(["[x", "[::1", "::1]", "[v1.x]", "[0:0:0:0:0:0:0:0:0]",
                             "host:99999", "host:-1", "host:abc", "host:0", "", "@", "a b"])
    return st.one_of(
        st.sampled_from(["http://[x", "https://[", "http://]", "http:///path", "http://",
                         "https://h:65536/", "http://h:١٢/", "http://h\x00/", "http:// /",
                         "https://\u202ehost/", "http://h\n.example/", "HTTP://[x/cb"]),
        st.builds(lambda scheme, host, tail: f"{scheme}://{host}{tail}",
                  st.sampled_from(["http", "https"]), hosts,
                  st.sampled_from(["", "/", "/callback", "?q=[", "#["])),
    )


def timestamp_fields() -> st.SearchStrategy[tuple[int, int]]:
    """(seconds, nanos) of a google.protobuf.Timestamp: valid, at the edges of its range
    (0001-01-01 .. 9999-12-31), and outside it, nanos negative or past a second."""
    seconds = st.one_of(
        st.integers(1_700_000_000, 1_900_000_000),
        st.sampled_from([-62_135_596_800, -62_135_596_801, 253_402_300_799, 253_402_300_800,
                         2**62, -(2**62), 2**63 - 1, -(2**63), 0]),
        st.integers(*INT64),
    )
    nanos = st.one_of(st.just(0), st.sampled_from([-5, -1, 999_999_999, 1_000_000_000]),
                      st.integers(*INT32))
    return st.tuples(seconds, nanos)


def scalar(field: FieldDescriptor, hints: dict[str, st.SearchStrategy[Any]]
           ) -> st.SearchStrategy[Any]:
    if field.name in hints:
        return hints[field.name]
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return text()
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(*INT32))
    if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64,
             FieldDescriptor.TYPE_SFIXED64):
        return st.one_of(st.integers(-5, 5000), st.integers(*INT64))
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    return st.one_of(st.integers(-5, 5000), st.integers(*INT32))


def message(descriptor: Descriptor, cls: type[Message],
            hints: dict[str, st.SearchStrategy[Any]], depth: int = 0) -> st.SearchStrategy[Any]:
    """A strategy for instances of `cls`, whose descriptor is `descriptor`."""

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        instance = cls()
        oneof_members = {f.name for o in descriptor.oneofs for f in o.fields}
        for group in descriptor.oneofs:
            chosen = draw(st.sampled_from([None, *group.fields]))
            if chosen is not None:
                _set(instance, chosen, draw, hints, depth)
        for field in descriptor.fields:
            if field.name in oneof_members or not draw(st.booleans()):
                continue
            _set(instance, field, draw, hints, depth)
        return instance

    return build()


def _set(instance: Message, field: FieldDescriptor, draw: st.DrawFn,
         hints: dict[str, st.SearchStrategy[Any]], depth: int) -> None:
    if field.type == FieldDescriptor.TYPE_MESSAGE and \
            field.message_type.full_name == "google.protobuf.Struct":
        getattr(instance, field.name).update(draw(json_object()))
        return
    if field.type == FieldDescriptor.TYPE_MESSAGE and not _repeated(field) and \
            field.message_type.full_name == "google.protobuf.Timestamp":
        seconds, nanos = draw(timestamp_fields())
        getattr(instance, field.name).seconds = seconds
        getattr(instance, field.name).nanos = nanos
        return
    if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
        key = field.message_type.fields_by_name["key"]
        value = field.message_type.fields_by_name["value"]
        getattr(instance, field.name).update(
            draw(st.dictionaries(scalar(key, {}), scalar(value, {}), max_size=5)))
        return
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        sub_cls = type(getattr(instance, field.name).add() if _repeated(field)
                       else getattr(instance, field.name))
        if _repeated(field):
            getattr(instance, field.name).pop()
        if depth > 2:
            return
        strategy = message(field.message_type, sub_cls, hints, depth + 1)
        if _repeated(field):
            for item in draw(st.lists(strategy, max_size=3 if depth else 150)):
                getattr(instance, field.name).add().CopyFrom(item)
        else:
            getattr(instance, field.name).CopyFrom(draw(strategy))
        return
    if _repeated(field):
        values = draw(st.lists(scalar(field, hints), max_size=30))
        getattr(instance, field.name).extend(values)
    else:
        setattr(instance, field.name, draw(scalar(field, hints)))


def json_object() -> st.SearchStrategy[dict[str, Any]]:
    leaves = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, width=32),
                       st.text(max_size=20))
    values = st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
        max_leaves=20)
    return st.dictionaries(st.text(max_size=20), values, max_size=5)


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


# ---- metadata values ------------------------------------------------------------------
# What a caller can put in a header such as x-request-id over raw HTTP/2 (grpc's own
# clients refuse most of it): line breaks that would forge log lines, NUL, terminal
# escapes, non-ASCII and non-UTF-8 bytes, Unicode line separators, lengths past any limit.
METADATA_ODD = [
    b"", b" ", b"\r\n", b"abc\n2026-12-02 04:00:00,000 ERROR broker [x] forged", b"a\rb",
    b"\x00", b"nul\x00x", b"\x1b[2J", b"\x7f", b"\xc3\xa9t\xc3\xa9", b"\xff\xfe",
    b"\xe2\x80\xa8", b"\xc2\x85", b"a" * 65, b"a" * 4000, b"%0d%0a", b"req id", b"../x",
    b"req-1.2:3_x",
]


def metadata_value() -> st.SearchStrategy[bytes]:
    return st.one_of(st.sampled_from(METADATA_ODD), st.binary(max_size=80),
                     st.text(max_size=40).map(str.encode))
