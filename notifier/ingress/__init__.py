"""The HTTP ingress Zoho calls back: verify, split into events, commit, then answer."""
