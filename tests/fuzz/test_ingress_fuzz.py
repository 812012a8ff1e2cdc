"""The ingress fed hypothesis-generated bodies, and the JSON bound they meet first.

Injected: nesting at any depth (arrays and objects, brackets inside strings, escapes),
bytes that are not JSON, and verified CRM deliveries whose ids, field names and values
expand (repeated ids, flat `affected_fields` for many records, deep `affected_values`).
Asserted: `bounded_json` says a body nests too deep exactly when it does, and raises
nothing but JsonRefused; the ingress answers 200, 400 or 413, never 500; what it stores
stays under the delivery bounds; a normal delivery right after is still stored.

Derandomized, as tests/fuzz/test_rpc_fuzz.py; HYPOTHESIS_FUZZ_EXAMPLES searches longer.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servicekit import bounded_json
from tests.live.helpers import crm_subscription
from tests.plugins.zoho_callbacks import crm_body

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("HYPOTHESIS_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large, HealthCheck.large_base_example],
)

# Strings that look like structure: brackets, quotes and backslashes inside them.
TRICKY_TEXT = st.text(alphabet='[]{}"\\ ax', max_size=8)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY_TEXT, inner, max_size=3),
    max_leaves=60,
)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def nested(levels: int, leaf: Any = "x") -> Any:
    for n in range(levels):
        leaf = [leaf] if n % 2 else {"k": leaf}
    return leaf


@FUZZ
@given(value=JSON_VALUES, extra=st.integers(0, 60), limit=st.integers(1, 40))
def test_the_depth_bound_is_exact_for_any_json(value: Any, extra: int, limit: int) -> None:
    document = nested(extra, value)
    raw = json.dumps(document).encode()
    assert bounded_json.nests_deeper_than(raw, limit) == (depth(document) > limit)
    if depth(document) <= limit:
        assert bounded_json.loads(raw, max_depth=limit) == document


@FUZZ
@given(raw=st.binary(max_size=400) | st.builds(
    lambda a, n, b: a + b"[" * n + b, st.binary(max_size=20), st.integers(0, 5000),
    st.binary(max_size=20)))
def test_any_bytes_parse_or_are_refused_as_a_value_error(raw: bytes) -> None:
    try:
        bounded_json.loads(raw)
    except bounded_json.JsonRefused:
        pass


def expanding(channel: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    ids = st.lists(st.sampled_from(["1", "2", "3", "12345678901234567"])
                   | st.integers(1, 10**6).map(str), min_size=1, max_size=1200)
    names = st.lists(st.text(alphabet="abcXYZ_", min_size=1, max_size=30), max_size=3000)
    values = st.one_of(st.none(), st.builds(nested, st.integers(0, 80)),
                       st.builds(lambda n: {"Description": "v" * n}, st.integers(0, 300_000)))
    return st.builds(
        lambda ids, names, values, repeat: crm_body(
            channel, ids, operation="update", affected_fields=names * repeat,
            affected_values=[{"record_id": ids[0], "values": values}]),
        ids, names, values, st.integers(1, 50))


async def _channel(notifier: Any, sandbox: Any, connect_subscriber: Any) -> dict[str, Any]:
    """One subscription for all of a test's examples (the fixtures are not re-made)."""
    if not hasattr(notifier, "fuzz_channel"):
        await connect_subscriber()
        notifier.fuzz_channel = (await crm_subscription(notifier, sandbox))[1]
    channel: dict[str, Any] = notifier.fuzz_channel
    return channel


@FUZZ
@given(data=st.data())
async def test_expanding_and_nested_crm_deliveries_are_answered_deliberately(
    notifier, sandbox, connect_subscriber, callbacks, data
) -> None:
    channel = await _channel(notifier, sandbox, connect_subscriber)
    body = data.draw(expanding(channel))
    answer = await callbacks.raw(channel["notify_url"], json.dumps(body).encode())
    assert answer.status_code in (200, 400, 413), answer.text
    if answer.status_code == 413:
        assert "NOTIFIER_INGRESS_" in answer.text
    good = await callbacks.crm(channel["notify_url"], crm_body(channel, ["99"]))
    assert good.status_code == 200
