"""Plumbing shared by the broker and the notifier: server bootstrap, errors,
configuration, logging, Zoho origins. Nothing here knows about tokens or
notifications."""
