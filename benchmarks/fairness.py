"""Is the generation queue fair across tenants? Prints JSON, writes ``benchmarks/results/fairness.json``.

For each broker (the embedded SQLite transport, and Redis when reachable): a deployment of its own with a
tiny model (``benchmarks/fuzz.py``'s), uvicorn serving the API and one real generation worker. Tenant A
queues ``--burst`` one-image generations; once the worker is busy with them, tenant B queues one. B's wait
(from its request until a worker starts it) is reported in units of A's per-image time (the median time a
worker spends on one of A's generations): ``wait_in_images``; ``total_in_images`` adds B's own image.
First come, first served would make the wait about ``--burst``; the rotation across tenants makes it
at most the rest of the image in progress, plus the queue's own latency.

    python benchmarks/fairness.py [--burst 200] [--steps 30] [--redis redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx

from benchmarks.fuzz import seed_standalone, server_env, start_server
from benchmarks.reporting import publish
from foundry.accounts import service as accounts_service
from foundry.config import Settings
from foundry.db import session_factory
from foundry.generation.models import Generation
from foundry.processes import stop_process


def customers(settings) -> dict[str, dict[str, str]]:
    """Two tenants with a customer key each: name -> Authorization header."""
    keys = {}
    with session_factory(settings.resolved_database_url)() as session, session.begin():
        for name in ("A", "B"):
            tenant = accounts_service.create_tenant(session=session, name=f"Tenant {name}")
            _, key = accounts_service.create_api_key(session=session, role="customer", name=name, tenant_id=tenant.id)
            keys[name] = {"Authorization": f"Bearer {key}"}
    return keys


def model_id(settings) -> str:
    from foundry.models_registry import service as registry_service

    with session_factory(settings.resolved_database_url)() as session:
        return str(registry_service.list_models(session=session, limit=1)[0].id)


def one_broker(root: Path, broker_url: str, *, burst: int, steps: int) -> dict:
    settings = Settings(var_dir=root / "var", broker_url=broker_url, admin_api_key="fairness-admin-key",
                        import_workers=1)
    seed_standalone(settings)
    keys, model = customers(settings), model_id(settings)
    api, base = start_server(settings, root / "api.log")
    worker = subprocess.Popen([sys.executable, "-m", "foundry.cli", "worker", "--queues", "generation",
                               "--loglevel", "warning"], env=server_env(settings), cwd=ROOT,
                              stdout=(root / "worker.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with httpx.Client(base_url=base, timeout=60) as http:
            def queue(tenant: str, prompt: str) -> dict:
                answer = http.post("/v1/generations", headers=keys[tenant], json={
                    "model_id": model, "prompt": prompt, "steps": steps, "num_images": 1, "mode": "async"})
                answer.raise_for_status()
                return answer.json()

            burst_ids = [queue("A", f"red circle {i}")["id"] for i in range(burst)]
            deadline = time.monotonic() + 300
            while http.get(f"/v1/generations/{burst_ids[0]}", headers=keys["A"]).json()["status"] == "queued":
                if time.monotonic() > deadline:
                    raise SystemExit(f"the worker did not start:\n{(root / 'worker.log').read_text()[-3000:]}")
                time.sleep(0.1)
            lone = queue("B", "blue square")
            while (body := http.get(f"/v1/generations/{lone['id']}", headers=keys["B"]).json())["status"] in (
                    "queued", "running"):
                if time.monotonic() > deadline:
                    raise SystemExit("B's generation did not finish")
                time.sleep(0.05)
            time.sleep(1.0)  # a few more of A's, to measure A's per-image time after B's
    finally:
        stop_process(worker)
        stop_process(api)
    with session_factory(settings.resolved_database_url)() as session:
        rows = {g.id: g for g in session.query(Generation).filter(Generation.id.in_(
            [uuid.UUID(i) for i in [*burst_ids, lone["id"]]]))}
    b = rows[uuid.UUID(lone["id"])]
    a_done = [g for g in (rows[uuid.UUID(i)] for i in burst_ids) if g.status == "succeeded"]
    per_image = statistics.median((g.finished_at - g.started_at).total_seconds() for g in a_done)
    served_before_b = sum(1 for g in a_done if g.started_at < b.started_at)
    waited = (b.started_at - b.created_at).total_seconds()
    total = (b.finished_at - b.created_at).total_seconds()
    return {"broker": broker_url.split(":", 1)[0] if broker_url else "embedded (SQLite)", "burst": burst, "steps": steps, "b_status": body["status"],
            "b_queue_position_at_request": lone["queue_position"], "b_wait_s": round(waited, 3),
            "b_total_s": round(total, 3), "a_per_image_s": round(per_image, 4),
            "wait_in_images": round(waited / per_image, 2), "total_in_images": round(total / per_image, 2),
            "a_served_before_b": served_before_b, "a_finished_when_b_finished": sum(
                1 for g in a_done if g.finished_at <= b.finished_at)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=200, help="tenant A's one-image generations, queued at once")
    parser.add_argument("--steps", type=int, default=30, help="denoising steps of each generation (the API's default)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14", help="a Redis broker ('' to skip it)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fairness.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    runs = []
    with tempfile.TemporaryDirectory(prefix="foundry-fairness-") as folder:
        brokers = [""]  # the embedded SQLite transport under each run's var folder
        if args.redis:
            try:
                import redis

                redis.Redis.from_url(args.redis).ping()
                redis.Redis.from_url(args.redis).flushdb()
                brokers.append(args.redis)
            except Exception as exc:  # noqa: BLE001 - reported, and the embedded broker still runs
                print(f"Redis at {args.redis} is unreachable ({exc}); measuring the embedded broker only",
                      file=sys.stderr)
        for number, broker in enumerate(brokers):
            root = Path(folder) / f"run{number}"
            root.mkdir(parents=True, exist_ok=True)
            runs.append(one_broker(root, broker, burst=args.burst, steps=args.steps))
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    report = {"benchmark": "fairness", "wait_in_images": max(run["wait_in_images"] for run in runs),
              "target_wait_in_images": 2, "runs": runs,
              "machine": {"cores": os.cpu_count(), "threads_per_process": 1}}
    return publish(report, args.out)


if __name__ == "__main__":
    main()
