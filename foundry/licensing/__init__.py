"""Licensing: the grants under which contributors let the foundry use their assets."""
