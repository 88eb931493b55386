"""The training queue is fair across tenants: jobs start in a round robin over their owners (the platform's
own jobs are one owner), at most ``training_tenant_concurrency`` running per owner, with a queue position."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from foundry.accounts import service as accounts_service
from foundry.training_jobs import service as job_service
from foundry.training_jobs.models import TrainingJob
from worker import jobs as job_runner

STALE = timedelta(minutes=5)


def queue_jobs(sessions, snapshot, owners) -> dict[str, object]:
    """One queued job per (name, owner), created a second apart in this order."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    jobs = {}
    with sessions() as session, session.begin():
        for number, (name, owner) in enumerate(owners):
            job = TrainingJob(name=name, recipe_kind="base", recipe={}, snapshot_id=snapshot.id, requested_by="test",
                              owner_tenant_id=owner, status="queued", total_steps=1, artifacts=[], details={},
                              created_at=start + timedelta(seconds=number))
            session.add(job)
            session.flush()
            jobs[name] = job.id
    return jobs


def claim(sessions, concurrency: int = 1, preferred=None):
    with sessions() as session, session.begin():
        return job_service.claim_next(session=session, worker="w", stale_after=STALE, concurrency=concurrency,
                                      preferred=preferred)


def finish(sessions, job_id) -> None:
    with sessions() as session, session.begin():
        session.execute(update(TrainingJob).where(TrainingJob.id == job_id).values(status="succeeded"))


def test_jobs_start_in_turns_across_owners(sessions, base_snapshot):
    with sessions() as session, session.begin():
        a, b = (accounts_service.create_tenant(session=session, name=name).id for name in ("A", "B"))
    jobs = queue_jobs(sessions, base_snapshot, [("a1", a), ("a2", a), ("a3", a), ("platform", None), ("b1", b)])
    with sessions() as session:
        positions = {name: job_service.queue_position(session=session, job=session.get(TrainingJob, job_id))
                     for name, job_id in jobs.items()}
    # A's three jobs cannot hold B's single one back by more than one of A's turns
    assert positions["a1"] == 1 and positions["b1"] <= 3 and positions["a3"] == 5
    order = []
    for _ in jobs:
        job_id = claim(sessions)
        order.append(next(name for name, value in jobs.items() if value == job_id))
        finish(sessions, job_id)
    assert order == ["a1", "platform", "b1", "a2", "a3"]
    assert claim(sessions) is None  # nothing left


def test_an_owner_at_its_limit_waits_and_a_dead_workers_job_resumes_first(sessions, base_snapshot, settings):
    with sessions() as session, session.begin():
        a = accounts_service.create_tenant(session=session, name="A").id
    jobs = queue_jobs(sessions, base_snapshot, [("a1", a), ("a2", a)])
    assert claim(sessions) == jobs["a1"]
    assert claim(sessions) is None  # A already runs its one job: a2 waits its turn
    assert job_runner.run_next_job(settings.model_copy(update={"training_tenant_concurrency": 1}),
                                   worker="w2") == (None, "waiting")
    assert claim(sessions, concurrency=2) == jobs["a2"]
    # a1's worker dies: its job is claimed again first, whoever else waits
    queue_jobs(sessions, base_snapshot, [("late", None)])
    with sessions() as session, session.begin():
        session.execute(update(TrainingJob).where(TrainingJob.id == jobs["a1"])
                        .values(heartbeat_at=datetime.now(UTC) - 2 * STALE))
    assert claim(sessions, preferred=jobs["a1"]) == jobs["a1"]
