"""Zoho Desk under `/api/v1`: organisations, webhooks, their callbacks, ticket search."""
