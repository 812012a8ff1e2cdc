"""Zoho CRM under `/crm/v8`: instant notifications, records and their reads, COQL."""
