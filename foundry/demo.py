"""``foundry demo``: the whole flow on the embedded default, from an empty folder.

For now: migrate, onboard the OpenMoji catalog, summarise it. Later stages (snapshot,
training, generation, statements) extend this same script.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from rich.console import Console

from foundry import migrate
from foundry.catalog import service as catalog_service
from foundry.config import Settings
from foundry.db import session_factory
from foundry.errors import FoundryError

OPENMOJI_PACKAGE = "openmoji@17.0.0"
OPENMOJI_SHA256 = "55ee7d13485dec86e9f38c1f3a645a13382d33ff97c0cd845ee824b0aef45e68"
_SHARED_COPY = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "openmoji-17.0.0.tgz"
HOW_TO_PROVIDE = (
    "the demo needs the OpenMoji 17.0.0 package. Provide it with --catalog PATH or FOUNDRY_DEMO_CATALOG=PATH "
    f"(the file `npm pack {OPENMOJI_PACKAGE}` downloads), or install npm so the demo can fetch it itself."
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate_catalog(settings: Settings, catalog: Path | None, console: Console) -> Path:
    """The tarball to onboard: the one given, a checkout's shared copy, a cached or a fresh ``npm pack``."""
    if catalog is not None:
        if not catalog.exists():
            raise FoundryError(f"{catalog} does not exist; {HOW_TO_PROVIDE}", code="demo_catalog_missing")
        return catalog
    if _SHARED_COPY.is_file():
        return _SHARED_COPY
    cache = settings.var_dir / "cache"
    cached = cache / "openmoji-17.0.0.tgz"
    if cached.is_file() and _sha256(cached) == OPENMOJI_SHA256:
        return cached
    npm = shutil.which("npm")
    if npm is None:
        raise FoundryError(HOW_TO_PROVIDE, code="demo_catalog_missing")
    cache.mkdir(parents=True, exist_ok=True)
    console.print(f"fetching {OPENMOJI_PACKAGE} with npm pack …")
    result = subprocess.run([npm, "pack", OPENMOJI_PACKAGE, "--pack-destination", str(cache)],
                            capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0 or not cached.is_file():
        raise FoundryError(f"npm pack failed ({result.stderr.strip()[-300:]}); {HOW_TO_PROVIDE}",
                           code="demo_catalog_missing")
    if _sha256(cached) != OPENMOJI_SHA256:
        cached.unlink()
        raise FoundryError("the downloaded OpenMoji package does not match its known sha256", code="demo_catalog_corrupt")
    return cached


def run_demo(settings: Settings, *, catalog: Path | None, console: Console) -> None:
    from foundry.cli import print_summary, run_catalog_import

    url = settings.resolved_database_url
    console.rule("1. database")
    migrate.upgrade(url)
    console.print(f"schema at revision {migrate.current_revision(url)} ({url})")

    console.rule("2. onboard the licensed catalog")
    source = locate_catalog(settings, catalog, console)
    console.print(f"catalog: {source}")
    run_catalog_import(settings, source, source_format="openmoji", requested_by="demo")

    console.rule("3. catalog summary")
    with session_factory(url)() as session:
        print_summary(catalog_service.catalog_summary(session=session))
