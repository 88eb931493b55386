"""Per-key rate limits: a token bucket per API key.

One API process keeps its buckets in memory; with ``FOUNDRY_RATE_LIMIT_URL=redis://...`` every
process shares them through Redis (one Lua script per request, atomic across processes).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0
    remaining: int = 0


class MemoryRateLimiter:
    def __init__(self, *, per_minute: int, burst: int):
        self.rate = per_minute / 60.0
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, now: float | None = None) -> Decision:
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, stamp = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return Decision(False, retry_after_s=(1.0 - tokens) / self.rate)
            self._buckets[key] = (tokens - 1.0, now)
            return Decision(True, remaining=int(tokens - 1.0))


_BUCKET_SCRIPT = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens, stamp = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'stamp', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(tokens)}
"""


class RedisRateLimiter:
    def __init__(self, url: str, *, per_minute: int, burst: int):
        import redis

        self.rate = per_minute / 60.0
        self.burst = burst
        self._client = redis.Redis.from_url(url)
        self._script = self._client.register_script(_BUCKET_SCRIPT)

    def hit(self, key: str, now: float | None = None) -> Decision:
        now = time.time() if now is None else now
        allowed, tokens = self._script(keys=[f"foundry:ratelimit:{key}"], args=[self.rate, self.burst, now])
        tokens = float(tokens)
        if allowed:
            return Decision(True, remaining=int(tokens))
        return Decision(False, retry_after_s=(1.0 - tokens) / self.rate)


def retry_after_header(decision: Decision) -> str:
    return str(max(1, math.ceil(decision.retry_after_s)))


def make_rate_limiter(settings):
    if settings.rate_limit_url:
        return RedisRateLimiter(settings.rate_limit_url, per_minute=settings.rate_limit_per_minute,
                                burst=settings.rate_limit_burst)
    return MemoryRateLimiter(per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst)
