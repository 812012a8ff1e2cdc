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
    edition: str = "ENTERPRISE"
    is_default: bool = False
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    _listing: list[Webhook] | None = None

    def as_json(self, *, booleans_as_strings: bool = False) -> dict[str, Any]:
        """The object `GET /api/v1/organizations` lists: the 34 fields of Organization.json's
        getOrganizationResponse. Its examples give booleans as strings ("false"):
        `booleans_as_strings` answers that way."""
        flags: dict[str, Any] = {
            "isDefault": self.is_default,
            "isAdminInOrg": True,
            "isPayloadEncryptionEnabled": False,
            "isSandboxPortal": False,
        }
        if booleans_as_strings:
            flags = {k: str(v).lower() for k, v in flags.items()}
        return {
            "id": self.id,
            "companyName": self.company_name,
            "portalName": self.portal_name,
            "portalURL": f"https://desk.zoho.com/support/{self.portal_name}",
            "alias": None,
            "edition": self.edition,
            "description": None,
            "employeeCount": "10",
            "employeeCountRange": "10 - 24",
            "industry": "Software & IT",
            "timeZone": "Etc/UTC",
            "preferredSolution": ["Ticket Management"],
            "migrationFrom": None,
            "preferredCommunicationChannels": ["Email"],
            "designation": None,
            "faviconURL": None,
            "logoURL": None,
            "primaryContact": f"admin@{self.portal_name}.example",
            "phoneNumber": None,
            "mobile": None,
            "fax": None,
            "website": None,
            "street": None,
            "city": None,
            "state": None,
            "zip": None,
            "country": "United States",
            "currencyLocale": "US",
            "currencySymbol": "$",
            "currencyCode": "USD",
            **flags,
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
