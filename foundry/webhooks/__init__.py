"""Webhooks: a tenant's endpoints, the events sent to them, and every delivery attempt."""
