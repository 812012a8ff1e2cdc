"""Desk organisations (portals) and their webhooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Webhook = dict[str, Any]


@dataclass
class DeskOrg:
    id: str
    company_name: str
    portal_name: str
    edition: str = "Enterprise"
    is_default: bool = False
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    _listing: list[Webhook] | None = None

    def as_json(self) -> dict[str, Any]:
        """The object `GET /api/v1/organizations` lists."""
        return {
            "id": self.id,
            "companyName": self.company_name,
            "portalName": self.portal_name,
            "portalURL": f"https://desk.zoho.com/support/{self.portal_name}",
            "edition": self.edition,
            "isDefault": self.is_default,
            "isAdminInOrg": True,
            "isPayStatus": True,
            "isSandboxPortal": False,
            "currencyLocale": "US",
            "timeZone": "UTC",
            "logoURL": None,
            "faviconURL": None,
            "employeeCount": "10",
            "description": None,
            "country": "US",
        }

    def put_webhook(self, webhook: Webhook) -> None:
        self.webhooks[webhook["id"]] = webhook
        self._listing = None

    def delete_webhook(self, webhook_id: str) -> Webhook | None:
        webhook = self.webhooks.pop(webhook_id, None)
        self._listing = None
        return webhook

    def listing(self) -> list[Webhook]:
        if self._listing is None:
            self._listing = list(self.webhooks.values())
        return self._listing
