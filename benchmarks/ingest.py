"""Onboarding throughput: the full OpenMoji import vs the bare cost of decoding the same files.

The bare limit rasterises/decodes each image at the same rendition size and hashes it,
with the same worker processes and no database, verification extras or blob writes; the
ratio says how much of the machine's decoding speed the real import keeps.

    python benchmarks/ingest.py [--catalog PATH] [--workers N]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import resvg_py
from PIL import Image

from foundry.catalog.imaging import ImageLimits, _fit, sniff_format
from foundry.catalog.sources import OpenMojiSource
from foundry.concurrency import default_workers, ordered_chunked_map
from provenance.hashing import sha256_hex

DEFAULT_CATALOG = os.environ.get("FOUNDRY_OPENMOJI_TGZ", str(Path(__file__).resolve().parents[2] / "shared/datasets/openmoji-17.0.0.tgz"))


def decode_and_hash(rows, limits: ImageLimits) -> list[str | None]:
    """The floor: render or decode each image at the rendition size, and sha256 its bytes."""
    out = []
    for row in rows:
        if row.data is None:
            out.append(None)
            continue
        if sniff_format(row.data) == "svg":
            import defusedxml.ElementTree as SafeET

            root = SafeET.fromstring(row.data)
            box = [float(v) for v in root.get("viewBox").split()]
            width, height = _fit(box[2], box[3], limits.rendition_size)
            resvg_py.svg_to_bytes(svg_string=row.data.decode(), width=width, height=height, background="#ffffff")
        else:
            Image.open(io.BytesIO(row.data)).load()
        out.append(sha256_hex(row.data))
    return out


@contextmanager
def fresh_database(server_url: str | None):
    """A throw-away PostgreSQL database on ``server_url`` (None: the embedded SQLite default)."""
    if not server_url:
        yield None
        return
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"foundry_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        from foundry.db import sql_engine

        sql_engine.cache_clear()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--catalog", default=DEFAULT_CATALOG)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--postgres", metavar="SERVER_URL", default=None,
                        help="import into a fresh database on this PostgreSQL server instead of SQLite")
    args = parser.parse_args()
    workers = default_workers(args.workers)
    limits = ImageLimits()

    started = time.perf_counter()
    source = OpenMojiSource(Path(args.catalog), limits.max_bytes)
    rows = list(source.rows())
    read_seconds = time.perf_counter() - started
    started = time.perf_counter()
    hashed = sum(1 for _, digest in ordered_chunked_map(partial(decode_and_hash, limits=limits), rows, workers=workers)
                 if digest)
    bare_seconds = time.perf_counter() - started + read_seconds

    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.postgres) as database_url:
        os.environ["FOUNDRY_VAR_DIR"] = tmp
        if database_url:
            os.environ["FOUNDRY_DATABASE_URL"] = database_url
        os.environ["FOUNDRY_IMPORT_WORKERS"] = str(workers)
        from foundry import migrate
        from foundry.blobs import open_blob_store
        from foundry.catalog import service as catalog_service
        from foundry.catalog.sources import open_source
        from foundry.config import Settings
        from foundry.db import session_factory

        settings = Settings()
        migrate.upgrade(settings.resolved_database_url)
        started = time.perf_counter()
        batch = catalog_service.run_import(
            session_factory=session_factory(settings.resolved_database_url),
            blob_store=open_blob_store(settings.resolved_blob_url),
            source=open_source(Path(args.catalog), source_format="openmoji", max_bytes=limits.max_bytes),
            requested_by="benchmark", options=catalog_service.import_options(settings),
        )
        import_seconds = time.perf_counter() - started

    images = batch.rows_total
    result = {
        "images": images,
        "imported": batch.rows_imported,
        "rejected": batch.rows_rejected,
        "seconds": round(import_seconds, 3),
        "images_per_s": round(images / import_seconds, 1),
        "limit_seconds": round(bare_seconds, 3),
        "limit_images_per_s": round(hashed / bare_seconds, 1),
        "ratio": round((images / import_seconds) / (hashed / bare_seconds), 3),
        "workers": workers,
        "database": "postgresql" if args.postgres else "sqlite (embedded default)",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
