"""Helpers shared by the training-engine tests."""

from __future__ import annotations

import torch
from safetensors.torch import load_file


class Crash(Exception):
    pass


def crash_at(step_to_crash: int):
    def progress(step, *_):
        if step == step_to_crash:
            raise Crash(step)

    return progress


def assert_same_weights(first, second):
    assert first.weight_files.keys() == second.weight_files.keys()
    for name in first.weight_files:
        a, b = load_file(first.model_path / name), load_file(second.model_path / name)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=f"{name}:{key}")
