"""Model rules: when may a model call itself licensed-only, and may it still serve?"""

from __future__ import annotations

from datetime import datetime, timedelta

REVOCATION_POLICIES = ("keep_serving", "stop_after_grace")


def is_licensed_only(*, kind: str, trained_on_snapshot: bool, parent_licensed_only: bool | None) -> bool:
    if kind == "external" or not trained_on_snapshot:
        return False
    if kind == "base":
        return parent_licensed_only is None
    return bool(parent_licensed_only)


def serving_problem(*, revocation_policy: str, grace_days: int, rights_affected_at: datetime | None,
                    now: datetime) -> str | None:
    """Why a model may no longer serve, or None. The default policy keeps serving (and paying)."""
    if rights_affected_at is None or revocation_policy == "keep_serving":
        return None
    if now >= rights_affected_at + timedelta(days=grace_days):
        return (f"rights to some of its training images were withdrawn on {rights_affected_at.date()} and its "
                f"{grace_days}-day grace period has ended")
    return None
