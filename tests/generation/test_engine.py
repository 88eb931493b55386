"""The inference engine's pipeline cache and the pure request rules."""

from __future__ import annotations

import pytest

from foundry.errors import InvalidInput
from foundry.generation.policy import (
    capabilities_from_configs,
    request_fingerprint,
    resolve_request,
    serving_mode,
    work_units,
)
from training.inference import PipelineCache


class FakeScheduler:
    def __init__(self):
        self.config = {}


class FakePipeline:
    def __init__(self, folder):
        self.folder = folder
        self.scheduler = FakeScheduler()


def test_the_pipeline_cache_is_bounded_and_least_recently_used():
    cache = PipelineCache(capacity=2, loader=FakePipeline)
    a = cache.get("a", lambda: "folder-a")
    cache.get("b", lambda: "folder-b")
    assert cache.get("a", lambda: pytest.fail("a is cached")) is a
    cache.get("c", lambda: "folder-c")  # evicts b, the least recently used
    assert cache.keys() == ["a", "c"] and cache.loads == 3
    cache.get("b", lambda: "folder-b")
    assert cache.loads == 4 and cache.keys() == ["c", "b"]
    with pytest.raises(ValueError):
        PipelineCache(capacity=0)


PIXEL = capabilities_from_configs({"_class_name": "IFPipeline"}, {"sample_size": 32, "block_out_channels": [16, 32]},
                                  None, {"_class_name": "DDPMScheduler"})
LATENT = capabilities_from_configs({"_class_name": "StableDiffusionPipeline"},
                                   {"sample_size": 64, "block_out_channels": [320, 640, 1280, 1280]},
                                   {"block_out_channels": [128, 256, 512, 512]}, {"_class_name": "PNDMScheduler"})


def test_capabilities_follow_the_stored_configs():
    assert (PIXEL.native_size, PIXEL.sizes, PIXEL.default_scheduler) == (32, (32,), "ddpm")
    assert "euler" not in PIXEL.schedulers
    assert LATENT.native_size == 512 and LATENT.default_scheduler == "pndm"
    assert {256, 512, 768} <= set(LATENT.sizes) and all(size % 64 == 0 for size in LATENT.sizes)
    with pytest.raises(InvalidInput):
        capabilities_from_configs({}, {}, None, {})


def resolve(capabilities=LATENT, **overrides):
    request = {"prompt": "p", "negative_prompt": "", "seed": 1, "num_images": 1, "steps": 20,
               "guidance_scale": 5.0, "width": None, "height": None, "scheduler": "default"}
    request.update(overrides)
    return resolve_request(capabilities=capabilities, **request)


def test_requests_are_filled_from_the_model_and_never_clamped():
    assert (resolve().width, resolve().scheduler) == (512, "pndm")
    assert resolve(width=768, height=512, scheduler="euler").width == 768
    with pytest.raises(InvalidInput) as error:
        resolve(width=700)
    assert error.value.details["fields"][0]["field"] == "width"
    with pytest.raises(InvalidInput):
        resolve(PIXEL, scheduler="ddim")


def test_a_request_without_guidance_gets_the_guidance_its_model_draws_best_at():
    from dataclasses import replace

    from recipes import DEFAULT_GUIDANCE_SCALE, preset_recipe, serving_guidance

    quality, demo = preset_recipe("quality").to_dict(), preset_recipe("demo").to_dict()
    assert (serving_guidance(quality), serving_guidance(demo)) == (5.0, 9.0)
    assert serving_guidance({}) == serving_guidance({"serving_guidance_scale": None}) == DEFAULT_GUIDANCE_SCALE
    assert serving_guidance({"serving_guidance_scale": True}) == DEFAULT_GUIDANCE_SCALE  # not a number
    # a chain (pipeline, then adapters): the last recipe that names a scale decides
    assert serving_guidance(quality, {}) == 5.0 and serving_guidance(quality, {"serving_guidance_scale": 7}) == 7.0
    assert serving_guidance({"serving_guidance_scale": 7}, quality) == 5.0 and serving_guidance() == DEFAULT_GUIDANCE_SCALE
    tuned = replace(PIXEL, default_guidance_scale=serving_guidance(quality))
    assert resolve(tuned, guidance_scale=None).guidance_scale == 5.0
    assert resolve(tuned, guidance_scale=12.0).guidance_scale == 12.0  # a caller's scale always wins
    assert resolve(PIXEL, guidance_scale=None).guidance_scale == DEFAULT_GUIDANCE_SCALE
    with pytest.raises(ValueError, match="serving_guidance_scale"):
        preset_recipe("quality", serving_guidance_scale=0.5)


def test_serving_mode_and_fingerprint():
    small, big = resolve(steps=20), resolve(num_images=8, steps=50)
    assert work_units(big, LATENT) == 400
    assert serving_mode(requested="auto", request=small, capabilities=LATENT, sync_limit=240) == "sync"
    assert serving_mode(requested="auto", request=big, capabilities=LATENT, sync_limit=240) == "async"
    assert serving_mode(requested="async", request=small, capabilities=LATENT, sync_limit=240) == "async"
    assert request_fingerprint({"a": 1, "b": 2}) == request_fingerprint({"b": 2, "a": 1})
    assert request_fingerprint({"a": 1}) != request_fingerprint({"a": 2})


def test_rate_limiter_token_bucket_in_memory():
    from api.ratelimit import MemoryRateLimiter

    limiter = MemoryRateLimiter(per_minute=60, burst=2)
    assert [limiter.hit("k", now=0.0).allowed for _ in range(3)] == [True, True, False]
    assert limiter.hit("other", now=0.0).allowed
    assert limiter.hit("k", now=1.01).allowed and not limiter.hit("k", now=1.02).allowed


def test_rate_limiter_shared_through_redis():
    import os

    import redis

    from api.ratelimit import RedisRateLimiter

    url = os.environ.get("FOUNDRY_TEST_RATE_LIMIT_REDIS_URL", "redis://127.0.0.1:6379/15")  # no test flushes it
    try:
        redis.Redis.from_url(url).ping()
    except redis.exceptions.ConnectionError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test the Redis rate limiter but {url} is unreachable: {exc}")
        pytest.skip(f"Redis at {url} is unreachable here ({exc}); CI runs this")
    import uuid

    key = f"test-{uuid.uuid4()}"
    first, second = (RedisRateLimiter(url, per_minute=60, burst=2) for _ in range(2))  # two API processes
    decisions = [first.hit(key, now=100.0), second.hit(key, now=100.0), first.hit(key, now=100.0)]
    assert [d.allowed for d in decisions] == [True, True, False] and decisions[2].retry_after_s > 0
    assert second.hit(key, now=101.5).allowed
