"""A fresh clone, without ``../shared``, finds the OpenMoji catalog the way the demo does.

Each test clones this repository's committed HEAD into a temporary folder (so no ``../shared``
next to it) and asks the clone's own ``tests/conftest.py`` for the catalog in a new process.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from foundry.demo import OPENMOJI_SHA256
from tests.conftest import REPO_ROOT

CACHED = Path("var/cache/openmoji-17.0.0.tgz")


@pytest.fixture
def clone(tmp_path) -> Path:
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    target = tmp_path / "elsewhere" / "foundry"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO_ROOT), str(target)], check=True)
    assert not (target.parent / "shared").exists()
    return target


def find_catalog(clone: Path, path: str):
    env = {key: value for key, value in os.environ.items()
           if key not in ("FOUNDRY_OPENMOJI_TGZ", "FOUNDRY_DEMO_CATALOG")}
    env.update({"PYTHONPATH": str(clone), "PATH": path})
    return subprocess.run([sys.executable, "-c", "from tests.conftest import openmoji_catalog; print(openmoji_catalog())"],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=900, check=False)


def test_a_fresh_clone_uses_the_checked_copy_in_var_cache(clone, openmoji_tgz):
    (clone / CACHED).parent.mkdir(parents=True)
    shutil.copyfile(openmoji_tgz, clone / CACHED)
    found = find_catalog(clone, path=str(Path(sys.executable).parent))  # no npm on this PATH
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == clone / CACHED


def test_a_fresh_clone_without_any_copy_or_npm_fails_clearly(clone):
    (clone / CACHED).parent.mkdir(parents=True)
    (clone / CACHED).write_bytes(b"not the package")  # a damaged cache is not used
    found = find_catalog(clone, path=str(Path(sys.executable).parent))
    assert found.returncode != 0
    assert "needs the OpenMoji 17.0.0 package" in found.stderr and "npm pack openmoji@17.0.0" in found.stderr


@pytest.mark.slow
def test_a_fresh_clone_fetches_the_catalog_with_npm_pack(clone):
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI"):
            pytest.fail("CI must be able to fetch the OpenMoji catalog with npm")
        pytest.skip("npm is not installed here")
    found = find_catalog(clone, path=os.pathsep.join([str(Path(sys.executable).parent), str(Path(npm).parent),
                                                      os.environ.get("PATH", "")]))
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == clone / CACHED
    assert hashlib.sha256((clone / CACHED).read_bytes()).hexdigest() == OPENMOJI_SHA256
