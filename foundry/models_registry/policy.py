"""When may a model call itself licensed-only? Only when every ancestor trained on our snapshots."""

from __future__ import annotations


def is_licensed_only(*, kind: str, trained_on_snapshot: bool, parent_licensed_only: bool | None) -> bool:
    if kind == "external" or not trained_on_snapshot:
        return False
    if kind == "base":
        return parent_licensed_only is None
    return bool(parent_licensed_only)
