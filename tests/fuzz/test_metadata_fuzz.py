"""Hostile `x-request-id` values (tests/fuzz/strategies.py metadata_value: control
characters, non-ASCII and non-UTF-8 bytes, huge values) sent over a raw HTTP/2
connection, as grpc's own clients will not: the notifier answers as it would without the
header (here: the whole list), never INTERNAL, and stays SERVING."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as gen
from tests.fuzz.test_rpc_fuzz import FUZZ, connected, still_serving  # noqa: F401  (fixture)
from tests.plugins.notifier_fixtures import NotifierHandle
from tests.plugins.raw_h2 import RawH2Client
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2

pytestmark = pytest.mark.fuzz

PATH = "/zoho.notifier.v1.NotifierService/ListNotificationPages"
REQUEST = notifier_pb2.ListNotificationPagesRequest(
    user_id="demo", app_type=common_pb2.APP_TYPE_CRM).SerializeToString()


@FUZZ
@given(value=gen.metadata_value(), key=st.sampled_from([b"x-request-id", b"x-other"]))
async def test_hostile_metadata_values_get_normal_answers(
    connected, notifier: NotifierHandle, value: bytes, key: bytes  # noqa: F811
) -> None:
    def call():
        client = RawH2Client(notifier.address)
        try:
            return client.call(PATH, REQUEST, [(key, value)])
        finally:
            client.close()

    reply = await asyncio.to_thread(call)
    assert reply.grpc_status == 0, (value, reply.headers, reply.trailers, reply.reset)
    pages = [notifier_pb2.ListNotificationPagesResponse.FromString(m) for m in reply.messages]
    assert sum(len(p.notifications) for p in pages) == 250
    await still_serving(notifier.channel, "zoho.notifier.v1.NotifierService")
