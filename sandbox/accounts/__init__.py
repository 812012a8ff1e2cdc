"""Zoho's accounts server: the token endpoint, revocation and the consent page."""
