"""The keeper: renews CRM channels before they expire, reconciles subscriptions with what
Zoho lists, and says when it cannot (notifier/keeper/README.md)."""
