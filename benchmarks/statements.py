"""Statement benchmark on PostgreSQL: 10 million ledger entries, 50,000 contributors, 24 periods.

Seeds a fresh database with COPY (contributors, generations, ledger entries: one charge and
several royalties per generation, spread over 24 monthly periods with a skewed popularity of
contributors), then times, with the foundry's own service functions:
* one contributor's statement for one period (totals, by model, by asset, first page of outputs)
  -- median and p95 over many random contributors (target: < 100 ms);
* one contributor's statement CSV;
* closing the first period for all contributors (the payout batch) and exporting its CSV.

    python benchmarks/statements.py [--entries 10000000] [--contributors 50000] [--periods 24]
                                    [--server postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from foundry.ledger.accounts import PLATFORM_REVENUE, contributor_account, customer_account
from foundry.ledger.service import charge_key, royalty_key

ROYALTIES_PER_GENERATION = 19
"""With the charge, 20 entries per generation: a pool split over the top contributors of an output."""


def fresh_database(server: str) -> str:
    name = f"foundry_bench_statements_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def drop_database(server: str, url: str) -> None:
    from foundry.db import sql_engine

    sql_engine(url).dispose()
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def periods(count: int, end: datetime) -> list[datetime]:
    """The first instant of each of ``count`` months ending the month before ``end``."""
    months, year, month = [], end.year, end.month
    for _ in range(count):
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        months.append(datetime(year, month, 1, tzinfo=UTC))
    return list(reversed(months))


def copy_rows(cursor, table: str, columns: list[str], rows, chunk: int = 200_000) -> int:
    """Stream tab-separated rows into ``table`` with COPY, in chunks to bound memory."""
    total = 0
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with cursor.copy(statement) as copy:
        buffer = io.StringIO()
        for count, row in enumerate(rows, 1):
            buffer.write("\t".join("\\N" if value is None else str(value) for value in row) + "\n")
            if count % chunk == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
            total = count
        copy.write(buffer.getvalue())
    return total


def seed(url: str, *, entries: int, contributors: int, period_count: int, seed_value: int) -> dict:
    import psycopg

    rng = random.Random(seed_value)
    now = datetime.now(UTC)
    months = periods(period_count, now)
    generations = entries // (ROYALTIES_PER_GENERATION + 1)
    contributor_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(contributors)]
    # popularity: a few contributors earn in many outputs, most in few (Zipf-like weights)
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(contributors)]
    tenant_id, model_id, rule_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    started = time.perf_counter()
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("INSERT INTO tenant (id, name, created_at) VALUES (%s, 'bench', now())", (tenant_id,))
        cursor.execute("""INSERT INTO model (id, name, kind, model_format, recipe, code_version, weights_sha256, files,
                          text_encoder_origin, licensed_only, metrics, created_at)
                          VALUES (%s, 'bench-model', 'base', 'diffusers_pipeline', '{}', 'bench', %s, '{}', '{}',
                          true, '{}', now())""", (model_id, "0" * 64))
        cursor.execute("""INSERT INTO price_rule (id, unit_price, currency, pool_share_bps, finetune_share_bps,
                          created_by, created_at) VALUES (%s, 100, 'USD', 5000, 5000, 'bench', now())""", (rule_id,))
        copy_rows(cursor, "contributor", ["id", "display_name", "external_ref", "payout_identity", "created_at"],
                  ((cid, f"Contributor {n}", f"bench:{n}", f"acct-{n}", now.isoformat())
                   for n, cid in enumerate(contributor_ids)))
        generation_rows = []

        def generation_iter():
            for number in range(generations):
                month = months[number * period_count // generations]
                created = month + timedelta(seconds=rng.randrange(27 * 86400))
                generation_id = uuid.UUID(int=rng.getrandbits(128), version=4)
                generation_rows.append((generation_id, created))
                yield (generation_id, tenant_id, model_id, "0" * 64, "{}", "bench prompt", number, 1, "sync",
                       "succeeded", rule_id, 100, "USD", 100, 50, "{}", "{}", created.isoformat())

        copy_rows(cursor, "generation", ["id", "tenant_id", "model_id", "request_sha256", "request", "prompt", "seed",
                                         "num_images", "mode", "status", "price_rule_id", "unit_price", "currency",
                                         "charge_amount", "pool_amount", "attribution", "timings", "created_at"],
                  generation_iter())

        def ledger_iter():
            customer = customer_account(tenant_id)
            for generation_id, created in generation_rows:
                transaction = uuid.UUID(int=rng.getrandbits(128), version=4)
                period = f"{created.year:04d}-{created.month:02d}"
                posted = created.isoformat()
                yield (uuid.UUID(int=rng.getrandbits(128), version=4), transaction, charge_key(generation_id), posted,
                       period, "charge", None, customer, PLATFORM_REVENUE, 100, "USD", generation_id, tenant_id,
                       model_id, None)
                picked: set[uuid.UUID] = set()
                while len(picked) < ROYALTIES_PER_GENERATION:
                    picked.update(rng.choices(contributor_ids, weights=weights,
                                              k=ROYALTIES_PER_GENERATION - len(picked)))
                for contributor in sorted(picked):
                    yield (uuid.UUID(int=rng.getrandbits(128), version=4), transaction,
                           royalty_key(generation_id, "pro_rata", contributor, None), posted, period, "royalty",
                           "pro_rata", PLATFORM_REVENUE, contributor_account(contributor), rng.randint(1, 5), "USD",
                           generation_id, tenant_id, model_id, contributor)

        written = copy_rows(cursor, "ledger_entry", ["id", "transaction_id", "posting_key", "posted_at", "period",
                                                     "kind", "method", "debit_account", "credit_account", "amount",
                                                     "currency", "generation_id", "tenant_id", "model_id",
                                                     "contributor_id"],
                            ledger_iter())
        copy_rows(cursor, "payout_period", ["period", "status"],
                  ((f"{m.year:04d}-{m.month:02d}", "open") for m in months))
        connection.commit()
        cursor.execute("ANALYZE")
    return {"ledger_entries": written, "generations": generations, "contributors": contributors,
            "periods": period_count, "seed_s": round(time.perf_counter() - started, 1),
            "first_period": f"{months[0].year:04d}-{months[0].month:02d}",
            "busiest_contributor": str(contributor_ids[0]), "contributor_ids": contributor_ids}


def timed(function, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return samples


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--contributors", type=int, default=50_000)
    parser.add_argument("--periods", type=int, default=24)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="Keep the seeded database.")
    args = parser.parse_args(argv)

    from foundry import migrate
    from foundry.db import session_factory
    from foundry.payouts import service as payouts_service

    url = fresh_database(args.server)
    try:
        migrate.upgrade(url)
        seeded = seed(url, entries=args.entries, contributors=args.contributors, period_count=args.periods,
                      seed_value=7)
        contributor_ids = seeded.pop("contributor_ids")
        sessions = session_factory(url)
        rng = random.Random(11)
        period = seeded["first_period"]
        samples, csv_samples, outputs = [], [], []
        for _ in range(args.samples):
            contributor = rng.choice(contributor_ids)
            with sessions() as session:
                started = time.perf_counter()
                statement = payouts_service.statement(session=session, contributor_id=contributor, period=period,
                                                      currency="USD", threshold=1000)
                payouts_service.statement_outputs(session=session, contributor_id=contributor, period=period,
                                                  currency="USD", limit=100, offset=0)
                samples.append(time.perf_counter() - started)
                outputs.append(statement.outputs)
        busiest = uuid.UUID(seeded["busiest_contributor"])
        with sessions() as session:
            busiest_s = timed(lambda: payouts_service.statement(session=session, contributor_id=busiest,
                                                                period=period, currency="USD", threshold=1000), 5)
            busiest_outputs = payouts_service.statement(session=session, contributor_id=busiest, period=period,
                                                        currency="USD", threshold=1000).outputs
            csv_samples = timed(lambda: payouts_service.statement_csv(session=session, contributor_id=busiest,
                                                                      period=period, currency="USD"), 3)
        with sessions() as session, session.begin():
            started = time.perf_counter()
            closed = payouts_service.close_period(session=session, period=period, closed_by="bench", threshold=1000)
            close_s = time.perf_counter() - started
        with sessions() as session:
            started = time.perf_counter()
            batch = payouts_service.batch_csv(session=session, period=period)
            batch_csv_s = time.perf_counter() - started
        report = {
            "benchmark": "statements",
            "database": "postgresql",
            **seeded,
            "one_contributor_statement_ms": {"median": round(statistics.median(samples) * 1000, 2),
                                             "p95": round(p95(samples) * 1000, 2), "samples": len(samples),
                                             "median_outputs_in_period": statistics.median(outputs)},
            "busiest_contributor_statement_ms": round(statistics.median(busiest_s) * 1000, 2),
            "busiest_contributor_outputs_in_period": busiest_outputs,
            "busiest_contributor_csv_ms": round(statistics.median(csv_samples) * 1000, 2),
            "target_one_contributor_ms": 100,
            "close_period_all_contributors_s": round(close_s, 2),
            "close_period_lines": closed.lines,
            "batch_csv_all_contributors_s": round(batch_csv_s, 2),
            "batch_csv_rows": batch.count("\n") - 1,
        }
    finally:
        if not args.keep:
            drop_database(args.server, url)
    print(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()
