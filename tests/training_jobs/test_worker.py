"""Training through a real Celery worker: Redis (with PostgreSQL) and the embedded SQLite broker.

The kill test is the promise that matters: kill -9 the worker mid-run, start another, and the
job finishes at its planned step count with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from foundry.training_jobs import service as job_service
from tests.support.brokers import redis_test_url
from tests.training_jobs.conftest import tiny_base_recipe
from worker.app import TRAINING_QUEUE, create_app

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("celery-worker")]
REDIS_URL = redis_test_url("training")


@pytest.fixture
def broker_settings(migrated, database_url):
    return settings_with_broker(migrated, database_url, REDIS_URL)


def settings_with_broker(migrated, database_url, redis_url):
    """Redis when the database is PostgreSQL (the server deployment), else the embedded broker."""
    if database_url.startswith("postgresql"):
        client = redis.Redis.from_url(redis_url)
        try:
            client.ping()
        except redis.exceptions.ConnectionError as exc:
            if os.environ.get("CI"):
                pytest.fail(f"CI must test Celery on Redis but {redis_url} is unreachable: {exc}")
            pytest.skip(f"Redis at {redis_url} is unreachable here ({exc}); CI runs this")
        client.flushdb()
        return migrated.model_copy(update={"broker_url": redis_url})
    return migrated.model_copy(update={"broker_url": ""})


def worker_env(settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "FOUNDRY_VAR_DIR": str(settings.var_dir), "FOUNDRY_DATABASE_URL": settings.resolved_database_url,
        "FOUNDRY_BLOB_URL": settings.resolved_blob_url, "FOUNDRY_BROKER_URL": settings.broker_url,
        "FOUNDRY_BROKER_POLLING_INTERVAL": "0.1", "FOUNDRY_JOB_STALE_AFTER_S": "3", "FOUNDRY_JOB_HEARTBEAT_S": "0.5",
        "OMP_NUM_THREADS": "1",
        "FOUNDRY_ATTRIBUTION_INDEX_AFTER_TRAINING": str(settings.attribution_index_after_training).lower(),
    })
    return env


def start_worker(settings, log_path):
    log = open(log_path, "ab")  # noqa: SIM115 -- the worker process writes to it until stopped
    return subprocess.Popen([sys.executable, "-m", "foundry.cli", "worker", "--queues", TRAINING_QUEUE,
                             "--loglevel", "info"], env=worker_env(settings), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def submit(settings, sessions, snapshot, **recipe_overrides):
    with sessions() as session, session.begin():
        job = job_service.create_job(session=session, name="tiny", recipe_kind="base",
                                     recipe=tiny_base_recipe(**recipe_overrides), snapshot_id=snapshot.id,
                                     base_model_id=None, requested_by="test")
    create_app(settings).send_task("foundry.training.run_job", args=[str(job.id)], queue=TRAINING_QUEUE)
    return job.id


def wait_for(sessions, job_id, predicate, timeout=300, log_path=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as session:
            job = job_service.get_job(session=session, job_id=job_id)
        if predicate(job):
            return job
        time.sleep(0.2)
    worker_log = log_path.read_text()[-3000:] if log_path and log_path.exists() else ""
    pytest.fail(f"job {job_id} stuck at {job.status} step {job.step}\n{worker_log}")


def test_worker_runs_a_queued_job(broker_settings, sessions, base_snapshot, tmp_path):
    log_path = tmp_path / "worker.log"
    worker = start_worker(broker_settings, log_path)
    try:
        job_id = submit(broker_settings, sessions, base_snapshot)
        job = wait_for(sessions, job_id, job_service.is_terminal, log_path=log_path)
        assert job.status == "succeeded", job.error
        assert job.result_model_id is not None and job.step == 4
        assert job.stage == "attribution_index" and job.stage_progress == {"done": 8, "total": 8}
    finally:
        stop(worker)


def test_a_worker_rebuilds_an_index_on_request(broker_settings, sessions, base_snapshot, tmp_path):
    from foundry.attribution import service as attribution_service
    from foundry.models_registry import service as registry_service
    from worker.queue import enqueue_index_build

    settings = broker_settings.model_copy(update={"attribution_index_after_training": False})
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path)
    try:
        job = wait_for(sessions, submit(settings, sessions, base_snapshot), job_service.is_terminal,
                       log_path=log_path)
        assert job.status == "succeeded" and job.stage_progress == {}
        with sessions() as session:
            model = registry_service.get_model(session=session, model_id=job.result_model_id)
            assert attribution_service.active_index(session=session, model=model) is None
        enqueue_index_build(model.id, settings)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with sessions() as session:
                index = attribution_service.active_index(session=session, model=model)
            if index is not None:
                break
            time.sleep(0.3)
        assert index is not None, log_path.read_text()[-3000:]
        assert index.entry_count == 8 and index.built_by.startswith("worker ")
    finally:
        stop(worker)


def test_kill_9_mid_run_then_restart_finishes_with_identical_weights(broker_settings, sessions, base_snapshot,
                                                                     tmp_path):
    from foundry.models_registry import service as registry_service

    recipe = {"max_train_steps": 30, "checkpoint_every": 5}
    log_path = tmp_path / "worker.log"
    worker = start_worker(broker_settings, log_path)
    try:
        reference_id = submit(broker_settings, sessions, base_snapshot, **recipe)
        reference = wait_for(sessions, reference_id, job_service.is_terminal, log_path=log_path)
        assert reference.status == "succeeded", reference.error

        job_id = submit(broker_settings, sessions, base_snapshot, **recipe)
        wait_for(sessions, job_id, lambda j: j.step >= 12, log_path=log_path)
        stop(worker)  # kill -9, no warning, mid-step
        killed_at = wait_for(sessions, job_id, lambda j: True)
        assert killed_at.status == "running" and killed_at.step < 30

        worker = start_worker(broker_settings, log_path)
        job = wait_for(sessions, job_id, job_service.is_terminal, log_path=log_path)
    finally:
        stop(worker)

    assert job.status == "succeeded", job.error
    assert (job.step, job.attempts) == (30, 2)
    with sessions() as session:
        resumed = registry_service.get_model(session=session, model_id=job.result_model_id)
        uninterrupted = registry_service.get_model(session=session, model_id=reference.result_model_id)
    assert resumed.metrics["resumed_from_step"] is not None and resumed.metrics["resumed_from_step"] >= 10
    assert resumed.metrics["steps"] == 30
    assert resumed.weights_sha256 == uninterrupted.weights_sha256
