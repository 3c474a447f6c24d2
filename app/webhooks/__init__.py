"""Webhooks: a tenant's receivers of job and study events, signed as Standard Webhooks, sent from an outbox."""
