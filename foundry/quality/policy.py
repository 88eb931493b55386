"""Pure rules for reading a quality measurement: the figures relative to their floor and ceiling."""

from __future__ import annotations

from typing import Any

REQUIRED_METRICS = ("gen_balanced_acc", "real_balanced_acc", "chance_balanced", "kid", "kid_real_floor",
                    "precision", "recall", "heldout_loss")


def missing_metrics(metrics: dict[str, Any]) -> list[str]:
    """The figures a measurement must carry that this one lacks (a partial measurement is refused)."""
    return [name for name in REQUIRED_METRICS if not isinstance(metrics.get(name), int | float)
            or isinstance(metrics.get(name), bool)]


def relative_figures(metrics: dict[str, Any]) -> dict[str, float | None]:
    """Prompt-following as a share of the real ceiling and as a multiple of chance; KID above its floor."""
    generated, ceiling, chance = (metrics.get(k) for k in ("gen_balanced_acc", "real_balanced_acc",
                                                            "chance_balanced"))
    kid, floor = metrics.get("kid"), metrics.get("kid_real_floor")
    return {
        "of_ceiling": round(generated / ceiling, 4) if generated is not None and ceiling else None,
        "times_chance": round(generated / chance, 4) if generated is not None and chance else None,
        "kid_over_floor": round(kid - floor, 4) if kid is not None and floor is not None else None,
    }
