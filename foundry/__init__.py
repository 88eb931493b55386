"""The licensed-data image foundry: domain core (catalog, licensing, datasets, models, royalties)."""

__version__ = "0.1.0"
