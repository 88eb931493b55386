"""Interrupted runs resume to the very same weights, in-process and after a real ``kill -9``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.support.training import Crash, assert_same_weights, crash_at
from training import checkpoints
from training.data import load_data_dir, write_data_dir
from training.engine import train
from training.synthetic import shape_examples


@pytest.mark.parametrize("kind", ["base", "finetune", "lora"])
def test_crash_then_resume_matches_an_uninterrupted_run(tmp_path, recipes, pixel_examples, latent_examples, kind):
    if kind == "base":
        recipe = recipes.base(
            max_train_steps=6, checkpoint_every=2, use_ema=True, caption_dropout=0.3, gradient_checkpointing=True
        )
        examples = pixel_examples
    elif kind == "finetune":
        recipe = recipes.finetune(
            max_train_steps=6,
            checkpoint_every=2,
            use_ema=True,
            gradient_accumulation_steps=2,
            lr_scheduler="cosine",
            lr_warmup_steps=2,
            caption_dropout=0.3,
            gradient_checkpointing=True,
        )
        examples = latent_examples
    else:
        recipe = recipes.lora(max_train_steps=6, checkpoint_every=2, use_ema=True, random_flip=True)
        examples = latent_examples

    uninterrupted = train(tmp_path / "straight", recipe, examples)

    with pytest.raises(Crash):
        train(tmp_path / "crashed", recipe, examples, progress=crash_at(5))
    assert checkpoints.latest_checkpoint(tmp_path / "crashed").step == 4
    resumed = train(tmp_path / "crashed", recipe, examples, resume_from="latest")

    assert resumed.resumed_from_step == 4 and resumed.steps_done == 6
    assert resumed.final_loss == pytest.approx(uninterrupted.final_loss, abs=1e-6)
    assert_same_weights(uninterrupted, resumed)
    assert resumed.weights_sha256 == uninterrupted.weights_sha256  # bit-identical on one machine


def _training_run_module(recipe, data_dir, tmp_path) -> list[str]:
    """``-m training.run`` and its arguments for ``recipe`` on ``data_dir`` (the recipe saved in ``tmp_path``)."""
    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(recipe.to_json())
    return ["-m", "training.run", "--recipe-json", str(recipe_file), "--data-dir", str(data_dir)]


def _wait_for_step(progress_file, step, process, timeout_s=180.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if progress_file.exists():
            lines = progress_file.read_text().splitlines()
            if lines and json.loads(lines[-1])["step"] >= step:
                return
        if process.poll() is not None:
            raise AssertionError(f"training finished (rc={process.returncode}) before step {step} was seen")
        time.sleep(0.02)
    raise AssertionError(f"step {step} not reached within {timeout_s}s")


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_matches_an_uninterrupted_run(
    tmp_path, recipes, latent_examples, child_env, run_child, python, repo_root
):
    data_dir = write_data_dir(tmp_path / "data", latent_examples)
    recipe = recipes.finetune(max_train_steps=40, checkpoint_every=4, use_ema=True)
    output = tmp_path / "killed"
    progress_file = tmp_path / "progress.jsonl"
    command = [
        python,
        *_training_run_module(recipe, data_dir, tmp_path),
        "--output",
        str(output),
        "--progress-jsonl",
        str(progress_file),
    ]

    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, cwd=repo_root, env=child_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_step(progress_file, 9, first)
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL
    assert not (output / "training_result.json").exists()
    killed_at = checkpoints.latest_checkpoint(output).step
    assert 8 <= killed_at < 40

    second = run_child(command + ["--resume-from", "latest"])
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = json.loads(second.stdout)
    assert resumed["resumed_from_step"] == killed_at and resumed["steps_done"] == 40

    reference = train(tmp_path / "straight", recipe, load_data_dir(data_dir))
    assert resumed["weights_sha256"] == reference.weights_sha256
    assert resumed["weight_files"] == reference.weight_files


@pytest.mark.slow
def test_two_process_accelerate_launch_on_cpu(tmp_path, recipes, run_child, python):
    data_dir = write_data_dir(tmp_path / "data", shape_examples(8, size=32, seed=5))
    recipe = recipes.base(
        train_batch_size=2,
        max_train_steps=4,
        checkpoint_every=2,
        use_ema=True,
        validation_every=2,
        validation_prompts=("a red circle on a blue background",),
        validation_inference_steps=2,
    )
    launch = [
        python,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        *_training_run_module(recipe, data_dir, tmp_path),
    ]
    done = run_child(launch + ["--output", str(tmp_path / "out")])
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)  # printed once, by the main process
    assert result["steps_done"] == 4
    latest = checkpoints.latest_checkpoint(tmp_path / "out")
    assert latest.state()["num_processes"] == 2
    assert (latest.path / "random_states_1.pkl").is_file()
    assert sorted(os.path.basename(p) for p in result["sample_grids"]) == [
        "final.png",
        "step-000002.png",
        "step-000004.png",
    ]

    # A revoked id in one process's share stops both processes, without a hang.
    examples = load_data_dir(data_dir)
    revoked = tmp_path / "revoked.txt"
    revoked.write_text(examples[-1].example_id + "\n")
    stopped = run_child(launch + ["--output", str(tmp_path / "gated"), "--revoked-ids-file", str(revoked)])
    assert stopped.returncode != 0
    assert "no longer permitted" in stopped.stderr
    assert not (tmp_path / "gated" / "training_result.json").exists()
