"""Fuzz the served API with schemathesis, as an admin, a customer and an artist.

Every operation of the served OpenAPI document is tried with each role's key (coverage phase:
boundary values, wrong types, huge integers; fuzzing phase: random data; stateful phase: links).
A run fails on any 5xx, on an answer the document does not describe (status code, content type,
body schema), and on a 405 whose Allow header is wrong. Path ids are drawn, most of the time, from
the seeded deployment (a registered model, a succeeded generation, a snapshot, an import, an asset,
a contributor, a training job) so that operations reach their data, not only their 404.

The test suite runs it small (``tests/api/test_fuzz.py``); this script seeds its own deployment
(synthetic licensed catalog, a tiny trained model) and runs it bigger:

    python benchmarks/fuzz.py [--max-examples 25] [--max-time 90] [--database-url URL]

Prints one JSON object and writes it to ``benchmarks/results/fuzz.json``: operations, test cases,
requests the server answered, seconds, failures, per role.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from foundry.processes import free_port, stop_process

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "unsupported_method")
ROLES = ("admin", "customer", "artist")
ID_PARAMETERS = {
    "model_id": "models", "generation_id": "generations", "snapshot_id": "snapshots", "import_id": "imports",
    "asset_id": "assets", "contributor_id": "contributors", "job_id": "jobs",
}
"""Path parameter -> dictionary of real ids in the seeded deployment."""
REAL_ID_PROBABILITY = 0.8
_ACCESS_LINE = re.compile(r'"[A-Z]+ \S+ HTTP/1\.[01]" \d{3}')


@dataclass
class Target:
    """A running deployment to fuzz: its base URL, a key per role, and real ids per kind."""

    base_url: str
    keys: dict[str, str]
    ids: dict[str, list[str]] = field(default_factory=dict)
    access_log: Path | None = None


def server_env(settings, **extra: str) -> dict[str, str]:
    """The API process's environment for ``settings``: no rate limit in the way, small requests answered
    synchronously (renders are real but few), everything else queued for a worker that is not there."""
    env = dict(os.environ)
    env.update({
        "FOUNDRY_VAR_DIR": str(settings.var_dir), "FOUNDRY_DATABASE_URL": settings.resolved_database_url,
        "FOUNDRY_BLOB_URL": settings.resolved_blob_url, "FOUNDRY_BROKER_URL": settings.broker_url,
        "FOUNDRY_ADMIN_API_KEY": settings.admin_api_key.get_secret_value(), "FOUNDRY_SYNC_WORK_LIMIT": "8",
        "FOUNDRY_RATE_LIMIT_PER_MINUTE": "10000000", "FOUNDRY_RATE_LIMIT_BURST": "1000000", "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO_ROOT),
    })
    env.update(extra)
    return env


def start_server(settings, log_path: Path) -> tuple[subprocess.Popen, str]:
    """uvicorn serving the API, its access log in ``log_path`` (one line per answered request)."""
    import httpx

    port = free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--port", str(port),
             "--log-level", "info"], env=server_env(settings), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/v1/health").status_code == 200:
                return process, base
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start:\n{log_path.read_text()[-3000:]}") from None
            time.sleep(0.1)


def seed_accounts(settings, sessions) -> tuple[dict[str, str], dict[str, list[str]]]:
    """A customer key (a tenant), an artist key (the contributor with the most assets), and the ids of
    what is already in the database: (keys, ids)."""
    from sqlalchemy import func, select

    from foundry.accounts import service as accounts_service
    from foundry.catalog.models import Asset, CatalogImport, Contributor
    from foundry.datasets.models import DatasetSnapshot
    from foundry.models_registry.models import RegisteredModel

    with sessions() as session, session.begin():
        tenant = accounts_service.create_tenant(session=session, name="Fuzz Brands")
        _, customer = accounts_service.create_api_key(session=session, role="customer", name="fuzz customer",
                                                      tenant_id=tenant.id)
        contributor_id = session.scalar(select(Asset.contributor_id).group_by(Asset.contributor_id)
                                        .order_by(func.count().desc()).limit(1))
        if contributor_id is None:
            contributor = Contributor(display_name="Fuzz Artist", external_ref="fuzz-artist")
            session.add(contributor)
            session.flush()
            contributor_id = contributor.id
        _, artist = accounts_service.create_api_key(session=session, role="artist", name="fuzz artist",
                                                    contributor_id=contributor_id)
        ids = {
            "models": [str(i) for i in session.scalars(select(RegisteredModel.id))],
            "snapshots": [str(i) for i in session.scalars(select(DatasetSnapshot.id))],
            "imports": [str(i) for i in session.scalars(select(CatalogImport.id))],
            "assets": [str(i) for i in session.scalars(select(Asset.id).limit(20))],
            "contributors": [str(contributor_id)],
        }
    return {"admin": settings.admin_api_key.get_secret_value(), "customer": customer, "artist": artist}, ids


def seed_over_http(target: Target) -> None:
    """What the API itself creates: a succeeded generation and a queued training job, for their ids."""
    import httpx

    with httpx.Client(base_url=target.base_url, timeout=120) as http:
        customer = {"Authorization": f"Bearer {target.keys['customer']}"}
        admin = {"Authorization": f"Bearer {target.keys['admin']}"}
        for model_id in target.ids.get("models", []):
            answer = http.post("/v1/generations", headers=customer,
                               json={"model_id": model_id, "prompt": "red blocks", "steps": 2, "seed": 1})
            if answer.status_code == 200:
                target.ids.setdefault("generations", []).append(answer.json()["id"])
        for snapshot_id in target.ids.get("snapshots", [])[:1]:
            job = http.post("/v1/training-jobs", headers=admin, json={
                "name": "fuzz", "recipe": "base", "snapshot_id": snapshot_id, "settings": {"max_train_steps": 1}})
            if job.status_code == 202:
                target.ids.setdefault("jobs", []).append(job.json()["id"])


def config_toml(ids: dict[str, list[str]]) -> str:
    """schemathesis.toml: dictionaries of real ids, bound to their path parameters."""
    lines = []
    for name in sorted({kind for kind in ID_PARAMETERS.values() if ids.get(kind)}):
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(ids[name])}", ""]
    lines.append("[parameters]")
    for parameter, kind in ID_PARAMETERS.items():
        if ids.get(kind):
            lines.append(f'"path.{parameter}" = {{ dictionary = "{kind}", probability = {REAL_ID_PROBABILITY} }}')
    return "\n".join(lines) + "\n"


def answered_requests(access_log: Path | None) -> int | None:
    if access_log is None or not access_log.is_file():
        return None
    return sum(1 for line in access_log.read_text(errors="replace").splitlines() if _ACCESS_LINE.search(line))


def operations_by_role(base_url: str) -> dict[str, tuple[list[str], list[str]]]:
    """role -> (operation ids the role may call, those it may not), from the document's ``x-roles``."""
    import httpx

    document = httpx.get(f"{base_url}/openapi.json", timeout=30).json()
    operations = [operation for methods in document["paths"].values() for operation in methods.values()]
    return {role: ([o["operationId"] for o in operations if role in o.get("x-roles", ROLES)],
                   [o["operationId"] for o in operations if role not in o.get("x-roles", ROLES)])
            for role in ROLES}


def run_schemathesis(target: Target, role: str, workdir: Path, label: str, operation_ids: list[str], *,
                     phases: str, max_examples: int, max_time: int | None, seed: int, checks: tuple[str, ...]) -> dict:
    """One schemathesis run with ``role``'s key over ``operation_ids``; its report, and the requests the
    server answered meanwhile."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "schemathesis.toml"
    config.write_text(config_toml(target.ids))
    report = workdir / f"{role}-{label}.json"
    selection = [argument for operation_id in operation_ids for argument in ("--include-operation-id", operation_id)]
    before = answered_requests(target.access_log)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
         f"{target.base_url}/openapi.json", "--header", f"Authorization: Bearer {target.keys[role]}", *selection,
         "--phases", phases, "--checks", ",".join(checks), "--continue-on-failure",
         "--max-examples", str(max_examples), *(["--max-time", str(max_time)] if max_time else []),
         "--seed", str(seed), "--workers", "1", "--generation-database", "none", "--no-color",
         "--request-timeout", "60", "--report", "json", "--report-json-path", str(report)],
        check=False, cwd=workdir, capture_output=True, text=True, timeout=(max_time or 300) * 3 + 120)
    after = answered_requests(target.access_log)
    data = json.loads(report.read_text()) if report.is_file() else {}
    return {
        "exit_code": done.returncode, "seconds": time.monotonic() - started,
        "operations": data.get("operations", {}).get("tested") or 0,
        "test_cases": data.get("test_cases", {}).get("generated") or 0,
        "requests": None if before is None or after is None else after - before,
        "failures": data.get("failures", []), "errors": data.get("errors", []),
        "output_tail": (done.stdout + done.stderr)[-6000:],
    }


def run_role(target: Target, role: str, workdir: Path, *, allowed: list[str], refused: list[str], max_examples: int,
             max_time: int | None, seed: int, checks: tuple[str, ...] = CHECKS) -> dict:
    """Every phase on the operations the role may call; the fuzzing phase, briefly, on those it may not
    (each must refuse cleanly, with the documented 403, whatever the input)."""
    runs = [run_schemathesis(target, role, workdir, "allowed", allowed, phases="examples,coverage,fuzzing,stateful",
                             max_examples=max_examples, max_time=max_time, seed=seed, checks=checks)]
    if refused:
        runs.append(run_schemathesis(target, role, workdir, "refused", refused, phases="fuzzing", max_examples=1,
                                     max_time=None, seed=seed, checks=checks))
    requests = [run["requests"] for run in runs]
    return {
        "role": role, "exit_code": max(run["exit_code"] for run in runs),
        "seconds": round(sum(run["seconds"] for run in runs), 1),
        "operations": sum(run["operations"] for run in runs), "operations_allowed": runs[0]["operations"],
        "test_cases": sum(run["test_cases"] for run in runs),
        "requests": None if None in requests else sum(requests),
        "failures": [failure for run in runs for failure in run["failures"]],
        "errors": [error for run in runs for error in run["errors"]],
        "output_tail": "\n".join(run["output_tail"] for run in runs if run["exit_code"] != 0)[-8000:],
    }


def fuzz(target: Target, workdir: Path, *, max_examples: int, max_time: int | None = None, seed: int = 1,
         checks: tuple[str, ...] = CHECKS) -> dict:
    """Each role in turn; the totals and each role's figures."""
    started = time.monotonic()
    selection = operations_by_role(target.base_url)
    runs = [run_role(target, role, workdir / role, allowed=selection[role][0], refused=selection[role][1],
                     max_examples=max_examples, max_time=max_time, seed=seed, checks=checks) for role in ROLES]
    return {
        "operations": max(run["operations"] for run in runs),
        "operation_runs": sum(run["operations"] for run in runs),
        "test_cases": sum(run["test_cases"] for run in runs),
        "requests": sum(run["requests"] for run in runs) if all(run["requests"] is not None for run in runs) else None,
        "seconds": round(time.monotonic() - started, 1),
        "max_examples": max_examples, "max_time_per_role": max_time, "seed": seed,
        "passed": all(run["exit_code"] == 0 for run in runs),
        "roles": runs,
    }


def seed_standalone(settings) -> None:
    """A deployment of its own: a synthetic licensed catalog, a snapshot, a tiny model trained on it
    for real (two steps), a price and a signing CA."""
    from foundry import migrate
    from foundry.blobs import open_blob_store
    from foundry.catalog import service as catalog_service
    from foundry.catalog.sources import open_source
    from foundry.datasets import service as dataset_service
    from foundry.db import session_factory
    from foundry.pricing import service as pricing_service
    from foundry.training_jobs import service as job_service
    from provenance.c2pa_manifest import init_signing_ca
    from recipes import BaseModelShape, base_recipe
    from training.synthetic import shape_examples
    from worker import jobs as job_runner

    migrate.upgrade(settings.resolved_database_url)
    sessions = session_factory(settings.resolved_database_url)
    folder = settings.var_dir / "catalog"
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["path,contributor,license,uses,caption"]
    for number, example in enumerate(shape_examples(12, size=48, seed=3)):
        name = f"shape{number}.png"
        example.load_image().save(folder / name)
        rows.append(f"{name},Artist {number % 3},CC-BY-4.0,all,{example.caption}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    options = catalog_service.import_options(settings)
    blob_store = open_blob_store(settings.resolved_blob_url)
    catalog_service.run_import(session_factory=sessions, blob_store=blob_store, requested_by="fuzz",
                               source=open_source(folder / "manifest.csv", max_bytes=options.limits.max_bytes),
                               options=options)
    shape = BaseModelShape(unet_block_out_channels=(16, 32),
                           unet_down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), unet_norm_num_groups=8,
                           text_hidden_size=32, text_intermediate_size=64, text_num_layers=1, text_num_heads=2,
                           tokenizer_vocab_size=700)
    recipe = base_recipe(model_shape=shape, resolution=32, train_batch_size=4, max_train_steps=2,
                         checkpoint_every=0, validation_every=0, validation_prompts=("red circle",),
                         validation_inference_steps=2).to_dict()
    with sessions() as session, session.begin():
        snapshot = dataset_service.create_snapshot(session=session, name="fuzz", use="base_training",
                                                   created_by="fuzz")
        job = job_service.create_job(session=session, name="fuzz-model", recipe_kind="base", recipe=recipe,
                                     snapshot_id=snapshot.id, base_model_id=None, requested_by="fuzz")
        pricing_service.set_price(session=session, unit_price=25, currency="USD", pool_share_bps=4000,
                                  created_by="fuzz")
    if job_runner.run_job(settings, job.id, worker="fuzz") != "succeeded":
        raise RuntimeError("the fuzz deployment's tiny model did not train")
    init_signing_ca(settings.resolved_signing_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=25)
    parser.add_argument("--max-time", type=int, default=0,
                        help="Seconds per role; fuzzing then repeats until they are spent (0: examples only).")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default="", help="Default: SQLite in a temporary folder.")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "fuzz.json")
    args = parser.parse_args()

    from foundry.config import Settings
    from foundry.db import session_factory

    with tempfile.TemporaryDirectory(prefix="foundry-fuzz-") as tmp:
        root = Path(tmp)
        settings = Settings(var_dir=root / "var", database_url=args.database_url, admin_api_key="fuzz-admin-key",
                            attribution_index_after_training=False, import_workers=1)
        seed_standalone(settings)
        keys, ids = seed_accounts(settings, session_factory(settings.resolved_database_url))
        process, base = start_server(settings, root / "api.log")
        try:
            target = Target(base, keys, ids, access_log=root / "api.log")
            seed_over_http(target)
            result = fuzz(target, root / "runs", max_examples=args.max_examples, max_time=args.max_time or None,
                          seed=args.seed)
        finally:
            stop_process(process)
    result["database"] = "postgresql" if args.database_url.startswith("postgresql") else "sqlite"
    for run in result["roles"]:
        if run["exit_code"] == 0:
            run.pop("output_tail")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
