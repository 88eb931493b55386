"""Measured image quality: frozen evaluators trained on the licensed catalog, and what they say of each model."""
