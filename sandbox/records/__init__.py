"""The records Zoho holds per org (CRM modules, Desk tickets and contacts), indexed."""
