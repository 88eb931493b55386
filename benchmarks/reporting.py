"""The last step of every benchmark: its JSON report printed on stdout and written where it is kept."""

from __future__ import annotations

import json
from pathlib import Path


def publish(report: dict, out: Path) -> dict:
    """Write ``report`` to ``out`` (folders made as needed) and print it; returns it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return report


def chosen_names(text: str, known: dict, what: str) -> list[str]:
    """A comma-separated ``--variants``/``--shapes`` argument as names, each checked against ``known``."""
    names = [name for name in text.split(",") if name]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise SystemExit(f"unknown {what} {unknown}; choose from {sorted(known)}")
    return names
