"""``foundry payouts``: periods and batches."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from foundry.cli.common import console, fail
from foundry.config import get_settings
from foundry.db import session_factory
from foundry.errors import FoundryError
from foundry.payouts import service as payouts_service

payouts_app = typer.Typer(help="Payout periods and batches.", no_args_is_help=True)


@payouts_app.command("close")
def payouts_close(
    period: Annotated[str, typer.Argument(help="YYYY-MM (UTC calendar month); it must have ended.")],
    threshold: Annotated[int | None, typer.Option(help="Minimum payout in minor units (default from settings).")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Also write the batch CSV here.")] = None,
) -> None:
    """Freeze a period into its payout batch (closing a closed period changes nothing)."""
    settings = get_settings()
    try:
        with session_factory(settings.resolved_database_url)() as session, session.begin():
            result = payouts_service.close_period(
                session=session, period=period, closed_by="cli",
                threshold=settings.payout_threshold if threshold is None else threshold)
        with session_factory(settings.resolved_database_url)() as session:
            batch = payouts_service.batch_csv(session=session, period=period)
    except FoundryError as exc:
        raise fail(f"{exc.message} [{exc.code}]") from None
    row = result.period
    state = "closed now" if result.closed_now else "was already closed"
    console.print(f"{period} {state}: {row.contributors} contributors, payable {row.total_payable}, "
                  f"threshold {row.threshold}")
    if csv_out is not None:
        csv_out.write_text(batch)
        console.print(f"batch CSV: {csv_out}")


@payouts_app.command("report")
def payouts_report(currency: str = "USD") -> None:
    """Revenue, contributor pool and payouts per period."""
    with session_factory(get_settings().resolved_database_url)() as session:
        rows = payouts_service.period_report(session=session, currency=currency)
    table = Table("period", "status", "revenue", "pool", "platform", "payouts", title=f"{currency} minor units")
    for row in rows:
        table.add_row(row["period"], row["status"], str(row["revenue"]), str(row["pool"]), str(row["platform"]),
                      str(row["payouts"]))
    console.print(table)
