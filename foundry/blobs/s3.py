"""Content-addressed blob storage on S3 or an S3-compatible server (MinIO, moto).

Same contract as :class:`foundry.blobs.local.LocalBlobStore`, so a deployment can move its blobs
to object storage by changing ``FOUNDRY_BLOB_URL`` alone:

* blobs live at ``<prefix>/blobs/ab/cd/<sha256>``, staged imports at
  ``<prefix>/staging/<stage id>/<sha256>``;
* ``promote`` is a server-side copy followed by a delete of the staged objects. S3 has no
  rename, so a crash in between leaves the staged copies behind; promoting again (which is what
  :func:`foundry.blobs.recover_staging` does for committed batches) finishes the job because
  copying a content-addressed object twice is harmless;
* ``get`` re-hashes what it read: the key *is* the content's sha256, so a mismatch means the
  object was damaged or overwritten out of band, and handing those bytes on would silently
  poison training data.

Credentials and region come from the usual AWS chain (environment, config files, instance
role); only the endpoint is passed in, because it is a deployment setting
(``FOUNDRY_S3_ENDPOINT_URL``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from foundry.blobs.keys import check_key, check_stage, is_blob_key, is_stage_id, sha256_hex
from foundry.blobs.protocol import BlobIntegrityError
from foundry.errors import FoundryError, InvalidInput, NotFound

# DeleteObjects accepts at most this many keys per request.
_DELETE_BATCH = 1000
# Error codes S3 and compatible servers use for "no such object" (HEAD has no body, hence "404").
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def _is_missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in _MISSING_CODES


class S3BlobStore:
    """Blobs as objects ``<prefix>/blobs/ab/cd/<sha256>``; staging in ``<prefix>/staging/<id>/``."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: Any | None = None,
    ):
        if not bucket:
            raise InvalidInput("an S3 blob store needs a bucket (s3://bucket/prefix)", code="invalid_blob_url")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or None
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._base = f"{self.prefix}/" if self.prefix else ""
        self._blobs = f"{self._base}blobs/"
        self._staging = f"{self._base}staging/"
        self._client = client if client is not None else self._make_client(self.endpoint_url)

    @staticmethod
    def _make_client(endpoint_url: str | None) -> Any:
        # Custom endpoints (MinIO, moto, a compose service name) rarely resolve
        # ``<bucket>.<host>``, so address buckets in the path there.
        s3_options = {"addressing_style": "path"} if endpoint_url else {}
        config = Config(retries={"max_attempts": 5, "mode": "standard"}, s3=s3_options)
        return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)

    # -- object names -------------------------------------------------------------------

    def _blob_key(self, sha256: str) -> str:
        check_key(sha256)
        return f"{self._blobs}{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def _stage_prefix(self, stage_id: str) -> str:
        return f"{self._staging}{check_stage(stage_id)}/"

    # -- low-level helpers --------------------------------------------------------------

    def _object_exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _is_missing(error):
                return False
            raise
        return True

    def _list(self, prefix: str) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                yield item["Key"]

    def _delete_many(self, keys: Iterable[str]) -> None:
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) == _DELETE_BATCH:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, keys: list[str]) -> None:
        response = self._client.delete_objects(
            Bucket=self.bucket,
            Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
        )
        errors = [e for e in response.get("Errors", ()) if e.get("Code") not in _MISSING_CODES]
        if errors:
            first = errors[0]
            raise FoundryError(
                f"S3 refused to delete {len(errors)} object(s), e.g. {first.get('Key')}: "
                f"{first.get('Code')} {first.get('Message')}",
                code="blob_store_error",
                details={"failed_keys": [e.get("Key") for e in errors]},
            )

    # -- BlobStore protocol -------------------------------------------------------------

    def put(self, data: bytes) -> str:
        key = sha256_hex(data)
        object_key = self._blob_key(key)
        if not self._object_exists(object_key):
            self._client.put_object(Bucket=self.bucket, Key=object_key, Body=data)
        return key

    def get(self, sha256: str) -> bytes:
        object_key = self._blob_key(sha256)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=object_key)
        except ClientError as error:
            if _is_missing(error):
                raise NotFound(f"blob {sha256} is not in the store", code="blob_not_found") from None
            raise
        body = response["Body"]
        try:
            data = body.read()
        finally:
            body.close()
        actual = sha256_hex(data)
        if actual != sha256:
            raise BlobIntegrityError(
                f"blob {sha256} is corrupt: its {len(data)} stored bytes hash to {actual}",
                details={"key": sha256, "actual_sha256": actual, "object": f"s3://{self.bucket}/{object_key}"},
            )
        return data

    def exists(self, sha256: str) -> bool:
        return self._object_exists(self._blob_key(sha256))

    def delete(self, sha256: str) -> None:
        # S3 DeleteObject succeeds for a missing key, matching ``unlink(missing_ok=True)``.
        self._client.delete_object(Bucket=self.bucket, Key=self._blob_key(sha256))

    def iter_keys(self) -> Iterator[str]:
        for object_key in self._list(self._blobs):
            parts = object_key[len(self._blobs) :].split("/")
            if len(parts) == 3 and is_blob_key(parts[2]) and parts[0] == parts[2][:2] and parts[1] == parts[2][2:4]:
                yield parts[2]

    def stage(self, stage_id: str, data: bytes) -> str:
        key = sha256_hex(data)
        target = self._stage_prefix(stage_id) + key
        if not self._object_exists(target) and not self._object_exists(self._blob_key(key)):
            self._client.put_object(Bucket=self.bucket, Key=target, Body=data)
        return key

    def staged_keys(self, stage_id: str) -> list[str]:
        prefix = self._stage_prefix(stage_id)
        names = (object_key[len(prefix) :] for object_key in self._list(prefix))
        return sorted(name for name in names if is_blob_key(name))

    def promote(self, stage_id: str) -> int:
        prefix = self._stage_prefix(stage_id)
        keys = self.staged_keys(stage_id)
        for key in keys:
            # Server-side copy (objects up to 5 GiB; images are capped far below that).
            self._client.copy_object(
                Bucket=self.bucket,
                Key=self._blob_key(key),
                CopySource={"Bucket": self.bucket, "Key": prefix + key},
            )
        # Delete only after every copy landed, so a failure part-way leaves a batch that a
        # second promote completes; then sweep anything else under the stage, like rmtree.
        self._delete_many(list(self._list(prefix)))
        return len(keys)

    def discard(self, stage_id: str) -> None:
        # Listing finishes before deleting, so pagination never runs over a shrinking prefix.
        self._delete_many(list(self._list(self._stage_prefix(stage_id))))

    def stage_ids(self) -> list[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        ids: set[str] = set()
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._staging, Delimiter="/"):
            for common in page.get("CommonPrefixes", ()):
                name = common["Prefix"][len(self._staging) :].rstrip("/")
                if is_stage_id(name):
                    ids.add(name)
        return sorted(ids)
