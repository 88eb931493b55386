"""Prices per image, per model and tenant, and the contributor pool's share of each charge."""
