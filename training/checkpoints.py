"""Checkpoint folders: atomic publication, retention, and finding the one to resume from.

A checkpoint is written into ``checkpoint-<step>.partial`` and renamed to ``checkpoint-<step>``
only when complete (rename is atomic on one filesystem), with ``training_state.json`` as the last
file written. A process killed mid-save therefore leaves a ``.partial`` folder that is ignored and
cleaned up, never a half-written checkpoint that ``resume_from="latest"`` would pick.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "training_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")
PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int

    def state(self) -> dict[str, Any]:
        return json.loads((self.path / STATE_FILE).read_text(encoding="utf-8"))


def checkpoints_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / CHECKPOINTS_DIR


def list_checkpoints(output_dir: str | Path) -> list[Checkpoint]:
    """Complete checkpoints, oldest first."""
    root = checkpoints_root(output_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _NAME.match(child.name)
        if match and child.is_dir() and (child / STATE_FILE).is_file():
            found.append(Checkpoint(child, int(match.group(1))))
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(output_dir: str | Path) -> Checkpoint | None:
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def resolve_checkpoint(output_dir: str | Path, resume_from: str | Path | None) -> Checkpoint | None:
    """``None`` -> fresh start; ``"latest"`` -> newest complete checkpoint or fresh; a path -> that one."""
    if resume_from is None:
        return None
    if str(resume_from) == "latest":
        return latest_checkpoint(output_dir)
    path = Path(resume_from)
    if not path.is_absolute() and not path.exists():
        path = checkpoints_root(output_dir) / path
    match = _NAME.match(path.name)
    if not match or not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"{resume_from} is not a complete checkpoint folder")
    return Checkpoint(path, int(match.group(1)))


def partial_dir(output_dir: str | Path, step: int) -> Path:
    return checkpoints_root(output_dir) / f"checkpoint-{step}{PARTIAL_SUFFIX}"


def final_dir(output_dir: str | Path, step: int) -> Path:
    return checkpoints_root(output_dir) / f"checkpoint-{step}"


def publish(output_dir: str | Path, step: int, state: dict[str, Any]) -> Checkpoint:
    """Write the state file into the finished partial folder and move it into place."""
    staging = partial_dir(output_dir, step)
    (staging / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
    target = final_dir(output_dir, step)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return Checkpoint(target, step)


def remove_partials(output_dir: str | Path) -> None:
    root = checkpoints_root(output_dir)
    if root.is_dir():
        for child in root.iterdir():
            if child.name.endswith(PARTIAL_SUFFIX) and child.is_dir():
                shutil.rmtree(child)


def prune(output_dir: str | Path, keep: int | None) -> list[Path]:
    """Delete the oldest complete checkpoints so at most ``keep`` remain; returns what was removed."""
    if keep is None:
        return []
    checkpoints = list_checkpoints(output_dir)
    doomed = checkpoints[: max(0, len(checkpoints) - keep)]
    for checkpoint in doomed:
        shutil.rmtree(checkpoint.path)
    return [c.path for c in doomed]


__all__ = [
    "CHECKPOINTS_DIR",
    "STATE_FILE",
    "Checkpoint",
    "checkpoints_root",
    "latest_checkpoint",
    "list_checkpoints",
    "partial_dir",
    "prune",
    "publish",
    "remove_partials",
    "resolve_checkpoint",
]
