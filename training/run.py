"""Command-line entry: train a recipe on a data folder, single- or multi-process.

    python -m training.run --recipe-json recipe.json --data-dir DATA --output OUT [--resume-from latest]
    accelerate launch --multi_gpu --num_processes 2 -m training.run --recipe-json ... (same arguments)

``--multi_gpu`` makes accelerate start the processes with torchrun; on a machine without CUDA
this module then selects accelerate's CPU mode, so the processes talk over gloo
(``accelerate launch --cpu`` alone would start a single process unless mpirun is configured).

``DATA`` holds images and ``captions.jsonl`` (see :func:`training.data.load_data_dir`). A worker
that runs this as a subprocess talks to it through files:

* ``--progress-jsonl FILE``: one JSON object per optimizer step is appended (main process);
* ``--cancel-file FILE``: the job stops (after a checkpoint, when enabled) once FILE exists;
* ``--revoked-ids-file FILE``: ids listed there (JSON list, or one per line) stop the job before
  any batch containing them is read; the file is re-read whenever it changes.

Exit status: 0 done (the result JSON is printed on stdout), 3 cancelled, 4 stopped by the gate.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

EXIT_CANCELLED = 3
EXIT_GATE_STOPPED = 4


class RevokedExampleError(RuntimeError):
    """A batch contained an example whose use is no longer permitted."""

    def __init__(self, example_ids: list[str]) -> None:
        super().__init__(f"examples no longer permitted for training: {', '.join(example_ids)}")
        self.example_ids = example_ids


class RevokedIdsGate:
    """``before_batch`` hook backed by a file of revoked ids, re-read when its mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: float | None = None
        self._revoked: frozenset[str] = frozenset()

    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._mtime, self._revoked = None, frozenset()
            return
        if mtime == self._mtime:
            return
        text = self.path.read_text(encoding="utf-8").strip()
        if text.startswith("["):
            ids = json.loads(text)
        else:
            ids = [line.strip() for line in text.splitlines() if line.strip()]
        self._mtime, self._revoked = mtime, frozenset(str(i) for i in ids)

    def __call__(self, example_ids: list[str]) -> None:
        self._refresh()
        hits = [i for i in example_ids if i in self._revoked]
        if hits:
            raise RevokedExampleError(hits)


class ProgressFile:
    """``progress`` hook appending one JSON line per step, flushed so a watcher sees it at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, step: int, total: int, loss: float, images_per_s: float, eta_s: float) -> None:
        record = {
            "step": step,
            "total": total,
            "loss": loss,
            "images_per_s": images_per_s,
            "eta_s": None if math.isnan(eta_s) else eta_s,  # NaN is not JSON
            "time": time.time(),
        }
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe-json", required=True, type=Path, help="recipe as written by Recipe.to_json()")
    parser.add_argument("--data-dir", required=True, type=Path, help="images plus captions.jsonl")
    parser.add_argument("--output", required=True, type=Path, help="output folder (checkpoints, samples, model)")
    parser.add_argument("--resume-from", default=None, help="'latest' or a checkpoint folder")
    parser.add_argument("--progress-jsonl", type=Path, default=None)
    parser.add_argument("--cancel-file", type=Path, default=None)
    parser.add_argument("--revoked-ids-file", type=Path, default=None)
    return parser.parse_args(argv)


def _use_cpu_processes_without_cuda() -> None:
    """Under torchrun on a CUDA-less machine, tell accelerate to form a gloo CPU process group."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "ACCELERATE_USE_CPU" not in os.environ:
        import torch

        if not torch.cuda.is_available():
            os.environ["ACCELERATE_USE_CPU"] = "true"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _use_cpu_processes_without_cuda()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from recipes import Recipe
    from training.data import load_data_dir
    from training.engine import StoppedByPeer, TrainingCancelled, train

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    recipe = Recipe.from_json(args.recipe_json.read_text(encoding="utf-8"))
    examples = load_data_dir(args.data_dir)
    cancel_file = args.cancel_file
    try:
        result = train(
            args.output,
            recipe,
            examples,
            before_batch=RevokedIdsGate(args.revoked_ids_file) if args.revoked_ids_file else None,
            progress=ProgressFile(args.progress_jsonl) if args.progress_jsonl else None,
            should_cancel=(lambda: cancel_file.exists()) if cancel_file else None,
            resume_from=args.resume_from,
        )
    except TrainingCancelled as cancelled:
        logging.getLogger(__name__).warning("%s; checkpoint: %s", cancelled, cancelled.checkpoint)
        return EXIT_CANCELLED
    except (RevokedExampleError, StoppedByPeer) as stopped:
        logging.getLogger(__name__).error("%s", stopped)
        return EXIT_GATE_STOPPED
    finally:
        _leave_process_group()
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(json.dumps(result.to_dict(), indent=2))
    return 0


def _leave_process_group() -> None:
    """Tear down torch.distributed cleanly when launched with several processes."""
    from accelerate import PartialState

    state = PartialState()
    if state.use_distributed:
        state.wait_for_everyone()
        state.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
