"""The operator's commands for provenance, prices, the ledger, refunds and payouts."""

from __future__ import annotations

from tests.generation.test_generation_api import generate
from tests.test_cli_and_migrations import cli


def test_operator_commands(migrated, client, customer, served_model, tmp_path):
    first = cli(migrated, "provenance", "init-ca", check=False)
    assert first.returncode == 1 and "already exists" in first.stderr  # the fixture made one; never overwritten
    assert "price rule" in cli(migrated, "prices", "set", "--unit-price", "30", "--model", str(served_model)).stdout
    bad = cli(migrated, "prices", "set", "--unit-price", "-5", check=False)
    assert bad.returncode != 0
    assert "30 USD" in cli(migrated, "prices", "list").stdout

    body = generate(client, customer, served_model).json()
    assert body["attribution"]["charge"] == 30
    png = tmp_path / "out.png"
    png.write_bytes(client.get(body["images"][0]["url"], headers=customer.headers).content)
    verified = cli(migrated, "provenance", "verify", str(png)).stdout
    assert '"method": "c2pa"' in verified and body["id"] in verified
    balances = cli(migrated, "ledger", "balances").stdout
    assert "platform:revenue" in balances and "sum" in balances
    refunded = cli(migrated, "generations", "refund", body["id"], "--reason", "test")
    assert "refunded" in refunded.stdout
    missing = cli(migrated, "generations", "refund", "not-a-uuid", "--reason", "x", check=False)
    assert missing.returncode == 1 and "not a generation id" in missing.stderr

    closed = cli(migrated, "payouts", "close", "1999-01", "--csv", str(tmp_path / "batch.csv")).stdout
    assert "1999-01 closed now: 0 contributors" in " ".join(closed.split())
    assert (tmp_path / "batch.csv").read_text().startswith("period,contributor_id")
    early = cli(migrated, "payouts", "close", "2999-01", check=False)
    assert early.returncode == 1 and "has not ended" in early.stderr
    assert "revenue" in cli(migrated, "payouts", "report").stdout


def test_attribution_commands(migrated, client, customer, served_model):
    missing = cli(migrated, "models", "attribution", str(served_model)).stdout
    assert "alpha 5000 bps" in missing and "pro rata only" in missing
    built = " ".join(cli(migrated, "models", "build-index", str(served_model)).stdout.split())
    assert "attribution index" in built and "8 training images" in built
    kept = " ".join(cli(migrated, "models", "build-index", str(served_model)).stdout.split())
    assert kept.split("attribution index")[-1].split()[0] == built.split("attribution index")[-1].split()[0]
    rebuilt = " ".join(cli(migrated, "models", "build-index", str(served_model), "--force").stdout.split())
    assert rebuilt.split("attribution index")[-1].split()[0] != built.split("attribution index")[-1].split()[0]
    assert "alpha 7500 bps" in cli(migrated, "models", "attribution", str(served_model), "--alpha-bps", "7500").stdout
    refused = cli(migrated, "models", "attribution", str(served_model), "--alpha-bps", "10001", check=False)
    assert refused.returncode != 0

    # the toy model draws noise, so influence pays nobody and the pool went pro rata; the audit (a separate
    # process, with the same rule) agrees to the unit. The blend's audit: tests/generation/test_influence_attribution.py
    body = generate(client, customer, served_model).json()
    assert body["attribution"]["method"] == "pro_rata"
    audited = " ".join(cli(migrated, "generations", "audit", body["id"]).stdout.split())
    assert "(pro_rata)" in audited and "recomputed split equals the ledger, to the unit" in audited
    unknown = cli(migrated, "generations", "audit", "00000000-0000-0000-0000-000000000000", check=False)
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr
