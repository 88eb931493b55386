"""Contract tests for the blob stores.

One suite runs against :class:`LocalBlobStore` and :class:`S3BlobStore` so the two cannot drift
apart: imports, training and recovery code only ever see the ``BlobStore`` protocol. The S3
store talks to a real S3-compatible HTTP server (moto in server mode), not to an in-process
mock, so request signing, addressing style, pagination and error codes are exercised for real.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from foundry.blobs import BlobStore, LocalBlobStore, open_blob_store, recover_staging, sha256_hex
from foundry.blobs.s3 import BlobIntegrityError, S3BlobStore
from foundry.errors import InvalidInput, NotFound

PREFIX = "tenant-a"

BAD_KEYS = [
    "../x",
    "../" + "a" * 61,
    "a" * 32 + "/../" + "b" * 28,
    "A" * 64,
    "a" * 63,
    "a" * 65,
    "",
    "g" * 64,
]
BAD_STAGE_IDS = ["../x", "a/b", "..", "", "x" * 65, "with space"]


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """One moto server for the session, on a free port; each test gets its own bucket."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials, so boto3 never reaches for a developer's real profile or role."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def s3_admin(s3_endpoint: str) -> object:
    """A raw client for poking at objects behind the store's back (built once: clients are slow)."""
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("s3", endpoint_url=s3_endpoint)


@pytest.fixture
def s3_bucket(s3_admin: object, aws_env: None) -> tuple[str, object]:
    """A fresh bucket per test, so tests never see each other's objects."""
    client = s3_admin
    bucket = f"foundry-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return bucket, client


@dataclass
class Case:
    store: BlobStore
    kind: str


@pytest.fixture(params=["local", "s3"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Case:
    if request.param == "local":
        return Case(LocalBlobStore(tmp_path / "store"), "local")
    bucket, _client = request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("s3_endpoint")
    # Through the factory, as the application builds it from FOUNDRY_BLOB_URL.
    store = open_blob_store(f"s3://{bucket}/{PREFIX}/", s3_endpoint_url=endpoint)
    assert isinstance(store, S3BlobStore)
    return Case(store, "s3")


@pytest.fixture
def s3_store(s3_bucket: tuple[str, object], s3_endpoint: str) -> S3BlobStore:
    bucket, _client = s3_bucket
    return S3BlobStore(bucket=bucket, prefix=PREFIX, endpoint_url=s3_endpoint)


def _blob(n: int) -> bytes:
    return f"image bytes #{n}".encode() * (n + 1)


# -- contract: every store -------------------------------------------------------------------


def test_put_get_round_trip(case: Case) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    key = case.store.put(data)
    assert key == sha256_hex(data)
    assert case.store.exists(key)
    assert case.store.get(key) == data
    assert list(case.store.iter_keys()) == [key]


def test_put_is_idempotent(case: Case) -> None:
    first = case.store.put(_blob(1))
    second = case.store.put(_blob(1))
    assert first == second
    assert list(case.store.iter_keys()) == [first]
    assert case.store.get(first) == _blob(1)


def test_empty_blob_round_trips(case: Case) -> None:
    key = case.store.put(b"")
    assert key == sha256_hex(b"")
    assert case.store.get(key) == b""


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_invalid_keys_are_rejected(case: Case, bad: str) -> None:
    for operation in (case.store.get, case.store.exists, case.store.delete):
        with pytest.raises(InvalidInput) as caught:
            operation(bad)
        assert caught.value.code == "invalid_blob_key"


@pytest.mark.parametrize("bad", BAD_STAGE_IDS)
def test_invalid_stage_ids_are_rejected(case: Case, bad: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: case.store.stage(bad, b"data"),
        lambda: case.store.staged_keys(bad),
        lambda: case.store.promote(bad),
        lambda: case.store.discard(bad),
    ]
    for call in calls:
        with pytest.raises(InvalidInput) as caught:
            call()
        assert caught.value.code == "invalid_stage_id"


def test_missing_blob_is_not_found(case: Case) -> None:
    key = sha256_hex(b"never stored")
    assert not case.store.exists(key)
    with pytest.raises(NotFound) as caught:
        case.store.get(key)
    assert caught.value.code == "blob_not_found"
    case.store.delete(key)  # deleting what is not there is not an error


def test_delete_removes_blob(case: Case) -> None:
    keep = case.store.put(_blob(1))
    gone = case.store.put(_blob(2))
    case.store.delete(gone)
    assert not case.store.exists(gone)
    with pytest.raises(NotFound):
        case.store.get(gone)
    assert list(case.store.iter_keys()) == [keep]


def test_staged_blobs_are_invisible_until_promoted(case: Case) -> None:
    keys = sorted(case.store.stage("import-1", _blob(n)) for n in range(3))
    assert keys == sorted(sha256_hex(_blob(n)) for n in range(3))
    assert case.store.staged_keys("import-1") == keys
    assert case.store.stage_ids() == ["import-1"]
    for key in keys:
        assert not case.store.exists(key)
        with pytest.raises(NotFound):
            case.store.get(key)
    assert list(case.store.iter_keys()) == []

    assert case.store.promote("import-1") == 3

    assert all(case.store.exists(key) for key in keys)
    assert sorted(case.store.iter_keys()) == keys
    assert {case.store.get(sha256_hex(_blob(n))) for n in range(3)} == {_blob(n) for n in range(3)}
    assert case.store.staged_keys("import-1") == []
    assert case.store.stage_ids() == []


def test_staging_twice_is_idempotent(case: Case) -> None:
    assert case.store.stage("import-1", _blob(1)) == case.store.stage("import-1", _blob(1))
    assert case.store.staged_keys("import-1") == [sha256_hex(_blob(1))]
    assert case.store.promote("import-1") == 1


def test_staging_an_already_stored_blob_writes_nothing(case: Case) -> None:
    key = case.store.put(_blob(1))
    assert case.store.stage("import-1", _blob(1)) == key
    assert case.store.staged_keys("import-1") == []
    assert case.store.promote("import-1") == 0
    assert case.store.get(key) == _blob(1)


def test_discard_removes_staged_blobs(case: Case) -> None:
    keys = [case.store.stage("import-1", _blob(n)) for n in range(2)]
    case.store.discard("import-1")
    assert case.store.staged_keys("import-1") == []
    assert case.store.stage_ids() == []
    assert not any(case.store.exists(key) for key in keys)
    assert case.store.promote("import-1") == 0
    case.store.discard("import-1")  # discarding twice is harmless


def test_stages_are_independent(case: Case) -> None:
    a = case.store.stage("import-a", _blob(1))
    b = case.store.stage("import-b", _blob(2))
    assert case.store.stage_ids() == ["import-a", "import-b"]
    assert case.store.promote("import-a") == 1
    assert case.store.exists(a)
    assert not case.store.exists(b)
    assert case.store.staged_keys("import-b") == [b]
    case.store.discard("import-b")
    assert not case.store.exists(b)
    assert case.store.exists(a)


def test_recover_staging_promotes_committed_and_discards_the_rest(case: Case) -> None:
    committed = [case.store.stage("committed-1", _blob(1)), case.store.stage("committed-2", _blob(2))]
    orphan = case.store.stage("crashed", _blob(3))

    result = recover_staging(case.store, ["committed-1", "committed-2", "never-staged"])

    assert result == {"promoted": 2, "discarded": 1}
    assert all(case.store.exists(key) for key in committed)
    assert not case.store.exists(orphan)
    assert case.store.stage_ids() == []
    assert recover_staging(case.store, ["committed-1"]) == {"promoted": 0, "discarded": 0}


# -- S3 specifics ----------------------------------------------------------------------------


def test_s3_object_layout_and_prefix_isolation(s3_bucket: tuple[str, object], s3_endpoint: str) -> None:
    bucket, client = s3_bucket
    store = S3BlobStore(bucket=bucket, prefix=PREFIX, endpoint_url=s3_endpoint)
    other = S3BlobStore(bucket=bucket, prefix="tenant-b", endpoint_url=s3_endpoint)
    key = store.put(_blob(1))
    staged = store.stage("import-1", _blob(2))

    names = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert names == {
        f"{PREFIX}/blobs/{key[:2]}/{key[2:4]}/{key}",
        f"{PREFIX}/staging/import-1/{staged}",
    }
    assert store.url == f"s3://{bucket}/{PREFIX}"
    assert list(other.iter_keys()) == []
    assert other.stage_ids() == []
    assert not other.exists(key)

    root = open_blob_store(f"s3://{bucket}", s3_endpoint_url=s3_endpoint)
    assert root.url == f"s3://{bucket}"
    assert list(root.iter_keys()) == [] and root.stage_ids() == []
    root_key = root.put(_blob(3))
    assert f"blobs/{root_key[:2]}/{root_key[2:4]}/{root_key}" in {
        o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]
    }
    assert list(store.iter_keys()) == [key]


def test_s3_put_skips_upload_when_blob_exists(s3_store: S3BlobStore) -> None:
    uploads: list[str] = []
    s3_store._client.meta.events.register(
        "before-call.s3.PutObject", lambda params, **_: uploads.append(params["url_path"])
    )
    s3_store.put(_blob(1))
    s3_store.put(_blob(1))
    s3_store.stage("import-1", _blob(1))
    assert len(uploads) == 1


def test_s3_listings_follow_pagination(s3_store: S3BlobStore) -> None:
    """Force two-key pages so every listing must follow continuation tokens."""

    def small_pages(params: dict, **_: object) -> None:
        params["MaxKeys"] = 2

    s3_store._client.meta.events.register("provide-client-params.s3.ListObjectsV2", small_pages)
    stored = sorted(s3_store.put(_blob(n)) for n in range(5))
    staged = sorted(s3_store.stage("import-1", _blob(n)) for n in range(10, 17))
    for n in range(5):
        s3_store.stage(f"other-{n}", _blob(100 + n))

    assert sorted(s3_store.iter_keys()) == stored
    assert s3_store.staged_keys("import-1") == staged
    assert s3_store.stage_ids() == ["import-1"] + [f"other-{n}" for n in range(5)]
    assert s3_store.promote("import-1") == 7
    assert sorted(s3_store.iter_keys()) == sorted(stored + staged)
    assert s3_store.staged_keys("import-1") == []
    assert recover_staging(s3_store, []) == {"promoted": 0, "discarded": 5}
    assert s3_store.stage_ids() == []


def test_s3_iter_keys_ignores_foreign_objects(s3_bucket: tuple[str, object], s3_store: S3BlobStore) -> None:
    bucket, client = s3_bucket
    key = s3_store.put(_blob(1))
    wrong_folder = sha256_hex(b"misfiled")
    for stray in (f"{PREFIX}/blobs/README", f"{PREFIX}/blobs/00/00/{wrong_folder}", f"{PREFIX}/blobs/ab/cd/x"):
        client.put_object(Bucket=bucket, Key=stray, Body=b"not a blob")
    assert list(s3_store.iter_keys()) == [key]


def test_s3_get_detects_corrupted_object(s3_bucket: tuple[str, object], s3_store: S3BlobStore) -> None:
    # LocalBlobStore.get returns file bytes without re-hashing, so this check is S3-only.
    bucket, client = s3_bucket
    key = s3_store.put(_blob(1))
    client.put_object(Bucket=bucket, Key=f"{PREFIX}/blobs/{key[:2]}/{key[2:4]}/{key}", Body=b"tampered")

    with pytest.raises(BlobIntegrityError) as caught:
        s3_store.get(key)
    assert caught.value.code == "blob_integrity_error"
    assert caught.value.details["actual_sha256"] == sha256_hex(b"tampered")
    assert key in str(caught.value)


def test_s3_store_needs_a_bucket() -> None:
    with pytest.raises(InvalidInput):
        S3BlobStore(bucket="", prefix="x", client=object())


def test_blob_modules_share_no_private_names() -> None:
    """The package's modules (protocol, keys, local, s3) use each other's public names only."""
    import ast

    import foundry.blobs

    for path in Path(foundry.blobs.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("foundry"):
                private = [alias.name for alias in node.names if alias.name.startswith("_")]
                assert private == [], f"{path.name} imports {private} from {node.module}"
