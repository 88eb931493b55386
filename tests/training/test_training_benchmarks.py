"""The benchmark scripts run as plain scripts (they find the repo themselves) and report JSON."""

from __future__ import annotations

import json
import subprocess

import pytest


def _run_script(python, repo_root, child_env, tmp_path, *args):
    # Run from an unrelated folder without PYTHONPATH: the scripts must locate the repo on their own.
    env = {k: v for k, v in child_env.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [python, *args], check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.slow
def test_gpu_benchmark_smoke_mode_runs_on_cpu(python, repo_root, child_env, tmp_path):
    report = _run_script(
        python, repo_root, child_env, tmp_path, str(repo_root / "benchmarks" / "gpu_train.py"), "--smoke"
    )
    for side in ("bare", "ours"):
        assert report[side]["images_per_s"] > 0
        assert report[side]["measured_steps"] == 2
    assert report["ours"]["cached_latents"] == 2 and report["ours"]["cached_text_embeddings"] == 2
    assert report["ours"]["attention"] == "sdpa"
    assert report["ratio"] > 0 and "compile_error" not in report


@pytest.mark.slow
def test_cpu_benchmark_reports_both_loops(python, repo_root, child_env, tmp_path):
    report = _run_script(
        python,
        repo_root,
        child_env,
        tmp_path,
        str(repo_root / "benchmarks" / "train.py"),
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--images",
        "4",
        "--repeats",
        "1",
    )
    assert report["reference_images_per_s"] > 0 and report["engine_images_per_s"] > 0
    assert report["ratio"] > 0
