"""Withdrawals of rights: the opt-out flow across licensing, the catalog, datasets and the registry."""
