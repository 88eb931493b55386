"""End-to-end training runs on tiny models: the three recipes, the hooks, checkpoints and cancel."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, IFPipeline, StableDiffusionPipeline
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from recipes import finetune_recipe
from training import checkpoints
from training.data import TrainingExample
from training.engine import TrainingCancelled, train, weights_digest
from training.pipelines import TRIGGER_FILE, load_pipeline
from training.synthetic import shape_examples


class Recorder:
    """Collects hook calls and image loads, in order."""

    def __init__(self, examples):
        self.gated: list[list[str]] = []
        self.loaded: list[str] = []
        self.progress: list[tuple] = []
        self.examples = [TrainingExample(e.example_id, self._recording_loader(e), e.caption) for e in examples]

    def _recording_loader(self, example):
        def load():
            self.loaded.append(example.example_id)
            return example.load_image()

        return load

    def before_batch(self, ids):
        self.gated.append(list(ids))

    def on_progress(self, *values):
        self.progress.append(values)


def test_base_recipe_learns_and_saves_a_loadable_if_pipeline(tmp_path, recipes):
    examples = shape_examples(4, size=32, seed=7)
    recipe = recipes.base(
        train_batch_size=4,
        max_train_steps=36,
        learning_rate=3e-3,
        snr_gamma=None,
        caption_dropout=0.0,
        use_ema=False,
        validation_every=18,
        validation_prompts=(examples[0].caption,),
    )
    recorder = Recorder(examples)
    result = train(tmp_path, recipe, recorder.examples, progress=recorder.on_progress)

    losses = [values[2] for values in recorder.progress]
    assert [values[0] for values in recorder.progress] == list(range(1, 37))
    assert all(values[1] == 36 for values in recorder.progress)
    assert all(math.isfinite(loss) for loss in losses)
    # Four examples seen nine times each: the (noisy, per-batch) loss must come down clearly.
    assert np.mean(losses[-8:]) < 0.8 * np.mean(losses[:6])
    assert recorder.progress[-1][3] > 0  # images/s
    assert recorder.progress[-1][4] == 0  # nothing left

    assert result.steps_done == 36 and result.final_loss == losses[-1]
    assert result.model_path == tmp_path / "pipeline" and result.model_format == "diffusers_pipeline"
    assert result.recipe == recipe.to_dict()
    assert result.text_encoder_origin["kind"] == "trained_from_scratch"
    assert sorted(p.name for p in result.sample_grids) == ["final.png", "step-000018.png", "step-000036.png"]
    assert all(p.is_file() for p in result.sample_grids)
    assert (result.weights_sha256, result.weight_files) == weights_digest(result.model_path)
    assert set(result.weight_files) == {"unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"}

    pipeline = DiffusionPipeline.from_pretrained(result.model_path)
    assert isinstance(pipeline, IFPipeline)
    assert pipeline.unet.config.out_channels == 2 * pipeline.unet.config.in_channels == 6
    assert pipeline.scheduler.config.variance_type == "learned_range"
    assert pipeline.scheduler.config.prediction_type == "v_prediction"
    pipeline.scheduler.set_timesteps(25)
    assert pipeline.scheduler.timesteps[-1] == 0  # the last step adds no (learned-variance) noise
    pipeline.set_progress_bar_config(disable=True)
    image = pipeline(
        examples[0].caption, num_inference_steps=4, generator=torch.Generator().manual_seed(0), clean_caption=False
    ).images[0]
    assert isinstance(image, Image.Image) and image.size == (32, 32)

    # The engine's own base model is itself a valid starting point for fine-tuning.
    tuned = train(
        tmp_path / "tuned",
        finetune_recipe(str(result.model_path), max_train_steps=2, train_batch_size=2, checkpoint_every=0),
        examples,
    )
    assert tuned.text_encoder_origin["kind"] == "inherited_frozen"
    assert isinstance(DiffusionPipeline.from_pretrained(tuned.model_path), IFPipeline)


def test_finetune_trains_the_unet_of_a_stable_diffusion_folder(tmp_path, recipes, latent_examples, tiny_sd_path):
    recipe = recipes.finetune(
        use_ema=True, gradient_accumulation_steps=2, validation_prompts=("a red circle",), validation_inference_steps=2
    )
    recorder = Recorder(latent_examples)
    result = train(tmp_path, recipe, recorder.examples, before_batch=recorder.before_batch)

    assert result.model_format == "diffusers_pipeline" and result.steps_done == 6
    assert result.text_encoder_origin["kind"] == "inherited_frozen"
    # Latents are cached: each image is read once although every example is seen several times.
    assert sorted(recorder.loaded) == sorted({i for ids in recorder.gated for i in ids})
    assert sum(len(ids) for ids in recorder.gated) == 6 * 2 * 3

    original = load_file(tiny_sd_path / "unet" / "diffusion_pytorch_model.safetensors")
    tuned = load_file(result.model_path / "unet" / "diffusion_pytorch_model.safetensors")
    assert any(not torch.equal(original[k], tuned[k]) for k in original)
    # Frozen parts are written back unchanged, in their stored precision.
    for part in ("vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        before, after = load_file(tiny_sd_path / part), load_file(result.model_path / part)
        assert all(torch.equal(before[k], after[k]) for k in before)

    pipeline = DiffusionPipeline.from_pretrained(result.model_path)
    assert isinstance(pipeline, StableDiffusionPipeline)
    pipeline.set_progress_bar_config(disable=True)
    image = pipeline("a red circle", num_inference_steps=2, height=64, width=64).images[0]
    assert image.size == (64, 64)


def test_lora_saves_adapter_weights_that_load_into_the_base_pipeline(tmp_path, recipes, latent_examples, tiny_sd_path):
    # attention and ResNet layers together, as custom models train them
    result = train(tmp_path, recipes.lora(max_train_steps=5, lora_target_modules=("to_q", "to_k", "to_v", "to_out.0",
                                                                                  "conv1", "conv2")),
                   latent_examples)

    assert result.model_format == "diffusers_lora"
    assert list(result.weight_files) == ["pytorch_lora_weights.safetensors"]
    adapter = load_file(result.model_path / "pytorch_lora_weights.safetensors")
    assert adapter and all(key.startswith("unet.") for key in adapter)
    assert any("to_q" in key for key in adapter) and any("resnets" in key for key in adapter)
    assert any(key.endswith("lora_B.weight") and tensor.abs().sum() > 0 for key, tensor in adapter.items())

    pipeline = DiffusionPipeline.from_pretrained(tiny_sd_path)
    pipeline.set_progress_bar_config(disable=True)
    before = pipeline(
        "a red circle", num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0)
    ).images
    pipeline.load_lora_weights(str(result.model_path))
    after = pipeline(
        "a red circle", num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0)
    ).images
    assert after.shape == (1, 64, 64, 3)
    assert not np.allclose(before, after)
    # every trained layer arrived, with its trained weights: none is dropped by a key format mismatch
    loaded = {"unet." + re.sub(r"\.default(_\d+)?", "", name): tensor for name, tensor in pipeline.unet.state_dict().items()
              if "lora_B" in name}
    saved = {key.replace(".lora.up.", ".lora_B."): tensor for key, tensor in adapter.items()
             if "lora_B" in key or "lora.up" in key}
    assert len(saved) == len(adapter) // 2 and any("attn" in key for key in saved)
    assert set(loaded) == set(saved)
    assert all(torch.equal(loaded[key], saved[key]) for key in saved)


def test_gated_ids_are_exactly_the_ids_whose_images_enter_batches(tmp_path, recipes, pixel_examples):
    recorder = Recorder(pixel_examples)
    train(
        tmp_path,
        recipes.base(max_train_steps=4, gradient_accumulation_steps=2),
        recorder.examples,
        before_batch=recorder.before_batch,
    )
    assert len(recorder.gated) == 8
    assert all(len(ids) == 3 for ids in recorder.gated)
    # Pixel models read each image once, when the gate first cleared it; later epochs use the cached pixels.
    gated = [i for ids in recorder.gated for i in ids]
    assert recorder.loaded == list(dict.fromkeys(gated)) and len(set(gated)) < len(gated)


class GateClosed(Exception):
    pass


def test_before_batch_raising_stops_training_before_the_batch_is_read(tmp_path, recipes, pixel_examples):
    recorder = Recorder(pixel_examples)
    calls = []

    def gate(ids):
        calls.append(list(ids))
        if len(calls) == 3:
            raise GateClosed(ids)
        recorder.before_batch(ids)

    with pytest.raises(GateClosed) as stopped:
        train(
            tmp_path,
            recipes.base(max_train_steps=6, checkpoint_every=1),
            recorder.examples,
            before_batch=gate,
            progress=recorder.on_progress,
        )
    assert stopped.value.args[0] == calls[2]
    assert len(calls) == 3  # nothing after the refusal
    assert recorder.loaded == [i for ids in recorder.gated for i in ids]  # only the two cleared batches
    assert len(recorder.loaded) == 6
    assert [values[0] for values in recorder.progress] == [1, 2]
    assert not (tmp_path / "pipeline").exists()
    assert [c.step for c in checkpoints.list_checkpoints(tmp_path)] == [1, 2]


def test_checkpoint_retention_keeps_at_most_the_limit(tmp_path, recipes, latent_examples):
    seen = []

    def watch(step, *_):
        seen.append(len(checkpoints.list_checkpoints(tmp_path)))

    recipe = recipes.lora(max_train_steps=5, checkpoint_every=1, checkpoints_total_limit=2, gradient_checkpointing=True)
    train(tmp_path, recipe, latent_examples, progress=watch)
    assert max(seen) <= 2
    assert [c.step for c in checkpoints.list_checkpoints(tmp_path)] == [4, 5]
    assert not list(checkpoints.checkpoints_root(tmp_path).glob("*.partial"))


def test_cancel_saves_a_checkpoint_and_the_job_can_resume(tmp_path, recipes, latent_examples):
    recipe = recipes.finetune(max_train_steps=6, checkpoint_every=4, use_ema=True)
    steps = []

    def cancel_after_three():
        return len(steps) >= 3

    with pytest.raises(TrainingCancelled) as cancelled:
        train(
            tmp_path,
            recipe,
            latent_examples,
            progress=lambda step, *_: steps.append(step),
            should_cancel=cancel_after_three,
        )
    assert cancelled.value.step == 3
    assert cancelled.value.checkpoint == tmp_path / "checkpoints" / "checkpoint-3"
    assert steps == [1, 2, 3]

    with pytest.raises(FileExistsError):
        train(tmp_path, recipe, latent_examples)  # a fresh start must not mix with old checkpoints
    result = train(tmp_path, recipe, latent_examples, resume_from="latest")
    assert result.resumed_from_step == 3 and result.steps_done == 6


def test_resume_refuses_a_different_recipe(tmp_path, recipes, latent_examples):
    train(tmp_path, recipes.lora(max_train_steps=2, checkpoint_every=1), latent_examples)
    with pytest.raises(ValueError, match="differs"):
        train(
            tmp_path,
            recipes.lora(max_train_steps=2, checkpoint_every=1, learning_rate=1e-2),
            latent_examples,
            resume_from="latest",
        )


@dataclass
class BrandExample:
    example_id: str
    load_image: object
    caption: str
    is_brand: bool = True


def test_a_trigger_word_gets_its_own_token_saved_and_loaded_with_the_adapter(tmp_path, recipes, latent_examples,
                                                                             tiny_sd_path):
    brand = [BrandExample(e.example_id, e.load_image, f"zorb {e.caption}") for e in latent_examples]
    result = train(tmp_path, recipes.lora(max_train_steps=3, brand_trigger="zorb"), brand)
    assert set(result.weight_files) == {"pytorch_lora_weights.safetensors", TRIGGER_FILE}
    with safe_open(str(result.model_path / TRIGGER_FILE), framework="pt") as stored:
        assert stored.metadata()["token"] == "zorb"
        row = stored.get_tensor("embedding")

    plain = load_pipeline(Path(tiny_sd_path), device="cpu")
    custom = load_pipeline(Path(tiny_sd_path), adapters=(result.model_path,), device="cpu")
    assert "zorb" not in plain.tokenizer.tokenize("a happy zorb")  # the base splits the new name into pieces
    pieces = custom.tokenizer.tokenize("a happy zorb waving")
    assert pieces.count("zorb") == 1 and pieces == [*plain.tokenizer.tokenize("a happy"), "zorb",
                                                   *plain.tokenizer.tokenize("waving")]
    token_id = custom.tokenizer.convert_tokens_to_ids("zorb")
    assert token_id >= len(plain.tokenizer)
    embeddings = custom.text_encoder.get_input_embeddings().weight
    assert torch.equal(embeddings[token_id], row)
    mean_norm = plain.text_encoder.get_input_embeddings().weight.norm(dim=1).mean()
    assert abs(float(row.norm() - mean_norm)) < 1e-3 * float(mean_norm)
    # every other row is the base's own: the text encoder stays frozen
    assert torch.equal(embeddings[: len(plain.tokenizer)], plain.text_encoder.get_input_embeddings().weight)


def _saved_trigger_row(result) -> torch.Tensor:
    with safe_open(str(result.model_path / TRIGGER_FILE), framework="pt") as stored:
        return stored.get_tensor("embedding")


def test_a_learnt_trigger_row_moves_alone_and_resumes_to_the_same_row(tmp_path, recipes, latent_examples,
                                                                       tiny_sd_path):
    brand = [BrandExample(e.example_id, e.load_image, f"zorb {e.caption}") for e in latent_examples]
    fixed = _saved_trigger_row(train(tmp_path / "fixed", recipes.lora(max_train_steps=4, brand_trigger="zorb"), brand))
    recipe = recipes.lora(max_train_steps=4, brand_trigger="zorb", trigger_embedding_lr=5e-2, checkpoint_every=2)
    learnt_result = train(tmp_path / "learnt", recipe, brand)
    learnt = _saved_trigger_row(learnt_result)
    assert not torch.allclose(learnt, fixed)  # the same seeded start, moved by its own gradient

    custom = load_pipeline(Path(tiny_sd_path), adapters=(learnt_result.model_path,), device="cpu")
    plain = load_pipeline(Path(tiny_sd_path), device="cpu")
    embeddings = custom.text_encoder.get_input_embeddings().weight
    assert torch.equal(embeddings[custom.tokenizer.convert_tokens_to_ids("zorb")], learnt)
    assert torch.equal(embeddings[: len(plain.tokenizer)], plain.text_encoder.get_input_embeddings().weight)

    steps = []
    with pytest.raises(TrainingCancelled):
        train(tmp_path / "resumed", recipe, brand, progress=lambda step, *_: steps.append(step),
              should_cancel=lambda: len(steps) >= 2)
    resumed = train(tmp_path / "resumed", recipe, brand, resume_from="latest")
    assert resumed.resumed_from_step == 2
    assert torch.allclose(_saved_trigger_row(resumed), learnt, atol=1e-6)


def test_a_learnt_trigger_row_needs_a_trigger(recipes):
    with pytest.raises(ValueError, match="trigger_embedding_lr"):
        recipes.lora(max_train_steps=4, trigger_embedding_lr=1e-2)


class Unreadable(Exception):
    pass


def _unreadable(example_id: str):
    def load():
        raise Unreadable(example_id)

    return load


@pytest.mark.parametrize("kind", ["base", "finetune"])
def test_withheld_examples_keep_their_slots_but_are_never_read_gated_or_learnt_from(
        tmp_path, recipes, pixel_examples, latent_examples, kind):
    examples = pixel_examples if kind == "base" else latent_examples
    recipe = recipes.base(max_train_steps=6) if kind == "base" else recipes.finetune(max_train_steps=6)
    withheld = {examples[1].example_id, examples[4].example_id}
    full = train(tmp_path / "full", recipe, examples)
    paired = train(tmp_path / "paired", recipe, examples, withheld=withheld)
    # The same run with the withheld examples' images unreadable and their captions replaced: were any of
    # their pixels or words used (a batch, the tokenizer, a cache), it would fail or end at other weights.
    recorder = Recorder([e if e.example_id not in withheld
                         else TrainingExample(e.example_id, _unreadable(e.example_id), "zebra violin on mars")
                         for e in examples])
    blind = train(tmp_path / "blind", recipe, recorder.examples, withheld=withheld,
                  before_batch=recorder.before_batch)
    assert blind.weights_sha256 == paired.weights_sha256
    assert paired.weights_sha256 != full.weights_sha256
    gated = {i for ids in recorder.gated for i in ids}
    assert gated == {e.example_id for e in examples} - withheld
    assert not withheld & set(recorder.loaded)


def test_withheld_examples_are_checked_and_a_resume_keeps_them(tmp_path, recipes, pixel_examples):
    ids = [e.example_id for e in pixel_examples]
    with pytest.raises(ValueError, match="among the training examples"):
        train(tmp_path / "unknown", recipes.base(), pixel_examples, withheld={"not-an-example"})
    with pytest.raises(ValueError, match="every training example"):
        train(tmp_path / "all", recipes.base(), pixel_examples, withheld=set(ids))
    train(tmp_path / "run", recipes.base(max_train_steps=4, checkpoint_every=2), pixel_examples, withheld={ids[0]})
    with pytest.raises(ValueError, match="withheld other examples"):
        train(tmp_path / "run", recipes.base(max_train_steps=4, checkpoint_every=2), pixel_examples,
              resume_from="latest", withheld={ids[1]})


def test_a_pooled_prompt_base_trains_draws_is_featurized_and_takes_an_adapter(tmp_path, recipes, pixel_examples):
    """The presets' UNet adds the attention-pooled prompt to the timestep embedding: every step of the
    product (train, save, load, draw, influence features, a customer's LoRA) must take it."""
    from dataclasses import replace

    from provenance.influence import InfluenceConfig
    from recipes import PRESETS, lora_recipe
    from training.attribution_features import Attributor

    assert PRESETS["quality"]["model_shape"].unet_pooled_text and PRESETS["demo"]["model_shape"].unet_pooled_text
    shape = replace(recipes.base().model_shape, unet_pooled_text=True)
    result = train(tmp_path / "base", recipes.base(model_shape=shape, max_train_steps=4), pixel_examples)
    saved = load_file(result.model_path / "unet" / "diffusion_pytorch_model.safetensors")
    assert any(name.startswith("add_embedding.") for name in saved)  # the pooling is learnt and saved

    pipeline = load_pipeline(result.model_path, device="cpu")
    assert pipeline.unet.config.addition_embed_type == "text"
    pipeline.set_progress_bar_config(disable=True)
    image = pipeline(pixel_examples[0].caption, num_inference_steps=3, generator=torch.Generator().manual_seed(0),
                     clean_caption=False).images[0]
    assert image.size == (32, 32)
    # the pooled path carries the prompt: the same noise under two prompts gives two different predictions
    sample, step = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)), torch.tensor([500])
    states = [pipeline.encode_prompt(e.caption, do_classifier_free_guidance=False)[0] for e in pixel_examples[:2]]
    pooled = pipeline.unet.add_embedding
    assert not torch.allclose(pooled(states[0]), pooled(states[1]))
    with torch.no_grad():
        first, second = (pipeline.unet(sample, step, encoder_hidden_states=s).sample for s in states)
    assert not torch.allclose(first, second)

    features = Attributor(pipeline, InfluenceConfig(timesteps=(250, 750), projection_dim=64, normalisation="none",
                                                    payment_timesteps=None)).features_of_many(
        (e.load_image(), e.caption) for e in pixel_examples[:2])
    assert features.shape == (2, 64) and np.isfinite(features).all() and not np.allclose(features[0], features[1])

    adapter = train(tmp_path / "lora", lora_recipe(str(result.model_path), max_train_steps=2, train_batch_size=2,
                                                   checkpoint_every=0), pixel_examples)
    assert adapter.model_format == "diffusers_lora"
    tuned = load_pipeline(result.model_path, device="cpu")
    tuned.load_lora_weights(str(adapter.model_path))
    tuned.set_progress_bar_config(disable=True)
    assert tuned(pixel_examples[0].caption, num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                 clean_caption=False).images[0].size == (32, 32)


def test_planned_steps_fill_the_budget_in_whole_tens_and_never_exceed_the_recipe():
    from training.engine import BUDGET_MARGIN, budget_probe, planned_steps

    assert budget_probe(650) == (5, 65) and budget_probe(4000) == (5, 100) and budget_probe(60) == (5, 20)
    # 300 s, 30 spent at the probe's step 65, 0.5 s a step: (300 * margin - 30) / 0.5 steps more, in tens
    more = int((300 * BUDGET_MARGIN - 30) / 0.5) // 10 * 10
    assert planned_steps(10_000, 300, 30, 65, 0.5) == 65 + more
    assert planned_steps(500, 300, 30, 65, 0.5) == 500  # the recipe's steps fit: nothing changes
    assert planned_steps(500, 300, 400, 65, 0.5) == 65  # the budget is spent: stop at the probe


def test_a_minutes_budget_plans_the_steps_ends_the_schedule_there_and_a_resume_keeps_the_plan(
        tmp_path, recipes, pixel_examples, monkeypatch):
    from training import engine
    from training.engine import DiffusionTrainer

    # a budget that fits: the recipe's steps, the plan recorded
    roomy = train(tmp_path / "roomy", recipes.base(max_train_steps=24, max_train_minutes=60.0), pixel_examples)
    assert roomy.steps_done == 24
    assert roomy.budget["planned_steps"] == 24 and roomy.budget["probe_steps"] == [5, 20]
    assert roomy.budget["seconds_per_step"] > 0
    assert "max_train_minutes" not in recipes.base().to_dict()  # unset, recipes recorded before still compare equal

    # a budget already spent: the run stops at the probe's step, its cosine schedule ending there
    spent = recipes.base(max_train_steps=60, max_train_minutes=1e-4, lr_scheduler="cosine", lr_warmup_steps=2)
    trainer = DiffusionTrainer(tmp_path / "spent", spent, pixel_examples)
    try:
        trainer.prepare()
        trainer.fit()
        assert trainer.global_step == 20 and trainer.budget["planned_steps"] == 20
        schedule = trainer.lr_scheduler.scheduler.lr_lambdas[0]  # what every step after the plan follows
        assert schedule(1) == 0.5 and schedule(11) == pytest.approx(0.5) and schedule(20) == pytest.approx(0.0)
    finally:
        trainer.close()

    # a job cancelled after its plan resumes with that plan, whatever the clock says now
    monkeypatch.setattr(engine, "planned_steps", lambda *args: 30)
    recipe = recipes.base(max_train_steps=60, max_train_minutes=5.0, checkpoint_every=25, lr_scheduler="cosine")
    steps: list[int] = []
    with pytest.raises(TrainingCancelled):
        train(tmp_path / "resumed", recipe, pixel_examples, should_cancel=lambda: steps[-1:] == [25],
              progress=lambda step, *_: steps.append(step))
    monkeypatch.setattr(engine, "planned_steps", lambda *args: 60)  # a new plan would train all 60
    result = train(tmp_path / "resumed", recipe, pixel_examples, resume_from="latest")
    assert result.resumed_from_step == 25 and result.steps_done == 30 and result.budget["planned_steps"] == 30


def test_an_ema_with_warmup_power_one_exports_the_mean_of_the_steps_weights(tmp_path, recipes, latent_examples,
                                                                            tiny_sd_path):
    # Power 1 makes the warm-up decay step / (1 + step): the average of every step's weights so far, equally
    # weighted, which shorter runs of the same seeded job give one by one.
    def unet_after(steps: int, **ema) -> dict[str, torch.Tensor]:
        recipe = recipes.finetune(max_train_steps=steps, use_ema=bool(ema), **ema)
        result = train(tmp_path / f"{steps}-{bool(ema)}", recipe, latent_examples)
        return load_file(result.model_path / "unet" / "diffusion_pytorch_model.safetensors")

    trajectory = [unet_after(steps) for steps in (1, 2, 3)]
    averaged = unet_after(3, ema_decay=0.999, ema_warmup_power=1.0)
    moved = [k for k in averaged if not torch.equal(trajectory[0][k], trajectory[2][k])]
    assert moved
    for key in moved:
        mean = torch.stack([weights[key].float() for weights in trajectory]).mean(dim=0)
        torch.testing.assert_close(averaged[key].float(), mean, rtol=1e-4, atol=2e-5)
    # Without a warm-up power the decay follows diffusers' own ramp, (1 + step) / (10 + step): the untrained
    # weights keep a tenth after the first step, and so on.
    ramped = unet_after(3, ema_decay=0.999)
    start = load_file(tiny_sd_path / "unet" / "diffusion_pytorch_model.safetensors")
    for key in moved:
        expected = start[key].float()
        for step, weights in enumerate(trajectory):
            decay = (1 + step) / (10 + step)
            expected = decay * expected + (1 - decay) * weights[key].float()
        torch.testing.assert_close(ramped[key].float(), expected, rtol=1e-4, atol=2e-5)


def test_an_ema_warmup_power_outside_zero_to_one_is_refused(recipes):
    with pytest.raises(ValueError, match="ema_warmup_power"):
        recipes.finetune(use_ema=True, ema_warmup_power=1.5)
