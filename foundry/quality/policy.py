"""Pure rules for reading a quality measurement: the figures relative to their floor and ceiling."""

from __future__ import annotations

from typing import Any

REQUIRED_METRICS = ("gen_balanced_acc", "real_balanced_acc", "chance_balanced", "kid", "kid_real_floor",
                    "precision", "recall", "heldout_loss")


def missing_metrics(metrics: dict[str, Any]) -> list[str]:
    """The figures a measurement must carry that this one lacks (a partial measurement is refused)."""
    return [name for name in REQUIRED_METRICS if not isinstance(metrics.get(name), int | float)
            or isinstance(metrics.get(name), bool)]


def summary_line(metrics: dict[str, Any]) -> str:
    """One line a person can read: prompt-following against chance and ceiling, KID against its floor."""
    relative = relative_figures(metrics)
    nan = float("nan")
    interval = metrics.get("gen_balanced_acc_ci95")
    shown = (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if isinstance(interval, list | tuple) and len(interval) == 2
             else "")
    accuracy = (f"balanced accuracy {metrics.get('gen_balanced_acc', nan):.3f}{shown} "
                f"(chance {metrics.get('chance_balanced', nan):.3f}, "
                f"real ceiling {metrics.get('real_balanced_acc', nan):.3f}")
    parts = [accuracy]
    if relative["times_chance"] is not None and relative["of_ceiling"] is not None:
        parts[0] += f"; {relative['times_chance']:.2f}x chance, {relative['of_ceiling']:.0%} of ceiling"
    parts[0] += ")"
    parts.append(f"KID {metrics.get('kid', nan):.3f} (real floor {metrics.get('kid_real_floor', nan):.3f})")
    parts.append(f"precision {metrics.get('precision', nan):.2f}, recall {metrics.get('recall', nan):.2f}")
    parts.append(f"held-out loss {metrics.get('heldout_loss', nan):.4f}")
    if "images" in metrics:
        parts.append(f"{metrics['images']} held-out prompts")
    return "; ".join(parts)


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
