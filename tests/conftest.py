"""Shared fixtures: every database test runs on the embedded SQLite and on the real PostgreSQL."""

from __future__ import annotations

import fcntl
import os
import uuid
from pathlib import Path

# The suite runs as two xdist workers on two cores, and each starts worker, API and demo
# subprocesses: one compute thread per process. With a thread per core in every process the
# cores are oversubscribed and OpenMP's spin-waiting makes each torch call many times slower
# (the demo's attribution index ran at 3 images/s instead of 25).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# indexes built by tests' training jobs and workers (processes of their own included) centre their payment view on
# 4 of the model's outputs, not the product's 32: the same code, an eighth of the generations
os.environ.setdefault("FOUNDRY_INFLUENCE_CALIBRATION_OUTPUTS", "4")

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from foundry import migrate
from foundry.blobs import LocalBlobStore
from foundry.config import Settings
from foundry.db import session_factory, sql_engine

REPO_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("FOUNDRY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


LONGEST_FIRST = ("tests/test_demo.py::",)
"""Tests that take minutes on their own: started first, so the parallel workers do not end on them alone."""


def pytest_collection_modifyitems(config, items) -> None:
    """Longest first (the classic schedule for parallel workers), everything else in its collected order."""
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))


def _postgres_available() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect():
            pass
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means the server is not usable
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    problem = _postgres_available()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test PostgreSQL but {POSTGRES_URL} is unreachable: {problem}")
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable here ({problem}); CI runs these")
    return POSTGRES_URL


def create_postgres_database(server_url: str) -> tuple[str, callable]:
    """A fresh, uniquely named database and a function that drops it."""
    name = f"foundry_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        sql_engine(url).dispose()
        sql_engine.cache_clear()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'foundry.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url, drop = create_postgres_database(server)
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return Settings(
        var_dir=tmp_path / "var",
        database_url=database_url,
        blob_url=(tmp_path / "var" / "blobstore").as_uri(),
        admin_api_key="test-admin-key",
        import_workers=1,
    )


@pytest.fixture
def migrated(settings) -> Settings:
    migrate.upgrade(settings.resolved_database_url)
    return settings


@pytest.fixture
def sessions(migrated):
    return session_factory(migrated.resolved_database_url)


@pytest.fixture
def blob_store(migrated) -> LocalBlobStore:
    return LocalBlobStore(migrated.var_dir / "blobstore")


def openmoji_catalog(repo_root: Path = REPO_ROOT) -> Path:
    """The OpenMoji 17.0.0 tarball, found the way ``foundry demo`` finds it (the same function): the
    path in FOUNDRY_OPENMOJI_TGZ (or FOUNDRY_DEMO_CATALOG), the checkout's ``../shared`` copy, the
    sha256-checked copy in ``var/cache``, or a fresh ``npm pack openmoji@17.0.0`` into that cache."""
    from rich.console import Console

    from foundry.demo import locate_catalog

    given = os.environ.get("FOUNDRY_OPENMOJI_TGZ") or os.environ.get("FOUNDRY_DEMO_CATALOG")
    var_dir = repo_root / "var"
    var_dir.mkdir(parents=True, exist_ok=True)
    with (var_dir / "openmoji.lock").open("w") as lock:  # test workers share one cache and one download
        fcntl.flock(lock, fcntl.LOCK_EX)
        return locate_catalog(Settings(var_dir=var_dir), Path(given) if given else None, Console(stderr=True))


@pytest.fixture(scope="session")
def openmoji_tgz() -> Path:
    from foundry.errors import FoundryError

    try:
        return openmoji_catalog()
    except FoundryError as exc:
        pytest.fail(f"no OpenMoji catalog for the tests: {exc}")
