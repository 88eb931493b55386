"""``python -m foundry.cli``."""

from foundry.cli import app

app()
