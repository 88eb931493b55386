"""The catalog's fixed held-out split: stratified, families kept together, disjoint from training snapshots."""

from __future__ import annotations

import hashlib
import random
import uuid
from collections import Counter

import pytest
from sqlalchemy import select

from foundry.accounts import service as accounts_service
from foundry.catalog.models import Asset
from foundry.datasets import service as dataset_service
from foundry.datasets.policy import SplitCandidate, heldout_asset_ids
from foundry.datasets.schemas import SnapshotFilters
from foundry.errors import InvalidInput
from tests.catalog.test_import import import_grouped_catalog


def candidate(number: int, group: str, family: str | None = None, near: uuid.UUID | None = None) -> SplitCandidate:
    tags = (f"group:{group}",) + ((f"family:{family}",) if family else ())
    return SplitCandidate(uuid.UUID(int=number + 1), hashlib.sha256(str(number).encode()).hexdigest(), tags, near)


def catalog_of(sizes: dict[str, int]) -> list[SplitCandidate]:
    items, number = [], 0
    for group, size in sizes.items():
        for _ in range(size):
            items.append(candidate(number, group))
            number += 1
    return items


def test_every_group_gives_at_least_its_tenth():
    items = catalog_of({"people": 240, "flags": 27, "symbols": 9, "": 5})
    held = heldout_asset_ids(items)
    per_group = Counter(c.stratum for c in items if c.asset_id in held)
    assert per_group == {"people": 24, "flags": 3, "symbols": 1, "": 1}


def test_the_split_is_a_pure_function_of_the_catalog():
    items = catalog_of({"a": 50, "b": 30})
    shuffled = items[:]
    random.Random(3).shuffle(shuffled)
    assert heldout_asset_ids(items) == heldout_asset_ids(shuffled)
    assert heldout_asset_ids(items) != heldout_asset_ids(items, split="another-split")
    with pytest.raises(ValueError):
        heldout_asset_ids(items, fraction=1.0)


def test_families_and_near_duplicates_stay_on_one_side():
    items = catalog_of({"people": 60})
    variants = [candidate(100 + tone, "people", family="1F44B") for tone in range(5)]
    base = candidate(200, "people", family="1F44B")
    near = candidate(201, "people", near=base.asset_id)
    items += [*variants, base, near]
    for split in (f"split-{n}" for n in range(40)):
        held = heldout_asset_ids(items, split=split)
        family = {c.asset_id for c in [*variants, base, near]}
        assert family <= held or not family & held, f"{split} cut a family in two"
    assert any({c.asset_id for c in variants} <= heldout_asset_ids(items, split=f"split-{n}") for n in range(40))


@pytest.fixture
def grouped_catalog(settings, sessions, blob_store, tmp_path):
    import_grouped_catalog(settings, sessions, blob_store, tmp_path / "cat", per_group=15, first_seed=400,
                           group_seed_step=17)
    with sessions() as session:
        return {a.id: a.tags for a in session.scalars(select(Asset))}


def snapshot_members(sessions, **filters) -> set[uuid.UUID]:
    with sessions() as session, session.begin():
        snap = dataset_service.create_snapshot(session=session, name="s", use="base_training",
                                               filters=SnapshotFilters(**filters), created_by="test")
        return {e.asset_id for e in dataset_service.snapshot_entries(session=session, snapshot_id=snap.id)}


def test_training_and_evaluation_snapshots_are_disjoint_and_complete(sessions, grouped_catalog):
    everything = snapshot_members(sessions)
    training = snapshot_members(sessions, heldout="exclude")
    evaluation = snapshot_members(sessions, heldout="only")
    assert training.isdisjoint(evaluation)
    assert training | evaluation == everything
    groups = Counter(next(t for t in grouped_catalog[a] if t.startswith("group:")) for a in evaluation)
    assert groups == {"group:faces": 2, "group:flags": 2}, "a tenth of 15, rounded up, from each group"
    with sessions() as session:
        assert evaluation == set(dataset_service.catalog_heldout_ids(session=session))


def test_a_tenant_snapshot_cannot_take_only_the_heldout_split(sessions, grouped_catalog):
    with sessions() as session, session.begin():
        tenant = accounts_service.create_tenant(session=session, name="Brand")
    with pytest.raises(InvalidInput) as refused, sessions() as session, session.begin():
        dataset_service.create_snapshot(session=session, name="s", use="customer_finetune", created_by="test",
                                        filters=SnapshotFilters(tenant_id=tenant.id, heldout="only"))
    assert refused.value.code == "invalid_filters"
