"""A local stand-in for Zoho's accounts server, CRM notifications API and Desk webhooks API.

See `sandbox/README.md` for the control API and its Python client.
"""
