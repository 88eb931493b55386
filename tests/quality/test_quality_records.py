"""Quality evaluators and measurements as records: checked, append-only, newest first."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from foundry.catalog.models import Asset
from foundry.datasets import service as dataset_service
from foundry.datasets.schemas import SnapshotFilters
from foundry.errors import Conflict, InvalidInput, NotFound
from foundry.models_registry import service as registry_service
from foundry.models_registry.models import RegisteredModel
from foundry.quality import service as quality_service
from foundry.quality.policy import REQUIRED_METRICS, relative_figures, summary_line
from tests.catalog.test_import import import_grouped_catalog

METRICS = {"gen_balanced_acc": 0.3, "real_balanced_acc": 0.5, "chance_balanced": 0.1, "kid": 0.25,
           "kid_real_floor": 0.05, "precision": 0.4, "recall": 0.6, "heldout_loss": 0.12}


@pytest.fixture
def split_snapshots(settings, sessions, blob_store, tmp_path):
    import_grouped_catalog(settings, sessions, blob_store, tmp_path / "cat", per_group=10, first_seed=700,
                           group_seed_step=13)
    snapshots = {}
    with sessions() as session, session.begin():
        assert session.scalars(select(Asset)).first() is not None
        for heldout in ("exclude", "only", None):
            snapshots[heldout] = dataset_service.create_snapshot(
                session=session, name=f"split-{heldout}", use="base_training", created_by="test",
                filters=SnapshotFilters(heldout=heldout)).id
    return snapshots


@pytest.fixture
def model_id(sessions, blob_store, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "IFPipeline"}))
    with sessions() as session, session.begin():
        return registry_service.register_external(session=session, blob_store=blob_store, folder=folder,
                                                  name="m").id


def register(sessions, training, heldout, groups=("faces", "flags")):
    with sessions() as session, session.begin():
        return quality_service.register_evaluator(
            session=session, split="quality-v1", training_snapshot_id=training, heldout_snapshot_id=heldout,
            sha256="a" * 64, files={"evaluator.safetensors": "b" * 64}, config={"width": 32}, groups=list(groups),
            subgroups=["x", "y"], real_balanced_accuracy=0.5, real_subgroup_balanced_accuracy=0.3,
            created_by="test")


def test_an_evaluator_learns_outside_the_heldout_split_and_is_judged_inside_it(sessions, split_snapshots):
    for training, heldout in ((None, "only"), ("exclude", "exclude"), ("only", "exclude"), ("exclude", None)):
        with pytest.raises(InvalidInput) as refused:
            register(sessions, split_snapshots[training], split_snapshots[heldout])
        assert refused.value.code == "evaluator_snapshots_invalid"
    with pytest.raises(InvalidInput):
        register(sessions, split_snapshots["exclude"], split_snapshots["only"], groups=("faces",))
    first = register(sessions, split_snapshots["exclude"], split_snapshots["only"])
    second = register(sessions, split_snapshots["exclude"], split_snapshots["only"])
    with sessions() as session:
        assert quality_service.current_evaluator(session=session, split="quality-v1").id == second.id != first.id
        assert quality_service.current_evaluator(session=session, split="other") is None


def test_measurements_are_complete_and_the_newest_is_the_models_figure(sessions, split_snapshots, model_id):
    evaluator = register(sessions, split_snapshots["exclude"], split_snapshots["only"])
    with sessions() as session:
        assert quality_service.latest_measurement(session=session, model_id=model_id) is None
        with pytest.raises(NotFound):
            quality_service.require_measurement(session=session, model_id=model_id)
    for missing in REQUIRED_METRICS:
        partial = {k: v for k, v in METRICS.items() if k != missing}
        with pytest.raises(InvalidInput) as refused, sessions() as session, session.begin():
            quality_service.record_measurement(session=session, model_id=model_id, evaluator_id=evaluator.id,
                                               metrics=partial, sampling={}, sheet_sha256=None, measured_by="t")
        assert refused.value.code == "quality_metrics_incomplete" and missing in refused.value.message
    for number, accuracy in enumerate((0.2, 0.3)):
        with sessions() as session, session.begin():
            quality_service.record_measurement(
                session=session, model_id=model_id, evaluator_id=evaluator.id,
                metrics={**METRICS, "gen_balanced_acc": accuracy}, sampling={"num_inference_steps": 25},
                sheet_sha256=str(number) * 64, measured_by="test")
    with sessions() as session:
        latest = quality_service.require_measurement(session=session, model_id=model_id)
    assert latest.metrics["gen_balanced_acc"] == 0.3 and latest.sheet_sha256 == "1" * 64
    assert latest.evaluator_sha256 == "a" * 64
    assert latest.relative == {"of_ceiling": 0.6, "times_chance": 3.0, "kid_over_floor": 0.2}


def test_relative_figures_leave_out_what_cannot_be_computed():
    assert relative_figures({}) == {"of_ceiling": None, "times_chance": None, "kid_over_floor": None}
    assert relative_figures({**METRICS, "real_balanced_acc": 0.0})["of_ceiling"] is None


def test_a_model_any_stage_of_which_saw_heldout_images_is_not_measured(sessions, blob_store, tmp_path,
                                                                       split_snapshots, model_id):
    evaluator = register(sessions, split_snapshots["exclude"], split_snapshots["only"])
    folder = tmp_path / "child"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "IFSuperResolutionPipeline"}))
    with sessions() as session, session.begin():
        child_id = registry_service.register_external(session=session, blob_store=blob_store, folder=folder,
                                                      name="child").id

    def measure(parent_snapshot, child_snapshot):
        with sessions() as session, session.begin():
            parent, child = session.get(RegisteredModel, model_id), session.get(RegisteredModel, child_id)
            parent.snapshot_id, child.parent_id = split_snapshots[parent_snapshot], model_id
            child.snapshot_id = split_snapshots[child_snapshot]
        with sessions() as session, session.begin():
            quality_service.record_measurement(session=session, model_id=child_id, evaluator_id=evaluator.id,
                                               metrics=METRICS, sampling={}, sheet_sha256=None, measured_by="t")

    for parent_snapshot, child_snapshot in ((None, "exclude"), ("exclude", "only"), ("exclude", None)):
        with pytest.raises(Conflict) as refused:
            measure(parent_snapshot, child_snapshot)
        assert refused.value.code == "heldout_contaminated" and "held-out images" in refused.value.message
    measure("exclude", "exclude")
    with sessions() as session:
        assert quality_service.require_measurement(session=session, model_id=child_id).metrics == METRICS


def test_the_summary_line_shows_the_accuracy_interval_when_the_measurement_has_one():
    assert summary_line(METRICS).startswith("balanced accuracy 0.300 (chance 0.100, real ceiling 0.500; 3.00x chance")
    with_interval = summary_line({**METRICS, "gen_balanced_acc_ci95": [0.25, 0.35]})
    assert with_interval.startswith("balanced accuracy 0.300 [0.250, 0.350] (chance 0.100")
