"""The real licensed catalog end to end: the full OpenMoji import, and a kill -9 in the middle of one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from benchmarks.quality_common import split_content_sha256
from foundry.catalog import service as catalog_service
from foundry.catalog.models import Asset, CatalogImport, Contributor
from foundry.catalog.sources import OpenMojiSource, open_source
from foundry.datasets import service as dataset_service
from foundry.datasets.schemas import SnapshotFilters
from foundry.licensing.models import LicenseGrant
from training.quality import EvaluatorConfig, frozen_evaluator
from worker.quality import snapshot_content_sha256

pytestmark = pytest.mark.slow


def test_full_openmoji_import(migrated, sessions, blob_store, openmoji_tgz):
    options = catalog_service.import_options(migrated.model_copy(update={"import_workers": 2}))
    source = open_source(openmoji_tgz, max_bytes=options.limits.max_bytes)
    batch = catalog_service.run_import(session_factory=sessions, blob_store=blob_store, source=source,
                                       requested_by="test", options=options)

    assert batch.rows_total == 4495
    rejection_codes = Counter(item["code"] for item in batch.report["rejections"])
    # OpenMoji ships some byte-identical SVGs under several code points: one asset, the rest reported.
    assert set(rejection_codes) <= {"duplicate_in_batch"}
    assert batch.rows_imported + batch.rows_rejected == 4495
    assert batch.contributors_created == 121
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Contributor)) == 121
        assert session.scalar(select(func.count()).select_from(Asset)) == batch.rows_imported
        assert session.scalar(select(func.count()).select_from(LicenseGrant)) == batch.rows_imported
        grinning = session.scalars(select(Asset).where(Asset.source_ref == "openmoji:1F600")).one()
        assert grinning.caption == "grinning face" and "smile" in grinning.tags and grinning.format == "svg"
        assert {"group:smileys-emotion", "subgroup:face-smiling", "family:1F600"} <= set(grinning.tags)
        waving = session.scalars(select(Asset).where(Asset.source_ref == "openmoji:1F44B-1F3FF")).one()
        assert "family:1F44B" in waving.tags, "a skin-tone variant names the drawing it was made from"
        # The held-out split: about a tenth of every group, no group left out
        heldout = dataset_service.catalog_heldout_ids(session=session)
        groups = Counter(t for a in session.scalars(select(Asset)) for t in a.tags if t.startswith("group:"))
        held = Counter(t for a in session.scalars(select(Asset).where(Asset.id.in_(heldout)))
                       for t in a.tags if t.startswith("group:"))
        assert set(held) == set(groups) and all(0.08 <= held[g] / groups[g] < 0.3 for g in groups), held
        author = session.get(Contributor, grinning.contributor_id)
        assert author.display_name == "Emily Jäger" and author.external_ref == "openmoji:Emily Jäger"
        grant = session.scalars(select(LicenseGrant).where(LicenseGrant.asset_id == grinning.id)).one()
        assert grant.license_code == "CC-BY-SA-4.0" and grant.credit_line.startswith("OpenMoji")
        assert grant.valid_from.date().isoformat() == "2018-04-18"
    # every duplicate really is byte-identical to the row it names
    source_rows = {row.row_number: row for row in OpenMojiSource(openmoji_tgz, options.limits.max_bytes).rows()}
    for item in batch.report["rejections"]:
        first = int(item["message"].rsplit(" ", 1)[-1])
        assert source_rows[item["row"]].data == source_rows[first].data
    assert blob_store.stage_ids() == []

    # the product (demo, CLI) and the quality benchmarks find the committed evaluator of this training split on
    # a fresh database, by the same content
    with sessions() as session, session.begin():
        snapshot = dataset_service.create_snapshot(session=session, name="quality-training", use="base_training",
                                                   filters=SnapshotFilters(heldout="exclude"), created_by="test")
        entries = dataset_service.snapshot_entries(session=session, snapshot_id=snapshot.id)
        tags = dict(session.execute(select(Asset.id, Asset.tags)).all())
        benchmark_content = split_content_sha256([{"sha256": e.asset_sha256, "caption": e.caption,
                                                   "tags": tuple(tags[e.asset_id] or ())} for e in entries])
        content = snapshot_content_sha256(session=session, snapshot_id=snapshot.id)
    assert content == benchmark_content and frozen_evaluator(content, EvaluatorConfig()) is not None


def _env(settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "FOUNDRY_VAR_DIR": str(settings.var_dir),
        "FOUNDRY_DATABASE_URL": settings.resolved_database_url,
        "FOUNDRY_BLOB_URL": settings.resolved_blob_url,
        "FOUNDRY_IMPORT_WORKERS": "1",
    })
    return env


def test_killed_import_leaves_no_rows_and_no_blobs(migrated, sessions, blob_store, openmoji_tgz):
    env = _env(migrated)
    process = subprocess.Popen([sys.executable, "-m", "foundry.cli", "catalog", "import", str(openmoji_tgz)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    staging = migrated.var_dir / "blobstore" / "staging"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if staging.exists() and sum(1 for _ in staging.rglob("*")) > 200:
            break
        assert process.poll() is None, "the import finished before it could be killed"
        time.sleep(0.05)
    else:
        pytest.fail("the import never started staging blobs")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    with sessions() as session:
        for model in (Asset, Contributor, LicenseGrant, CatalogImport):
            assert session.scalar(select(func.count()).select_from(model)) == 0, model.__name__
    assert list(blob_store.iter_keys()) == []
    assert blob_store.stage_ids(), "the crash should have left its staging area behind"

    recovered = subprocess.run([sys.executable, "-m", "foundry.cli", "blobs", "recover"], env=env,
                               capture_output=True, text=True, check=True)
    assert "discarded 1" in recovered.stdout
    assert blob_store.stage_ids() == [] and list(blob_store.iter_keys()) == []
