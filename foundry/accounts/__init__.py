"""Accounts: the brand customers (tenants) the foundry serves."""
