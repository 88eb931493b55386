"""Training jobs end to end in-process: lineage, the license gate in every batch, idempotency, cancel."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from foundry.datasets import service as dataset_service
from foundry.errors import InvalidInput
from foundry.licensing import service as licensing_service
from foundry.licensing.models import LicenseGrant
from foundry.models_registry import service as registry_service
from foundry.training_jobs import service as job_service
from tests.support import images
from tests.training_jobs.conftest import tiny_base_recipe
from worker import jobs as job_runner


def create_job(sessions, snapshot, **recipe_overrides):
    with sessions() as session, session.begin():
        return job_service.create_job(session=session, name="tiny", recipe_kind="base",
                                      recipe=tiny_base_recipe(**recipe_overrides), snapshot_id=snapshot.id,
                                      base_model_id=None, requested_by="test")


def load_job(sessions, job_id):
    with sessions() as session:
        return job_service.get_job(session=session, job_id=job_id)


def audited_batches(settings, job_id) -> list[list[str]]:
    path = job_runner.job_dir(settings, job_id) / job_runner.BATCH_AUDIT_FILE
    return [json.loads(line) for line in path.read_text().splitlines()]


def grant_of(sessions, asset_id):
    with sessions() as session:
        return session.scalars(select(LicenseGrant).where(LicenseGrant.asset_id == asset_id)).one()


@pytest.mark.slow
def test_a_job_over_its_minutes_budget_trains_the_planned_steps_and_the_model_records_the_plan(
        migrated, sessions, base_snapshot):
    # the budget is spent before the loop's probe ends: the job stops at the probe's step 20, not at 60
    job = create_job(sessions, base_snapshot, max_train_steps=60, max_train_minutes=1e-4, checkpoint_every=0,
                     validation_prompts=())
    assert job_runner.run_job(migrated, job.id, worker="test") == "succeeded"
    job = load_job(sessions, job.id)
    assert (job.status, job.step, job.total_steps) == ("succeeded", 20, 20)  # progress shows the planned total
    with sessions() as session:
        model = registry_service.get_model(session=session, model_id=job.result_model_id)
    assert model.metrics["steps"] == 20 and model.recipe["max_train_steps"] == 60
    assert model.metrics["budget"]["planned_steps"] == 20 and model.metrics["budget"]["max_train_minutes"] == 1e-4


@pytest.mark.slow
def test_job_trains_and_registers_a_licensed_only_model_with_its_lineage(migrated, sessions, blob_store,
                                                                         base_snapshot, tmp_path):
    job = create_job(sessions, base_snapshot)
    assert job_runner.run_job(migrated, job.id, worker="test") == "succeeded"

    job = load_job(sessions, job.id)
    assert (job.status, job.step, job.total_steps, job.attempts) == ("succeeded", 4, 4, 1)
    assert job.loss is not None and job.images_per_s > 0 and "step 4/4" in job.log_tail
    assert {a["kind"] for a in job.artifacts} == {"sample_grid", "batch_audit"}
    assert blob_store.get(next(a["sha256"] for a in job.artifacts if a["kind"] == "sample_grid")).startswith(b"\x89PNG")
    with sessions() as session:
        model = registry_service.get_model(session=session, model_id=job.result_model_id)
    assert (model.kind, model.licensed_only, model.snapshot_id) == ("base", True, base_snapshot.id)
    assert model.snapshot_merkle_root == base_snapshot.merkle_root
    assert model.text_encoder_origin["kind"] and model.recipe["max_train_steps"] == 4
    assert model.code_version and "model_index.json" in model.files

    folder = registry_service.materialize(model=model, blob_store=blob_store, cache_dir=tmp_path / "models")
    from diffusers import DiffusionPipeline

    pipeline = DiffusionPipeline.from_pretrained(folder)
    assert pipeline.unet.config.out_channels == 2 * pipeline.unet.config.in_channels

    entered = {asset for batch in audited_batches(migrated, job.id) for asset in batch}
    with sessions() as session:
        in_snapshot = {str(e.asset_id) for e in dataset_service.snapshot_entries(session=session,
                                                                                  snapshot_id=base_snapshot.id)}
    assert entered and entered <= in_snapshot
    assert job_runner.run_job(migrated, job.id, worker="test") == "skipped"


def test_job_refuses_to_start_when_a_grant_was_revoked_or_edited_since_the_snapshot(
        migrated, sessions, base_snapshot, licensed_catalog):
    revoked, edited = licensed_catalog["img0.png"], licensed_catalog["img1.png"]
    with sessions() as session, session.begin():
        licensing_service.revoke_grant(session=session, grant_id=grant_of(sessions, revoked).id, reason="opt-out",
                                       revoked_by="artist")
        session.execute(update(LicenseGrant).where(LicenseGrant.asset_id == edited).values(permits_generation=False))
    job = create_job(sessions, base_snapshot)

    assert job_runner.run_job(migrated, job.id, worker="test") == "failed"

    job = load_job(sessions, job.id)
    assert job.error_code == "license_gate_violation"
    assert {v["asset_id"]: v["reason"] for v in job.details["violations"]} == {
        str(revoked): "revoked", str(edited): "grant_changed"}
    assert str(revoked) in job.error and not (job_runner.job_dir(migrated, job.id) / "batches.jsonl").exists()


@pytest.mark.slow
def test_revocation_during_training_stops_the_next_batch(migrated, sessions, base_snapshot, licensed_catalog,
                                                         monkeypatch):
    """Every asset that entered a batch was licensed when it entered; the revoked one never enters after."""
    victim = licensed_catalog["img3.png"]
    original_gate = dataset_service.enforce_license_gate
    calls = {"batches": 0}
    revoked_at_batch = 3

    def gate_that_revokes_midway(*, session, snapshot_id, asset_ids=None, at=None):
        if asset_ids is not None:
            calls["batches"] += 1
            if calls["batches"] == revoked_at_batch:
                with type(session)(bind=session.get_bind()) as other, other.begin():
                    licensing_service.revoke_grant(session=other, grant_id=grant_of(sessions, victim).id,
                                                   reason="opt-out", revoked_by="artist")
                asset_ids = list(asset_ids) + [victim]  # the gate must notice however the batch is drawn
        return original_gate(session=session, snapshot_id=snapshot_id, asset_ids=asset_ids, at=at)

    monkeypatch.setattr(dataset_service, "enforce_license_gate", gate_that_revokes_midway)
    job = create_job(sessions, base_snapshot, max_train_steps=8)

    assert job_runner.run_job(migrated, job.id, worker="test") == "failed"

    job = load_job(sessions, job.id)
    assert job.error_code == "license_gate_violation" and str(victim) in job.error
    batches = audited_batches(migrated, job.id)
    assert len(batches) == revoked_at_batch - 1
    revoked_when = grant_of(sessions, victim).revoked_at
    assert revoked_when is not None


def test_tampered_training_blob_stops_the_job(migrated, sessions, blob_store, base_snapshot):
    with sessions() as session:
        entry = dataset_service.snapshot_entries(session=session, snapshot_id=base_snapshot.id)[0]
    digest = entry.rendition_sha256
    (blob_store.root / "blobs" / digest[:2] / digest[2:4] / digest).write_bytes(images.pattern_png(4242))
    job = create_job(sessions, base_snapshot)

    assert job_runner.run_job(migrated, job.id, worker="test") == "failed"
    job = load_job(sessions, job.id)
    assert job.error_code == "license_gate_violation"
    assert job.details["violations"] == [{"asset_id": str(entry.asset_id), "reason": "blob_tampered"}]


def test_assets_added_after_the_snapshot_never_enter_training(migrated, sessions, blob_store, base_snapshot,
                                                             settings, tmp_path):
    from tests.catalog.test_import import row, run, write_manifest

    late = run(settings, sessions, blob_store,
               write_manifest(tmp_path / "late", [row("late.png")], {"late.png": images.pattern_png(777)}))
    assert late.rows_imported == 1
    job = create_job(sessions, base_snapshot, max_train_steps=2)
    assert job_runner.run_job(migrated, job.id, worker="test") == "succeeded"
    with sessions() as session:
        allowed = {str(e.asset_id) for e in dataset_service.snapshot_entries(session=session,
                                                                            snapshot_id=base_snapshot.id)}
    assert {a for batch in audited_batches(migrated, job.id) for a in batch} <= allowed


def test_claims_are_exclusive_until_the_worker_goes_silent(sessions, base_snapshot):
    job = create_job(sessions, base_snapshot)
    with sessions() as session, session.begin():
        assert job_service.claim_job(session=session, job_id=job.id, worker="a", stale_after=timedelta(minutes=5))
    with sessions() as session, session.begin():
        assert not job_service.claim_job(session=session, job_id=job.id, worker="b", stale_after=timedelta(minutes=5))
        assert job_service.stale_jobs(session=session, stale_after=timedelta(minutes=5)) == []
    with sessions() as session, session.begin():
        assert job_service.claim_job(session=session, job_id=job.id, worker="b", stale_after=timedelta(seconds=-1))
    assert load_job(sessions, job.id).attempts == 2


def test_cancel_queued_job_and_validation(migrated, sessions, base_snapshot):
    job = create_job(sessions, base_snapshot)
    with sessions() as session, session.begin():
        assert job_service.request_cancel(session=session, job_id=job.id).status == "cancelled"
    assert job_runner.run_job(migrated, job.id, worker="test") == "skipped"
    with sessions() as session, session.begin(), pytest.raises(InvalidInput, match="needs a base model"):
        job_service.create_job(session=session, name="x", recipe_kind="lora", recipe={}, snapshot_id=base_snapshot.id,
                               base_model_id=None, requested_by="t")
    with sessions() as session, session.begin(), pytest.raises(InvalidInput, match="customer_finetune snapshot"):
        job_service.create_job(session=session, name="x", recipe_kind="lora", recipe={}, snapshot_id=base_snapshot.id,
                               base_model_id=uuid.uuid4(), requested_by="t", owner_tenant_id=uuid.uuid4())


@pytest.mark.slow
def test_running_job_can_be_cancelled(migrated, sessions, base_snapshot):
    job = create_job(sessions, base_snapshot, max_train_steps=400, checkpoint_every=0)
    import threading
    import time

    runner = threading.Thread(target=job_runner.run_job, args=(migrated, job.id), kwargs={"worker": "t"})
    runner.start()
    deadline = time.monotonic() + 120
    while load_job(sessions, job.id).step < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    with sessions() as session, session.begin():
        job_service.request_cancel(session=session, job_id=job.id)
    runner.join(timeout=120)
    job = load_job(sessions, job.id)
    assert job.status == "cancelled" and 2 <= job.step < 400


def test_jobs_are_listed_by_state_and_tenant_in_the_service_the_api_and_the_cli(migrated, sessions, base_snapshot):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from foundry.accounts import service as accounts_service
    from tests.test_cli_and_migrations import cli

    queued, cancelled = create_job(sessions, base_snapshot), create_job(sessions, base_snapshot)
    with sessions() as session, session.begin():
        job_service.request_cancel(session=session, job_id=cancelled.id)
        tenant = accounts_service.create_tenant(session=session, name="Acme")
        session.get(type(queued), queued.id).owner_tenant_id = tenant.id

    def listed(**filters):
        with sessions() as session:
            return [job.id for job in job_service.list_jobs(session=session, **filters)]

    assert listed() == [cancelled.id, queued.id]
    assert listed(status="queued") == [queued.id] and listed(status="cancelled") == [cancelled.id]
    assert listed(status="running") == [] and listed(tenant_id=tenant.id) == [queued.id]
    assert listed(tenant_id=tenant.id, status="cancelled") == []
    with sessions() as session, pytest.raises(InvalidInput, match="unknown training job status 'paused'"):
        job_service.list_jobs(session=session, status="paused")

    admin = {"Authorization": "Bearer test-admin-key"}
    with TestClient(create_app(migrated)) as client:
        answer = client.get("/v1/training-jobs", params={"status": "cancelled"}, headers=admin)
        assert answer.status_code == 200 and [j["id"] for j in answer.json()] == [str(cancelled.id)]
        answer = client.get("/v1/training-jobs", params={"tenant_id": str(tenant.id)}, headers=admin)
        assert [j["id"] for j in answer.json()] == [str(queued.id)]
        refused = client.get("/v1/training-jobs", params={"status": "paused"}, headers=admin)
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "validation_error"

    table = cli(migrated, "train", "list", "--status", "queued").stdout
    assert str(queued.id) in table and str(cancelled.id) not in table
    refused = cli(migrated, "train", "list", "--status", "paused", check=False)
    assert refused.returncode != 0 and "unknown training job status 'paused'" in refused.stderr + refused.stdout


def test_a_tenants_job_tells_its_webhooks_how_its_custom_model_is_going(migrated, sessions, base_snapshot):
    from foundry.accounts import service as accounts_service
    from foundry.webhooks import service as webhook_service

    job, shared = create_job(sessions, base_snapshot), create_job(sessions, base_snapshot)
    with sessions() as session, session.begin():
        tenant = accounts_service.create_tenant(session=session, name="Acme")
        webhook_service.create_endpoint(session=session, tenant_id=tenant.id, url="https://hooks.example.com/m",
                                        events=None, created_by="test", allow_private=False)
        session.get(type(job), job.id).owner_tenant_id = tenant.id
    with sessions() as session, session.begin():
        for step in (5, 10, 15, 55, 100):  # an event each tenth of the way, not each step
            job_service.record_progress(session=session, job_id=job.id, step=step, total=100, loss=0.1,
                                        images_per_s=1.0, eta_s=1.0)
        job_service.fail_job(session=session, job_id=job.id, code="training_error", message="out of memory")
        job_service.fail_job(session=session, job_id=shared.id, code="training_error", message="x")  # no tenant
    with sessions() as session:
        events = webhook_service.list_deliveries(session=session, tenant_id=tenant.id)[::-1]
        assert [(d.event_type, d.payload["data"]["step"]) for d in events] == [
            ("custom_model.progress", 10), ("custom_model.progress", 55), ("custom_model.progress", 100),
            ("custom_model.failed", 100)]
        failed = events[-1].payload["data"]
        assert failed["training_job_id"] == str(job.id) and failed["status"] == "failed"
        assert failed["error"] == {"code": "training_error", "message": "out of memory"}
        assert len(webhook_service.list_deliveries(session=session, tenant_id=None)) == 4
