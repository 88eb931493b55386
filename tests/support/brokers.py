"""Redis databases for the broker tests, one per pytest-xdist worker.

Each test that starts a Celery worker flushes its Redis database first. Two xdist workers that
shared one database would flush each other's queues and consume each other's tasks (a worker
on one test database running a generation id that only exists in the other), so every xdist
worker gets its own databases even if the scheduler does not keep a group on one worker.
"""

from __future__ import annotations

import os

PURPOSES = ("training", "generation")
# counting down from 13/14 for gw0; 15 is the rate limiter's, which no test flushes; 0 is left alone.
# Two checkouts tested at once on one Redis set different first databases.
FIRST_DATABASE = int(os.environ.get("FOUNDRY_TEST_REDIS_FIRST_DB", "13"))


def redis_test_url(purpose: str) -> str:
    """``redis://127.0.0.1:6379/<db>`` for this purpose on this xdist worker (env override first)."""
    override = os.environ.get(f"FOUNDRY_TEST_{purpose.upper()}_REDIS_URL")
    if override:
        return override
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw") or 0)
    database = FIRST_DATABASE - index * len(PURPOSES) + PURPOSES.index(purpose)
    if database < 1:
        raise RuntimeError(f"xdist worker {worker} has no free Redis database for {purpose}; "
                           f"set FOUNDRY_TEST_{purpose.upper()}_REDIS_URL")
    return f"redis://127.0.0.1:6379/{database}"
