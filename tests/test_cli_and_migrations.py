"""The CLI as a user runs it, and migrations that go both ways and match the models."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from foundry import migrate
from foundry.db import sql_engine
from foundry.models import Base
from tests.support import images


def cli(settings, *args, check=True):
    env = dict(os.environ)
    env.update({"FOUNDRY_VAR_DIR": str(settings.var_dir), "FOUNDRY_DATABASE_URL": settings.resolved_database_url,
                "FOUNDRY_BLOB_URL": settings.resolved_blob_url, "FOUNDRY_IMPORT_WORKERS": "1", "COLUMNS": "200"})
    result = subprocess.run([sys.executable, "-m", "foundry.cli", *args], env=env, capture_output=True, text=True,
                            check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_migrations_upgrade_downgrade_and_match_models(settings):
    url = settings.resolved_database_url
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision(url)
    with sql_engine(url).connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    migrate.downgrade(url, "base")
    assert set(inspect(sql_engine(url)).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(url)
    assert {"asset", "contributor", "license_grant", "catalog_import"} <= set(inspect(sql_engine(url)).get_table_names())


def test_cli_import_summary_and_report(migrated, tmp_path):
    folder = tmp_path / "cat"
    folder.mkdir()
    (folder / "a.png").write_bytes(images.pattern_png(1))
    (folder / "manifest.csv").write_text("path,contributor,license,uses\na.png,Ada,CC0-1.0,all\nb.png,Ada,CC0-1.0,all\n")
    report = tmp_path / "report.json"

    result = cli(migrated, "catalog", "import", str(folder / "manifest.csv"), "--report", str(report))

    assert "imported" in result.stdout and "file_missing" in result.stdout
    saved = json.loads(report.read_text())
    assert [r["code"] for r in saved["rejections"]] == ["file_missing"]
    summary = cli(migrated, "catalog", "summary").stdout
    assert "assets" in summary and "Ada" in summary
    shown = json.loads(cli(migrated, "catalog", "report", saved["import_id"]).stdout)
    assert shown["status"] == "succeeded"
    assert saved["import_id"] in cli(migrated, "catalog", "imports").stdout


def test_cli_errors_are_readable(migrated, tmp_path):
    missing = cli(migrated, "catalog", "import", str(tmp_path / "nope.csv"), check=False)
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr and "nothing was imported" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = tmp_path / "manifest.csv"
    bad.write_text("just,some\nwords,here\n")
    malformed = cli(migrated, "catalog", "import", str(bad), check=False)
    assert malformed.returncode == 1 and "lacks required columns" in malformed.stderr
    wrong_id = cli(migrated, "catalog", "report", "not-an-id", check=False)
    assert wrong_id.returncode == 1 and "not an import id" in wrong_id.stderr


def test_db_commands(settings):
    head = migrate.head_revision(settings.resolved_database_url)
    assert f"database at revision {head}" in cli(settings, "db", "upgrade").stdout
    assert f"current: {head}  head: {head}" in cli(settings, "db", "current").stdout


def test_cli_keys_lifecycle(migrated):
    tenant_line = cli(migrated, "tenants", "create", "Acme").stdout
    tenant_id = tenant_line.split()[1]
    created = cli(migrated, "keys", "create", "--role", "customer", "--tenant", tenant_id, "--name", "acme-prod")
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("fdy_")
    key_id = created.stdout.split()[1]
    listing = cli(migrated, "keys", "list").stdout
    assert "acme-prod" in listing and secret.split("_", 2)[2] not in listing
    assert "revoked" in cli(migrated, "keys", "revoke", key_id).stdout
    bad = cli(migrated, "keys", "create", "--role", "customer", check=False)
    assert bad.returncode == 1 and "needs --tenant" in bad.stderr
