"""Schemathesis against the served OpenAPI document, as an admin, a customer and an artist, on a
seeded deployment (a trained and priced model, a generation, a snapshot, an import, keys of every
role). Fails on any 5xx and on any answer the document does not describe; prints the figures."""

from __future__ import annotations

import json

import pytest

from benchmarks.fuzz import Target, fuzz, seed_accounts, seed_over_http, start_server
from foundry.processes import stop_process
from tests.generation.conftest import base_snapshot, licensed_catalog, served_model, tiny_model_folder  # noqa: F401

MAX_EXAMPLES = 1
"""Per operation in the fuzzing phase; the coverage phase's boundary values and type errors run in full regardless."""


@pytest.fixture
def database_url(tmp_path) -> str:
    """The embedded deployment (SQLite): the fuzz suite's time budget holds one database; the bounds it
    guards are tested on both databases in tests/api/test_bounds.py."""
    return f"sqlite:///{tmp_path / 'foundry.db'}"


def test_fuzz_every_operation_with_every_role(migrated, sessions, served_model, tmp_path):  # noqa: F811
    keys, ids = seed_accounts(migrated, sessions)
    process, base = start_server(migrated, tmp_path / "api.log")
    try:
        target = Target(base, keys, ids, access_log=tmp_path / "api.log")
        seed_over_http(target)
        assert target.ids.get("generations") and target.ids.get("jobs"), "the deployment is not seeded"
        result = fuzz(target, tmp_path / "runs", max_examples=MAX_EXAMPLES)
    finally:
        stop_process(process)
    summary = {key: result[key] for key in ("operations", "operation_runs", "test_cases", "requests", "seconds")}
    print("\nfuzz:", json.dumps(summary))
    failed = [run for run in result["roles"] if run["exit_code"] != 0]
    assert not failed, "\n\n".join(f"{run['role']}: {json.dumps(run['failures'])}\n{run['output_tail']}"
                                   for run in failed)
    assert result["operations"] >= 45 and result["requests"] > 1000
