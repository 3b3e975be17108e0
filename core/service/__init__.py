"""Cronium's front door: the HTTP service (webhooks, API tokens) and the store of what
Prefect has no model for (users, tokens, the audit log) in Prefect's own database."""
