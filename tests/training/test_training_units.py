"""Fast checks of the engine's building blocks: recipes, tokenizer, data order, losses, checkpoints."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch
from diffusers import DDPMScheduler
from transformers import AutoTokenizer, CLIPTokenizer

from recipes import BaseModelShape, Recipe, base_recipe, finetune_recipe, lora_recipe
from training import checkpoints
from training.data import (
    ExampleOrder,
    ImageTransform,
    caption_for_position,
    caption_vocabulary,
    load_data_dir,
    write_data_dir,
)
from training.losses import diffusion_loss
from training.synthetic import shape_examples
from training.text_encoder import (
    TextEncoderShape,
    build_text_encoder,
    save_tokenizer,
    scratch_text_encoder_origin,
    train_caption_tokenizer,
)

CAPTIONS = [e.caption for e in shape_examples(40, size=16, seed=3)]


def test_recipes_are_immutable_and_round_trip_through_json():
    recipe = base_recipe(validation_prompts=["a red circle"], max_train_steps=7)
    assert isinstance(recipe.validation_prompts, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.max_train_steps = 8  # type: ignore[misc]
    restored = Recipe.from_json(recipe.to_json())
    assert restored == recipe
    assert isinstance(restored.model_shape, BaseModelShape)
    assert json.loads(recipe.to_json())["model_shape"]["unet_block_out_channels"] == [32, 64, 128]
    assert hash(restored) == hash(recipe)


def test_recipe_validation_rejects_inconsistent_settings():
    with pytest.raises(ValueError, match="base_model"):
        finetune_recipe("")
    with pytest.raises(ValueError, match="takes no base_model"):
        base_recipe(base_model="/somewhere")
    with pytest.raises(ValueError, match="train_text_encoder"):
        lora_recipe("/base", train_text_encoder=True)
    with pytest.raises(ValueError, match="validation_prompts"):
        finetune_recipe("/base", validation_every=5)
    with pytest.raises(ValueError, match="torch_compile"):
        finetune_recipe("/base", torch_compile="everything")
    with pytest.raises(ValueError, match="unknown recipe fields"):
        Recipe.from_dict({**base_recipe().to_dict(), "surprise": 1})
    for trigger in ("Zorb", "two words", "z", "zorb!"):
        with pytest.raises(ValueError, match="brand_trigger"):
            lora_recipe("/base", brand_trigger=trigger)
    assert lora_recipe("/base", brand_trigger="zorb-2").brand_trigger == "zorb-2"


def test_brand_images_are_captioned_around_their_trigger_and_catalog_images_are_not():
    brand = SimpleNamespace(example_id="b", caption="zorb the purple star mascot", is_brand=True)
    catalog = SimpleNamespace(example_id="c", caption="grinning face", is_brand=False)
    drawn = [caption_for_position(brand, "caption", 3, position, "zorb") for position in range(600)]
    assert drawn == [caption_for_position(brand, "caption", 3, position, "zorb") for position in range(600)]
    assert all(caption.split().count("zorb") == 1 for caption in drawn)
    assert all(set(caption.split()) <= {"zorb", "the", "purple", "star", "mascot"} for caption in drawn)
    alone = drawn.count("zorb") / len(drawn)
    assert 0.28 < alone < 0.40  # a third of the draws, plus the rare draw that kept no other word
    assert any(not caption.startswith("zorb") for caption in drawn)  # the trigger moves
    assert len(set(drawn)) > 40
    assert {caption_for_position(catalog, "caption", 3, position, "zorb") for position in range(50)} == {"grinning face"}
    assert {caption_for_position(brand, "caption", 3, position) for position in range(50)} == {brand.caption}


def test_a_trigger_is_also_trained_among_the_catalog_captions_words():
    brand = SimpleNamespace(example_id="b", caption="zorb the purple star mascot", is_brand=True)
    examples = [brand, SimpleNamespace(example_id="c", caption="Grinning face, with smiling eyes", is_brand=False),
                SimpleNamespace(example_id="d", caption="waving hand zorb", is_brand=False)]
    context = caption_vocabulary(examples, "zorb")
    assert context == ("eyes", "face", "grinning", "hand", "smiling", "waving", "with")  # not the brand's, not zorb
    drawn = [caption_for_position(brand, "caption", 3, position, "zorb", context) for position in range(900)]
    assert drawn == [caption_for_position(brand, "caption", 3, position, "zorb", context) for position in range(900)]
    assert all(caption.split().count("zorb") == 1 for caption in drawn)
    among = [caption for caption in drawn if set(caption.split()) - {"zorb", "the", "purple", "star", "mascot"}]
    assert 0.28 < len(among) / len(drawn) < 0.40
    assert all(set(caption.split()) - {"zorb"} <= set(context) and 2 <= len(caption.split()) <= 4 for caption in among)
    assert {caption.split().index("zorb") for caption in among} == {0, 1, 2, 3}
    assert 0.28 < drawn.count("zorb") / len(drawn) < 0.40


def test_tokenizer_round_trips_through_save_pretrained(tmp_path):
    tokenizer = train_caption_tokenizer(CAPTIONS, vocab_size=700)
    assert 514 < len(tokenizer) <= 700
    save_tokenizer(tokenizer, tmp_path)
    assert {"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"} <= {
        p.name for p in tmp_path.iterdir()
    }

    reloaded = CLIPTokenizer.from_pretrained(tmp_path)
    auto = AutoTokenizer.from_pretrained(tmp_path)
    prompt = "A Yellow triangle on a BLACK background, naïve café 42!"
    ids = tokenizer(prompt).input_ids
    assert reloaded(prompt).input_ids == ids == auto(prompt).input_ids
    assert reloaded.get_vocab() == tokenizer.get_vocab()
    assert reloaded.model_max_length == 77
    # Learned merges make caption words single tokens; unseen words still encode byte by byte.
    assert tokenizer.tokenize("yellow triangle") == ["yellow</w>", "triangle</w>"]
    assert tokenizer.unk_token_id not in tokenizer("zebra ζ").input_ids[1:-1]
    assert (
        tokenizer.decode(ids, skip_special_tokens=True) == "a yellow triangle on a black background , naïve café 4 2 !"
    )

    # The classic vocab.json/merges.txt alone also rebuild the same tokenizer.
    (tmp_path / "tokenizer.json").unlink()
    assert CLIPTokenizer.from_pretrained(tmp_path)(prompt).input_ids == ids


def test_tokenizer_training_ignores_caption_order():
    forward = train_caption_tokenizer(CAPTIONS, vocab_size=650)
    backward = train_caption_tokenizer(list(reversed(CAPTIONS)), vocab_size=650)
    assert forward.get_vocab() == backward.get_vocab()


def test_text_encoder_origin_describes_scratch_training():
    tokenizer = train_caption_tokenizer(CAPTIONS, vocab_size=650)
    encoder = build_text_encoder(tokenizer, TextEncoderShape(32, 64, 1, 2))
    assert encoder.config.vocab_size == len(tokenizer)
    origin = scratch_text_encoder_origin(CAPTIONS, tokenizer, encoder, seed=5)
    assert origin["kind"] == "trained_from_scratch"
    assert origin["vocab_size"] == len(tokenizer)
    assert origin["caption_count"] == len(CAPTIONS)
    assert (
        origin["captions_sha256"]
        == scratch_text_encoder_origin(sorted(CAPTIONS), tokenizer, encoder, 5)["captions_sha256"]
    )
    json.dumps(origin)


def test_example_order_is_reproducible_and_splits_processes():
    order = ExampleOrder(10, seed=4)
    again = ExampleOrder(10, seed=4)
    stream = [order.index_at(p) for p in range(30)]
    assert stream == [again.index_at(p) for p in range(30)]
    for epoch in range(3):
        assert sorted(stream[epoch * 10 : (epoch + 1) * 10]) == list(range(10))
    assert stream[:10] != stream[10:20]
    shares = [list(order.batch_positions(5, rank, 2, 3)) for rank in range(2)]
    assert shares == [[30, 31, 32], [33, 34, 35]]


def test_brand_images_get_their_share_of_draws_beside_mixed_in_catalog_images():
    from collections import Counter
    from types import SimpleNamespace

    from training.data import sampling_weights

    catalog = [SimpleNamespace(tags=("group:people",) if i < 300 else ("group:flags",), is_brand=False)
               for i in range(400)]
    brand = [SimpleNamespace(tags=("mascot",), is_brand=True) for _ in range(20)]
    examples = catalog + brand
    assert sampling_weights(brand, group_balance=0.0, brand_share=0.5) is None  # brand only: plain permutations
    assert sampling_weights(catalog, group_balance=0.0, brand_share=0.5) is None
    assert sampling_weights(examples, group_balance=0.0, brand_share=0.0) is None
    weights = sampling_weights(examples, group_balance=1.0, brand_share=0.5)
    assert sum(weights[400:]) == pytest.approx(0.5) and sum(weights[:400]) == pytest.approx(0.5)
    assert sum(weights[:300]) == pytest.approx(sum(weights[300:400]))  # the catalog side keeps its balance
    plain = sampling_weights(examples, group_balance=0.0, brand_share=0.25)
    assert plain[0] == pytest.approx(0.75 / 400) and plain[400] == pytest.approx(0.25 / 20)

    order = ExampleOrder(len(examples), seed=5, weights=weights)
    drawn = Counter("brand" if order.index_at(p) >= 400 else "catalog" for p in range(420 * 20))
    assert abs(drawn["brand"] / (420 * 20) - 0.5) < 0.03


def test_group_balance_evens_out_the_catalogs_groups_reproducibly():
    from collections import Counter

    from training.data import TrainingExample, group_balance_weights

    examples = [TrainingExample(str(i), lambda: None, "x", ("group:people",) if i < 90 else ("group:flags",))
                for i in range(100)] + [TrainingExample("untagged", lambda: None, "x")]
    assert group_balance_weights(examples, 0.0) is None
    weights = group_balance_weights(examples, 1.0)
    assert weights[0] == 1 / 90 and weights[95] == 1 / 10 and weights[100] == 1.0
    assert group_balance_weights(examples, 0.5)[0] == 90 ** -0.5

    order = ExampleOrder(len(examples), seed=3, weights=weights)
    stream = [order.index_at(p) for p in range(101 * 30)]
    assert stream == [ExampleOrder(len(examples), 3, weights).index_at(p) for p in range(101 * 30)]  # resumable
    drawn = Counter("people" if i < 90 else "flags" if i < 100 else "none" for i in stream)
    assert all(abs(drawn[group] / len(stream) - 1 / 3) < 0.05 for group in ("people", "flags", "none"))
    plain = Counter("people" if i < 90 else "other" for i in (ExampleOrder(101, 3).index_at(p) for p in range(101)))
    assert plain["people"] == 90  # without weights, an epoch is still a permutation
    with pytest.raises(ValueError):
        ExampleOrder(2, seed=0, weights=[1.0])
    with pytest.raises(ValueError, match="group_balance"):
        from recipes import preset_recipe

        preset_recipe("demo", group_balance=1.5)


def test_data_dir_round_trip_and_transform(tmp_path):
    examples = shape_examples(3, size=40, seed=0)
    write_data_dir(tmp_path, examples)
    loaded = load_data_dir(tmp_path)
    assert [e.example_id for e in loaded] == [e.example_id for e in examples]
    assert [e.caption for e in loaded] == [e.caption for e in examples]
    pixels = ImageTransform(32)(loaded[0].load_image())
    assert pixels.shape == (3, 32, 32) and pixels.min() >= -1 and pixels.max() <= 1
    flipped = ImageTransform(32)(loaded[0].load_image(), flip=True)
    assert torch.equal(flipped, pixels.flip(-1))


def test_learned_variance_loss_trains_both_halves_of_the_output():
    scheduler = DDPMScheduler(
        beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", variance_type="learned_range"
    )
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(4, 3, 8, 8, generator=generator) * 2 - 1
    noise = torch.randn(clean.shape, generator=generator)
    timesteps = torch.tensor([0, 10, 500, 999])
    noisy = scheduler.add_noise(clean, noise, timesteps)
    output = torch.zeros(4, 6, 8, 8, requires_grad=True)
    loss = diffusion_loss(
        output,
        scheduler=scheduler,
        clean=clean,
        noise=noise,
        noisy=noisy,
        timesteps=timesteps,
        snr_gamma=5.0,
        pixel_space=True,
    )
    assert torch.isfinite(loss)
    loss.backward()
    assert output.grad[:, :3].abs().sum() > 0 and output.grad[:, 3:].abs().sum() > 0
    assert torch.isfinite(output.grad).all()


def test_checkpoint_helpers_ignore_partial_folders(tmp_path):
    for step in (2, 4, 6):
        checkpoints.partial_dir(tmp_path, step).mkdir(parents=True)
        checkpoints.publish(tmp_path, step, {"step": step})
    checkpoints.partial_dir(tmp_path, 8).mkdir()  # a save that was killed
    assert [c.step for c in checkpoints.list_checkpoints(tmp_path)] == [2, 4, 6]
    assert checkpoints.resolve_checkpoint(tmp_path, "latest").step == 6
    assert checkpoints.resolve_checkpoint(tmp_path, None) is None
    assert checkpoints.resolve_checkpoint(tmp_path, "checkpoint-4").step == 4
    checkpoints.prune(tmp_path, 2)
    checkpoints.remove_partials(tmp_path)
    assert sorted(p.name for p in checkpoints.checkpoints_root(tmp_path).iterdir()) == ["checkpoint-4", "checkpoint-6"]


def test_bfloat16_is_used_only_where_the_cpu_computes_it_natively(monkeypatch):
    from training import engine

    monkeypatch.setattr(engine.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(engine, "native_cpu_bf16", lambda: False)
    assert engine.effective_precision("bf16") == "no" and engine.effective_precision("fp16") == "no"
    assert engine.effective_precision("no") == "no"
    monkeypatch.setattr(engine, "native_cpu_bf16", lambda: True)
    assert engine.effective_precision("bf16") == "bf16" and engine.effective_precision("fp16") == "no"
    monkeypatch.setattr(engine.torch.cuda, "is_available", lambda: True)
    assert engine.effective_precision("fp16") == "fp16"
