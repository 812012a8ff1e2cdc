"""One module says what a subscription looks like at Zoho (issue 23 item 1): the keeper
takes the CRM item, the Desk body, the URLs, the digest and the sealing context from
notifier/subscriptions/at_zoho.py, never from the create, the ingress or its directory."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import notifier.keeper
from notifier.subscriptions import at_zoho

FORBIDDEN = ("notifier.subscriptions.service", "notifier.ingress")


def test_the_keeper_imports_the_shape_from_at_zoho_only() -> None:
    folder = Path(notifier.keeper.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(FORBIDDEN), (path.name, node.module)


def test_a_renewal_item_is_the_create_item_with_a_new_expiry() -> None:
    def item(expiry: datetime) -> dict[str, object]:
        return at_zoho.crm_watch_item(
            public_url="https://hooks.example.com", subscription_id="sub_" + "a" * 24,
            channel_id="1000", events=("Leads.all",), expiry=expiry, token="t",
            notify_on_related_action=True, return_affected_field_values=False)

    first = item(datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC))
    later = item(datetime(2026, 1, 8, 12, 0, 0, tzinfo=UTC))
    assert first["channel_expiry"] == "2026-01-01T12:00:00+00:00"
    assert {k: v for k, v in first.items() if k != "channel_expiry"} == {
        k: v for k, v in later.items() if k != "channel_expiry"}
    assert first["notify_url"] == "https://hooks.example.com/callbacks/crm/sub_" + "a" * 24
    body = at_zoho.desk_webhook_body(public_url="https://h", subscription_id="sub_x",
                                     events=["Ticket_Add", "Ticket_Update"], secret="s")
    assert body["url"].startswith(at_zoho.desk_webhook_url("https://h", "sub_x", ""))
    assert body["subscriptions"] == {"Ticket_Add": None,
                                     "Ticket_Update": {"includePrevState": True}}
