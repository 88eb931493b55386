"""``foundry ledger``: the royalty ledger."""

from __future__ import annotations

import typer
from rich.table import Table

from foundry.cli.common import console
from foundry.config import get_settings
from foundry.db import session_factory
from foundry.ledger import service as ledger_service

ledger_app = typer.Typer(help="The append-only royalty ledger.", no_args_is_help=True)


@ledger_app.command("balances")
def ledger_balances() -> None:
    """Every account's balance; each currency sums to zero."""
    with session_factory(get_settings().resolved_database_url)() as session:
        balances = ledger_service.trial_balance(session=session)
    table = Table("currency", "account", "balance")
    for currency, accounts in sorted(balances.items()):
        for account, amount in sorted(accounts.items()):
            table.add_row(currency, account, str(amount))
        table.add_row(currency, "[bold]sum[/]", str(sum(accounts.values())))
    console.print(table)
