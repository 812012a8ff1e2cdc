"""The notifier: streams and manages a user's Zoho notification subscriptions
(CRM "actions/watch" channels, Desk webhooks) with tokens from the token broker."""
