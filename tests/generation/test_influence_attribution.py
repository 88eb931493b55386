"""Influence attribution wired end to end: index at the end of training, blended royalties per asset,
the method in the manifest, recorded parameters that reproduce the split, invalidation."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api.app import create_app
from foundry.accounts import service as accounts_service
from foundry.attribution import service as attribution_service
from foundry.attribution.policy import INFLUENCE_TOP_K, dispute_verdict
from foundry.catalog.models import Contributor
from foundry.datasets.models import SnapshotEntry
from foundry.db import utcnow
from foundry.errors import Conflict, InvalidInput
from foundry.generation.models import Generation
from foundry.ledger import service as ledger_service
from foundry.models_registry import service as registry_service
from foundry.models_registry.models import RegisteredModel
from foundry.royalties.models import AttributionLine
from foundry.training_jobs import service as job_service
from foundry.training_jobs.models import TrainingJob
from foundry.usecases import disputes as dispute_usecases
from provenance.c2pa_manifest import ContentCredentials
from provenance.influence import METHOD, InfluenceConfig
from tests.api.test_artist_sessions import sign_in
from tests.generation.conftest import ADMIN, create_tiny_job, make_customer, register_model
from tests.test_cli_and_migrations import cli
from training.unlearning import UnlearningConfig
from worker import jobs as job_runner
from worker.attribution import audit_generation, build_index
from worker.disputes import check_dispute

SMALL = InfluenceConfig(timesteps=(600,), payment_timesteps=(200, 600), projection_dim=256, normalisation="calibrated",
                        calibration_outputs=4, pixel_weight=0.75)
"""Split like the product's (evidence and payment views), its evidence calibrated here so the API flow is tested
with calibration outputs in both views, and blended with pixel similarity (version 4); the training job builds
the default."""


@pytest.fixture
def indexed_model(migrated, sessions, blob_store, served_model, tmp_path, toy_outputs_count):
    build_index(sessions=sessions, blob_store=blob_store, model_id=served_model, cache_dir=tmp_path / "models",
                config=SMALL, built_by="test")
    return served_model


def generate(client, customer, model_id, **extra):
    body = {"model_id": str(model_id), "prompt": "red blocks", "seed": 11, "num_images": 2, "steps": 4, **extra}
    response = client.post("/v1/generations", json=body, headers=customer.headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_training_job_builds_the_index_as_its_last_stage(migrated, sessions, base_snapshot, blob_store):
    job = create_tiny_job(sessions, base_snapshot, "indexed")
    assert job_runner.run_job(migrated, job.id, worker="test") == "succeeded"
    with sessions() as session:
        job = job_service.get_job(session=session, job_id=job.id)
        model = registry_service.get_model(session=session, model_id=job.result_model_id)
        index = attribution_service.active_index(session=session, model=model)
        assert job.stage == "attribution_index" and job.stage_progress == {"done": 8, "total": 8}
        assert "attribution index 8/8 images" in job.log_tail
        assert index is not None and index.entry_count == 8 and index.training_job_id == job.id
        assert index.fingerprint == {"snapshot_merkle_root": base_snapshot.merkle_root,
                                     "weights_sha256": model.weights_sha256}
        assert (index.method, index.version) == (METHOD, InfluenceConfig().as_dict()["version"])
        stored = attribution_service.load_index(blob_store=blob_store, row=index)
        # the product's method: a self-normalised evidence view (no calibration outputs) and a payment view
        # centred on the model's own outputs
        outputs = migrated.influence_calibration_outputs  # the product's 32; tests draw fewer
        assert stored.config == InfluenceConfig(calibration_outputs=outputs).as_dict() and stored.calibration is None
        assert (InfluenceConfig().normalisation, InfluenceConfig().payment_normalisation) == ("self", "centered")
        assert stored.payment is not None and stored.payment.calibration.shape == (outputs, 2048)


def test_a_job_whose_worker_died_after_registering_only_builds_the_index(migrated, sessions, base_snapshot,
                                                                         blob_store, tiny_model_folder):
    model_id = register_model(sessions, blob_store, tiny_model_folder, base_snapshot)
    job = create_tiny_job(sessions, base_snapshot, "resumed")
    with sessions() as session, session.begin():
        assert job_service.claim_job(session=session, job_id=job.id, worker="dead", stale_after=timedelta(0))
        job_service.record_trained_model(session=session, job_id=job.id, model_id=model_id, artifacts=[], step=2,
                                         next_stage="attribution_index")
        session.execute(update(TrainingJob).where(TrainingJob.id == job.id)
                        .values(heartbeat_at=utcnow() - timedelta(days=1)))
    assert job_runner.run_job(migrated, job.id, worker="live") == "succeeded"
    with sessions() as session:
        assert session.scalar(select(RegisteredModel).where(RegisteredModel.training_job_id == job.id)) is None
        job = job_service.get_job(session=session, job_id=job.id)
        assert job.result_model_id == model_id and job.status == "succeeded"
        model = registry_service.get_model(session=session, model_id=model_id)
        assert attribution_service.active_index(session=session, model=model) is not None


def test_generations_pay_influence_per_asset_beside_pro_rata(client, customer, sessions, blob_store, indexed_model):
    body = generate(client, customer, indexed_model)
    attribution = body["attribution"]
    assert attribution["method"] == "blend"
    assert attribution["charge"] == 50 and attribution["pool"] == 20
    methods = Counter(line["method"] for line in attribution["contributors"])
    assert methods["pro_rata"] == 3 and methods["influence"] >= 1
    generation_id = uuid.UUID(body["id"])
    with sessions() as session:
        entries = ledger_service.entries_for(session=session, generation_id=generation_id)
        snapshot_assets = set(session.scalars(select(SnapshotEntry.asset_id)))
        royalties = [e for e in entries if e.kind == "royalty"]
        influence = [e for e in royalties if e.method == "influence"]
        pro_rata = [e for e in royalties if e.method == "pro_rata"]
        assert sum(e.amount for e in royalties) == 20
        assert influence and all(e.asset_id in snapshot_assets for e in influence)
        assert pro_rata and all(e.asset_id is None for e in pro_rata)
        # alpha 1/2: each half of the pool is within one unit of 10 (one exact split over all parts)
        assert abs(sum(e.amount for e in influence) - 10) <= 1
        lines = session.scalars(select(AttributionLine).where(AttributionLine.generation_id == generation_id)).all()
        assert sum(line.amount for line in lines) == 20
        for line in lines:
            if line.method == "influence":
                assert line.top_assets and sum(a["amount"] for a in line.top_assets) == line.amount
        generation = session.get(Generation, generation_id)
        recorded = generation.attribution["parameters"]
        assert recorded["alpha"] == "1/2" and recorded["influence"]["config"] == SMALL.as_dict()
        assert recorded["influence"]["top_k"] == INFLUENCE_TOP_K
        assert generation.timings["attribution_s"] > 0
    delivered = client.get(f"/v1/generations/{generation_id}/images/0", headers=customer.headers).content
    manifest = ContentCredentials(client.app.state.settings.resolved_signing_dir).read(delivered)
    assert manifest.verdict == "trusted"
    assert manifest.generation["attribution"]["method"] == "blend"
    assert manifest.generation["attribution"]["influence"] == {
        "method": METHOD, "version": "4", "alpha": "1/2", "index_id": recorded["influence"]["index_id"]}


def test_the_recorded_parameters_reproduce_the_split(client, customer, sessions, blob_store, indexed_model,
                                                     tmp_path):
    body = generate(client, customer, indexed_model, prompt="blue blocks", seed=5)
    generation_id = uuid.UUID(body["id"])
    audit = audit_generation(sessions=sessions, blob_store=blob_store, generation_id=generation_id,
                             cache_dir=tmp_path / "models")
    assert audit.method == "blend" and audit.matches
    assert any(part[0] == "influence" for part in audit.posted)
    assert sum(part[3] for part in audit.posted) == body["attribution"]["pool"]
    # a ledger that drifted from the recorded method would not match: alpha changed after the fact
    with sessions() as session, session.begin():
        session.execute(update(Generation).where(Generation.id == generation_id).values(attribution={
            **body["attribution"], "parameters": {**session.get(Generation, generation_id).attribution["parameters"],
                                                  "alpha": "1/4"}}))
    assert not audit_generation(sessions=sessions, blob_store=blob_store, generation_id=generation_id,
                                cache_dir=tmp_path / "models").matches


@pytest.mark.parametrize("older, version", [(replace(SMALL, payment_timesteps=None, pixel_weight=0.0), "2"),
                                            (replace(SMALL, pixel_weight=0.0), "3")], ids=["one-view", "unblended"])
def test_an_index_built_by_an_older_method_version_still_ranks_pays_and_audits_as_it(
        client, customer, sessions, blob_store, served_model, tmp_path, toy_outputs_count, older, version):
    """Indexes built before method version 3 had one score for evidence and payment: generations on them are
    recorded as version 2 and show the paying score as the evidence score. Before version 4 the evidence view
    was gradients alone (version 3). Either way the generation is recorded, shown and audited as its index was
    built."""
    build_index(sessions=sessions, blob_store=blob_store, model_id=served_model, cache_dir=tmp_path / "models",
                config=older, built_by="test")
    body = generate(client, customer, served_model, prompt="blue blocks", seed=7)
    generation_id = uuid.UUID(body["id"])
    with sessions() as session:
        recorded = session.get(Generation, generation_id).attribution["parameters"]["influence"]
    assert recorded["version"] == version and recorded["config"] == older.as_dict()
    assert "pixel_weight" not in recorded["config"] and ("payment_timesteps" in recorded["config"]) == (version == "3")
    evidence = client.get(f"/v1/generations/{generation_id}/attribution", headers=customer.headers).json()
    assert evidence["influence"]["version"] == version
    if version == "2":
        for output in evidence["outputs"]:
            assert all(a["payment_score"] == a["score"] for a in output["assets"] if a["role"] == "evidence")
    assert audit_generation(sessions=sessions, blob_store=blob_store, generation_id=generation_id,
                            cache_dir=tmp_path / "models").matches


def test_a_preconditioned_index_keeps_its_preconditioner_and_generations_pay_and_audit_through_it(
        client, customer, sessions, blob_store, served_model, tmp_path, toy_outputs_count):
    """An EK-FAC index is fitted on a seeded sample of the snapshot at build time; every output is scored through
    the preconditioner the index keeps, at generation time and again when the generation is audited."""
    config = replace(SMALL, preconditioner="ekfac", preconditioner_examples=4)
    row = build_index(sessions=sessions, blob_store=blob_store, model_id=served_model, cache_dir=tmp_path / "models",
                      config=config, built_by="test")
    stored = attribution_service.load_index(blob_store=blob_store, row=row)
    assert stored.config == config.as_dict() and stored.config["preconditioner"] == "ekfac"
    assert stored.preconditioner and any(name.endswith("/out_basis") for name in stored.preconditioner)
    body = generate(client, customer, served_model, prompt="blue blocks", seed=5)
    assert body["attribution"]["method"] == "blend"
    assert any(line["method"] == "influence" for line in body["attribution"]["contributors"])
    audit = audit_generation(sessions=sessions, blob_store=blob_store, generation_id=uuid.UUID(body["id"]),
                             cache_dir=tmp_path / "models")
    assert audit.matches and any(part[0] == "influence" for part in audit.posted)


def test_a_changed_model_or_snapshot_invalidates_the_index(client, customer, sessions, blob_store, indexed_model,
                                                           tiny_model_folder, base_snapshot):
    with sessions() as session:
        model = session.get(RegisteredModel, indexed_model)
        row = attribution_service.active_index(session=session, model=model)
        index = attribution_service.load_index(blob_store=blob_store, row=row)
    other_id = register_model(sessions, blob_store, tiny_model_folder, base_snapshot, name="same weights, new row")
    with sessions() as session, session.begin():
        session.execute(update(RegisteredModel).where(RegisteredModel.id == other_id)
                        .values(snapshot_merkle_root="00" * 32))
    with sessions() as session, session.begin():
        other = session.get(RegisteredModel, other_id)
        assert attribution_service.active_index(session=session, model=other) is None
        with pytest.raises(Conflict) as refused:
            attribution_service.record_index(session=session, model_id=other_id, index=index, blob_sha256="ab" * 32,
                                             build_seconds=1.0, built_by="test", training_job_id=None)
        assert refused.value.code == "attribution_index_stale"
    # weights digest changed under the index (a retrain registered over it): generations fall back to pro rata
    with sessions() as session, session.begin():
        session.execute(update(RegisteredModel).where(RegisteredModel.id == indexed_model)
                        .values(weights_sha256="ff" * 32))
    body = generate(client, customer, indexed_model, num_images=1)
    assert body["attribution"]["method"] == "pro_rata"
    assert {line["method"] for line in body["attribution"]["contributors"]} == {"pro_rata"}


def test_alpha_is_set_per_model_by_admins(client, customer, sessions, indexed_model):
    url = f"/v1/models/{indexed_model}/attribution"
    assert client.get(url, headers=ADMIN).json()["influence_alpha_bps"] == 5000
    assert client.put(url, json={"influence_alpha_bps": 10_000}, headers=customer.headers).status_code == 403
    assert client.put(url, json={"influence_alpha_bps": 10_001}, headers=ADMIN).status_code == 422
    assert client.put(url, json={"influence_alpha_bps": "5000"}, headers=ADMIN).status_code == 422
    assert client.put(f"/v1/models/{uuid.uuid4()}/attribution", json={"influence_alpha_bps": 1},
                      headers=ADMIN).status_code == 404
    builds = client.get(f"/v1/models/{indexed_model}/attribution-indexes", headers=ADMIN).json()
    assert len(builds) == 1 and builds[0]["config"] == SMALL.as_dict()
    assert client.post(f"/v1/models/{indexed_model}/attribution-indexes", headers=customer.headers).status_code == 403
    assert client.post(f"/v1/models/{uuid.uuid4()}/attribution-indexes", headers=ADMIN).status_code == 404
    answer = client.put(url, json={"influence_alpha_bps": 10_000}, headers=ADMIN)
    assert answer.status_code == 200 and answer.json()["index"]["entry_count"] == 8
    body = generate(client, customer, indexed_model, num_images=1)
    assert {line["method"] for line in body["attribution"]["contributors"]} == {"influence"}
    with sessions() as session:
        entries = ledger_service.entries_for(session=session, generation_id=uuid.UUID(body["id"]))
        assert sum(e.amount for e in entries if e.kind == "royalty") == 10
        assert all(e.asset_id is not None for e in entries if e.kind == "royalty")


def test_a_failing_influence_scorer_falls_back_to_pro_rata_and_says_so(client, customer, sessions, indexed_model,
                                                                       monkeypatch):
    from training.inference import LoadedPipeline

    def broken(*_args, **_kwargs):
        raise RuntimeError("scorer exploded")

    monkeypatch.setattr(LoadedPipeline, "influence_scores", broken)
    body = generate(client, customer, indexed_model, num_images=1)
    assert body["status"] == "succeeded" and body["attribution"]["method"] == "pro_rata"
    with sessions() as session:
        recorded = session.get(Generation, uuid.UUID(body["id"])).attribution["parameters"]
    assert "scorer exploded" in recorded["influence_unavailable"]["unavailable"] and "influence" not in recorded


def test_blank_or_noise_outputs_pay_nobody_by_influence(client, customer, sessions, blob_store, migrated,
                                                       served_model, tmp_path):
    """The toy model draws noise: with the check on, its pool goes pro rata and says why."""
    build_index(sessions=sessions, blob_store=blob_store, model_id=served_model, cache_dir=tmp_path / "models",
                config=SMALL, built_by="test")
    body = generate(client, customer, served_model)
    assert body["attribution"]["method"] == "pro_rata"
    assert {line["method"] for line in body["attribution"]["contributors"]} == {"pro_rata"}
    with sessions() as session:
        recorded = session.get(Generation, uuid.UUID(body["id"])).attribution["parameters"]
    unavailable = recorded["influence_unavailable"]
    assert unavailable["uninformative"] == ["noise", "noise"] and "pro rata" in unavailable["unavailable"]
    audit = audit_generation(sessions=sessions, blob_store=blob_store, generation_id=uuid.UUID(body["id"]),
                             cache_dir=tmp_path / "models")
    assert audit.method == "pro_rata" and audit.matches


def test_what_counts_as_nothing_to_attribute():
    import numpy as np

    from provenance.influence import uninformative

    rng = np.random.default_rng(0)
    assert uninformative(np.full((32, 32, 3), 250, dtype=np.uint8)) == "blank"
    assert uninformative(np.full((32, 32, 3), 250, dtype=np.uint8) + rng.integers(0, 3, (32, 32, 3))) == "blank"
    assert uninformative(rng.integers(0, 256, (32, 32, 3))) == "noise"
    drawing = np.full((32, 32, 3), 255, dtype=np.uint8)
    drawing[8:24, 8:24] = (200, 30, 30)  # a red square on white, as the catalog draws
    assert uninformative(drawing) is None
    assert uninformative(drawing[:, :, 0]) is None  # greyscale works too


def test_each_output_shows_its_evidence_to_the_customer_the_artist_and_the_cli(client, customer, sessions,
                                                                               indexed_model, migrated):
    body = generate(client, customer, indexed_model, prompt="green blocks", seed=3)
    generation_id = body["id"]
    evidence = client.get(f"/v1/generations/{generation_id}/attribution", headers=customer.headers)
    assert evidence.status_code == 200, evidence.text
    evidence = evidence.json()
    assert evidence["method"] == "blend" and evidence["influence"]["method"] == METHOD
    assert [o["index"] for o in evidence["outputs"]] == [0, 1] and all(o["scored"] for o in evidence["outputs"])
    with sessions() as session:
        snapshot_assets = {str(a) for a in session.scalars(select(SnapshotEntry.asset_id))}
        names = {str(c.id): c.display_name for c in session.scalars(select(Contributor))}
    for output in evidence["outputs"]:
        # the most influential by the evidence view first, then the best paid of the rest, by the payment view
        shown = [a for a in output["assets"] if a["role"] == "evidence"]
        paid_rest = [a for a in output["assets"] if a["role"] == "paid"]
        assert shown and output["assets"] == shown + paid_rest and len(shown) <= 10 and len(paid_rest) <= 10
        assert [a["score"] for a in shown] == sorted((a["score"] for a in shown), reverse=True)
        assert all(a["score"] > 0 and a["payment_score"] is not None for a in shown)
        assert all(a["share_ppm"] > 0 for a in paid_rest)
        shares = [a["share_ppm"] for a in paid_rest]
        assert shares == sorted(shares, reverse=True) and sum(a["share_ppm"] for a in output["assets"]) <= 1_000_000
        assert all(a["asset_id"] in snapshot_assets and a["display_name"] == names[a["contributor_id"]]
                   for a in output["assets"])
        assert client.get(output["url"], headers=customer.headers).status_code == 200
    assert sum(line["amount"] for line in evidence["paid"]) == evidence["pool"] == 20
    # another tenant does not see it; an admin does
    other = make_customer(sessions, "Evidence Rival")
    assert client.get(f"/v1/generations/{generation_id}/attribution", headers=other.headers).status_code == 404
    assert client.get(f"/v1/generations/{generation_id}/attribution", headers=ADMIN).status_code == 200

    # the artist page: a paid contributor (influence or pro rata) sees the output beside only their own images
    top = evidence["outputs"][0]["assets"][0]
    paid_ids = {line["contributor_id"] for line in evidence["paid"]}
    with sessions() as session, session.begin():
        _, key = accounts_service.create_api_key(session=session, role="artist", name="evidence",
                                                 contributor_id=uuid.UUID(top["contributor_id"]))
        outsider = Contributor(display_name="Not In This Model", external_ref=f"outsider-{uuid.uuid4().hex}")
        session.add(outsider)
        session.flush()
        _, outsider_key = accounts_service.create_api_key(session=session, role="artist", name="outsider",
                                                          contributor_id=outsider.id)
    assert top["contributor_id"] in paid_ids and str(outsider.id) not in paid_ids
    with TestClient(create_app(migrated), follow_redirects=False) as browser:
        sign_in(browser, key)
        page = browser.get(f"/artist/outputs/{generation_id}")
        assert page.status_code == 200 and "green blocks" in page.text
        assert f"/artist/assets/{top['asset_id']}/thumbnail" in page.text
        mine = {a["asset_id"] for o in evidence["outputs"] for a in o["assets"]
                if a["contributor_id"] == top["contributor_id"]}
        shown = set(re.findall(r"/artist/assets/([0-9a-f-]{36})/thumbnail", page.text))
        assert shown == mine
        image = browser.get(f"/artist/outputs/{generation_id}/images/0")
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        assert browser.get(f"/artist/assets/{top['asset_id']}/thumbnail").status_code == 200
        assert f'href="/artist/outputs/{generation_id}"' in browser.get("/artist").text
    with TestClient(create_app(migrated), follow_redirects=False) as browser:
        sign_in(browser, outsider_key)
        assert browser.get(f"/artist/outputs/{generation_id}").status_code == 404
        assert browser.get(f"/artist/outputs/{generation_id}/images/0").status_code == 404

    # the command line prints the same evidence
    explained = " ".join(cli(migrated, "generations", "explain", generation_id).stdout.split())
    assert "output 0: most influential training images" in explained and names[top["contributor_id"]] in explained
    assert "paid from the pool" in explained and "split by blend" in explained


def test_a_disputed_share_is_checked_by_unlearning_and_recorded_without_touching_the_ledger(
        client, customer, sessions, blob_store, indexed_model, migrated, tmp_path):
    body = generate(client, customer, indexed_model, prompt="red blocks", seed=21)
    generation_id = uuid.UUID(body["id"])
    disputed = uuid.UUID(body["attribution"]["contributors"][0]["contributor_id"])
    with sessions() as session:
        ledger_before = len(ledger_service.entries_for(session=session, generation_id=generation_id))
    with sessions() as session, session.begin():
        with pytest.raises(InvalidInput) as refused:
            dispute_usecases.open_dispute(session=session, generation_id=generation_id, contributor_id=uuid.uuid4(),
                                          reason="not mine", opened_by="test")
        assert refused.value.code == "contributor_not_in_model"
        with pytest.raises(InvalidInput):
            dispute_usecases.open_dispute(session=session, generation_id=generation_id, contributor_id=disputed,
                                          reason="   ", opened_by="test")
        dispute_id = dispute_usecases.open_dispute(session=session, generation_id=generation_id,
                                                   contributor_id=disputed, reason="the output is not like my work",
                                                   opened_by="test").id
    quick = UnlearningConfig(max_steps=4, learning_rate=1e-2)
    checked = check_dispute(sessions=sessions, blob_store=blob_store, dispute_id=dispute_id,
                            cache_dir=tmp_path / "models", config=quick)
    result = checked.result
    assert checked.status == "checked" and checked.verdict in ("supported", "not_supported", "inconclusive")
    assert 0 <= result["rank_among_contributors"] <= 1 and result["reference_contributors"] == 2  # 3 in the toy data
    assert result["output_loss_after"] > result["output_loss_before"]  # the outputs were really unlearnt
    assert 1 <= result["unlearning_steps"] <= 4 and result["check"]["method"] == "unlearn-output-sgd"
    assert result["paid_share_ppm"] == sum(line["share_ppm"] for line in body["attribution"]["contributors"]
                                           if line["contributor_id"] == str(disputed))
    assert dispute_verdict(result["disputed_mean_rise"], [result["reference_median_rise"]] * 2)[0] in (0.0, 0.5, 1.0)
    with pytest.raises(Conflict):
        check_dispute(sessions=sessions, blob_store=blob_store, dispute_id=dispute_id, cache_dir=tmp_path / "models",
                      config=quick)
    with sessions() as session:
        assert len(ledger_service.entries_for(session=session, generation_id=generation_id)) == ledger_before
    listed = " ".join(cli(migrated, "generations", "disputes", str(generation_id)).stdout.split())
    assert str(dispute_id)[:8] in listed and checked.verdict in listed
    wrong = cli(migrated, "generations", "dispute", str(generation_id), "--contributor", str(uuid.uuid4()),
                "--reason", "x", check=False)
    assert wrong.returncode == 1 and "contributor_not_in_model" in wrong.stderr


def test_dispute_verdicts_rank_the_contributor_among_the_others():
    assert dispute_verdict(0.9, [0.1, 0.2, 0.3, 0.4]) == (1.0, "supported")
    assert dispute_verdict(0.0, [0.1, 0.2, 0.3, 0.4]) == (0.0, "not_supported")
    assert dispute_verdict(0.25, [0.1, 0.2, 0.3, 0.4]) == (0.5, "not_supported")
    assert dispute_verdict(0.35, [0.1, 0.2, 0.3, 0.4]) == (0.75, "inconclusive")
    assert dispute_verdict(0.2, [0.2, 0.2]) == (0.5, "not_supported")
    assert dispute_verdict(1.0, []) == (0.5, "inconclusive")
