"""The ``foundry`` command line: one module per command group, assembled here.

``python -m foundry.cli`` and the ``foundry`` console script both run ``app``. The commands are
an edge, like ``api`` and ``worker``: they parse arguments, call ``foundry.usecases`` and the
domain services, and print; the long-running ones (``api``, ``worker``, ``demo``) are in ``serve``.
"""

from __future__ import annotations

import typer

from foundry.cli import (
    accounts,
    catalog,
    datasets,
    db,
    generations,
    ledger,
    licenses,
    models,
    moderation,
    payouts,
    prices,
    provenance,
    quality,
    serve,
    train,
    webhooks,
)
from training import quiet_library_logs

app = typer.Typer(help="The licensed-data image foundry.", no_args_is_help=True, pretty_exceptions_enable=False)
for group, name in ((db.db_app, "db"), (catalog.catalog_app, "catalog"), (catalog.blobs_app, "blobs"),
                    (datasets.dataset_app, "dataset"), (models.models_app, "models"), (train.train_app, "train"),
                    (accounts.tenants_app, "tenants"), (accounts.keys_app, "keys"), (licenses.licenses_app, "licenses"),
                    (payouts.payouts_app, "payouts"), (provenance.provenance_app, "provenance"),
                    (prices.prices_app, "prices"), (ledger.ledger_app, "ledger"),
                    (generations.generations_app, "generations"), (quality.quality_app, "quality"),
                    (webhooks.webhooks_app, "webhooks"), (moderation.moderation_app, "moderation")):
    app.add_typer(group, name=name)
models.models_app.command("show")(quality.models_show)
models.models_app.command("measure")(quality.models_measure)
app.command("worker")(serve.worker)
app.command("api")(serve.serve_api)
app.command("demo")(serve.demo)


@app.callback()
def _main() -> None:
    quiet_library_logs()


__all__ = ["app"]
