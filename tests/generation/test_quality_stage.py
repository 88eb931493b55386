"""Measuring a model end to end: the split's evaluator trained and recorded, a model measured on the
held-out prompts, the figures shown by the API and the CLI, and the optional last stage of a job."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from PIL import Image
from sqlalchemy import select

from foundry.datasets import service as dataset_service
from foundry.datasets.models import DatasetSnapshot
from foundry.datasets.schemas import SnapshotFilters
from foundry.errors import InvalidInput
from foundry.quality.models import ModelQuality
from foundry.quality.policy import REQUIRED_METRICS
from foundry.training_jobs import service as job_service
from tests.catalog.test_import import row, run, write_manifest
from tests.generation.conftest import ADMIN, register_model, tiny_base_recipe
from tests.support import images
from tests.test_cli_and_migrations import cli
from training.quality import EvaluatorConfig, SamplingSettings, evaluator_folder_name, evaluator_sha256
from worker import jobs as job_runner
from worker.quality import load_evaluator, measure_model, snapshot_content_sha256, train_split_evaluator

TINY_EVALUATOR = EvaluatorConfig(width=8, feature_size=16, epochs=2, batch_size=8)
FAST_SAMPLING = SamplingSettings(num_inference_steps=2, guidance_scale=2.0, batch_size=8)


@pytest.fixture
def grouped_catalog(settings, sessions, blob_store, tmp_path):
    """Forty images in two groups (two subgroups each): the held-out split takes two of each group."""
    files = {f"{group}-{n}.png": images.pattern_png(900 + 41 * i + n, size=48)
             for i, group in enumerate(("faces", "flags")) for n in range(20)}
    rows = [row(name, tags=f"group:{name.split('-')[0]};subgroup:{name.split('-')[0]}-{int(name.split('-')[1][:-4]) % 2}")
            for name in files]
    run(settings, sessions, blob_store, write_manifest(tmp_path / "grouped", rows, files))


@pytest.fixture
def evaluator(sessions, blob_store, grouped_catalog):
    return train_split_evaluator(sessions=sessions, blob_store=blob_store, created_by="test", config=TINY_EVALUATOR)


def test_the_evaluator_is_trained_outside_the_split_judged_inside_and_stored(sessions, blob_store, evaluator,
                                                                             tmp_path):
    with sessions() as session:
        training = session.get(DatasetSnapshot, evaluator.training_snapshot_id)
        heldout = session.get(DatasetSnapshot, evaluator.heldout_snapshot_id)
        training_ids = {e.asset_id for e in dataset_service.snapshot_entries(session=session, snapshot_id=training.id)}
        heldout_ids = {e.asset_id for e in dataset_service.snapshot_entries(session=session, snapshot_id=heldout.id)}
    assert (training.filters["heldout"], heldout.filters["heldout"]) == ("exclude", "only")
    assert (len(training_ids), len(heldout_ids)) == (36, 4) and training_ids.isdisjoint(heldout_ids)
    assert evaluator.groups == ["faces", "flags"] and 0.0 <= evaluator.real_balanced_accuracy <= 1.0
    loaded = load_evaluator(record=evaluator, blob_store=blob_store, cache_dir=tmp_path)
    assert evaluator_sha256(tmp_path / "evaluators" / str(evaluator.id)) == evaluator.sha256
    assert list(loaded.groups) == evaluator.groups


def test_the_committed_evaluator_of_the_same_content_and_config_is_taken_instead_of_training(
        sessions, blob_store, evaluator, tmp_path):
    """Every machine that onboards the same catalog measures with the one committed evaluator (the benchmarks'),
    found by the training split's content: on another CPU a retrained one would come out as other weights."""
    with sessions() as session:
        content = snapshot_content_sha256(session=session, snapshot_id=evaluator.training_snapshot_id)
    trained = load_evaluator(record=evaluator, blob_store=blob_store, cache_dir=tmp_path / "cache")
    frozen = tmp_path / "frozen"
    digest = trained.save(frozen / evaluator_folder_name(content, TINY_EVALUATOR))
    other_config = replace(TINY_EVALUATOR, seed=TINY_EVALUATOR.seed + 1)
    trained.save(frozen / evaluator_folder_name(content, other_config))  # for another config: not taken
    ticks = []
    taken = train_split_evaluator(sessions=sessions, blob_store=blob_store, created_by="test", config=TINY_EVALUATOR,
                                  frozen=frozen, progress=lambda done, total: ticks.append((done, total)))
    assert taken.sha256 == digest and taken.id != evaluator.id and ticks == [(1, 1)]  # nothing trained
    load_evaluator(record=taken, blob_store=blob_store, cache_dir=tmp_path / "cache2")  # its stored files: that digest
    retrained = train_split_evaluator(sessions=sessions, blob_store=blob_store, created_by="test",
                                      config=replace(TINY_EVALUATOR, epochs=1), frozen=frozen,
                                      progress=lambda done, total: ticks.append((done, total)))
    assert retrained.sha256 not in (digest, evaluator.sha256) and len(ticks) > 2  # no folder: trained step by step


def test_an_untagged_catalog_cannot_train_an_evaluator(sessions, blob_store, licensed_catalog):
    with pytest.raises(InvalidInput) as refused:
        train_split_evaluator(sessions=sessions, blob_store=blob_store, created_by="test", config=TINY_EVALUATOR)
    assert refused.value.code == "evaluator_invalid"


def test_a_model_is_measured_on_heldout_prompts_and_shown(migrated, sessions, blob_store, evaluator,
                                                          tiny_model_folder, client, customer):
    with sessions() as session:
        training = session.get(DatasetSnapshot, evaluator.training_snapshot_id)
        session.expunge(training)
    model_id = register_model(sessions, blob_store, tiny_model_folder, training)
    unmeasured = client.get(f"/v1/models/{model_id}", headers=customer.headers)
    assert unmeasured.status_code == 200 and unmeasured.json()["quality"] is None
    sheet = client.get(f"/v1/models/{model_id}/quality/sheet", headers=customer.headers)
    assert sheet.status_code == 404 and sheet.json()["error"]["code"] == "model_quality_not_found"

    done = []
    measured = measure_model(sessions=sessions, blob_store=blob_store, model_id=model_id,
                             cache_dir=migrated.var_dir, measured_by="test", sampling=FAST_SAMPLING,
                             progress=lambda d, t: done.append((d, t)))
    assert set(REQUIRED_METRICS) <= set(measured.metrics) and measured.metrics["images"] == 4
    assert done[-1][0] == done[-1][1] and measured.evaluator_id == evaluator.id
    assert Image.open(io.BytesIO(blob_store.get(measured.sheet_sha256))).format == "PNG"

    shown = client.get(f"/v1/models/{model_id}", headers=customer.headers).json()["quality"]
    assert shown["evaluator_sha256"] == evaluator.sha256 and shown["id"] == str(measured.id)
    assert shown["metrics"]["gen_balanced_acc"] == measured.metrics["gen_balanced_acc"]
    assert shown["relative"]["times_chance"] == pytest.approx(
        measured.metrics["gen_balanced_acc"] / measured.metrics["chance_balanced"], abs=1e-3)
    png = client.get(f"/v1/models/{model_id}/quality/sheet", headers=customer.headers)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content == blob_store.get(measured.sheet_sha256)
    assert client.get(f"/v1/models/{model_id}/quality/sheet", headers=ADMIN).status_code == 200

    shown_cli = cli(migrated, "models", "show", str(model_id)).stdout
    assert "balanced accuracy" in shown_cli and evaluator.sha256[:16] in shown_cli.replace("\n", "")


@pytest.mark.slow
def test_a_training_job_measures_its_model_as_its_last_stage(migrated, sessions, blob_store, evaluator):
    settings = migrated.model_copy(update={"quality_after_training": True, "quality_per_group": 1,
                                           "attribution_index_after_training": False})
    with sessions() as session, session.begin():
        snapshot = dataset_service.create_snapshot(session=session, name="train", use="base_training",
                                                   created_by="test", filters=SnapshotFilters(heldout="exclude"))
        job = job_service.create_job(session=session, name="measured", recipe_kind="base",
                                     recipe=tiny_base_recipe(max_train_steps=2, checkpoint_every=0),
                                     snapshot_id=snapshot.id, base_model_id=None, requested_by="test")
    assert job_runner.run_job(settings, job.id, worker="test") == "succeeded"
    with sessions() as session:
        job = job_service.get_job(session=session, job_id=job.id)
        measurements = session.scalars(select(ModelQuality).where(ModelQuality.model_id == job.result_model_id)).all()
    assert job.stage == "quality" and job.stage_progress["done"] == job.stage_progress["total"] > 0
    assert len(measurements) == 1 and measurements[0].sampling["per_group"] == 1
    assert "quality: balanced accuracy" in job.log_tail


def test_the_command_line_trains_the_evaluator_and_measures(migrated, sessions, blob_store, grouped_catalog,
                                                             tiny_model_folder, tmp_path):
    trained = cli(migrated, "quality", "train-evaluator", "--epochs", "1").stdout
    assert "real held-out balanced accuracy" in trained
    with sessions() as session:
        training = session.scalars(select(DatasetSnapshot).where(DatasetSnapshot.name.like("%evaluator training"))).one()
        session.expunge(training)
    model_id = register_model(sessions, blob_store, tiny_model_folder, training)
    sheet = tmp_path / "sheet.png"
    measured = cli(migrated, "models", "measure", str(model_id), "--per-group", "2", "--steps", "2",
                   "--sheet", str(sheet)).stdout
    assert "balanced accuracy" in measured and sheet.read_bytes().startswith(b"\x89PNG")
    missing = cli(migrated, "models", "measure", "00000000-0000-0000-0000-000000000000", check=False)
    assert missing.returncode == 1 and "[model_not_found]" in missing.stderr and "Traceback" not in missing.stderr
