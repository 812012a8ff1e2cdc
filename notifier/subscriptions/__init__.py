"""Subscriptions: CRM channels and Desk webhooks the notifier keeps pointing at its ingress."""
