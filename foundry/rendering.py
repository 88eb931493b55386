"""Rich renderings shared by the command line and the demo: progress bars and report tables.

Presentation only (rich, no typer): a read model in, tables out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from foundry.catalog.models import CatalogImport
from foundry.catalog.schemas import CatalogSummaryRead
from foundry.training_jobs.models import TrainingJob


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
    )


@contextlib.contextmanager
def counted(console: Console, description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar, as the ``progress(done, total)`` callback long use cases take."""
    with progress_bar(console) as progress:
        task = progress.add_task(description, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


@contextlib.contextmanager
def job_progress(console: Console) -> Iterator[Callable[[TrainingJob], None]]:
    """Bars for a training job (and its post-training stage), fed one job reading at a time."""
    with progress_bar(console) as progress:
        task = progress.add_task("training", total=None)
        stage_task = None

        def show(job: TrainingJob) -> None:
            nonlocal stage_task
            loss = f" loss {job.loss:.4f}" if job.loss is not None else ""
            progress.update(task, completed=job.step, total=job.total_steps or None,
                            description=f"training [{job.status}]{loss}")
            if job.stage != "training" and job.stage_progress:
                if stage_task is None:
                    stage_task = progress.add_task(job.stage.replace("_", " "), total=None)
                progress.update(stage_task, completed=job.stage_progress.get("done", 0),
                                total=job.stage_progress.get("total") or None)

        yield show


def import_tables(batch: CatalogImport) -> list[Table]:
    table = Table(title=f"import {batch.id}", show_header=False)
    for label, value in (("source", batch.source), ("format", batch.source_format), ("rows", batch.rows_total),
                         ("imported", batch.rows_imported), ("unchanged (already in catalog)", batch.rows_unchanged),
                         ("rejected", batch.rows_rejected), ("new contributors", batch.contributors_created),
                         ("near-duplicates reported", batch.near_duplicates)):
        table.add_row(label, str(value))
    tables = [table]
    # the report lists rejected rows and warned rows alike; only the last column's meaning differs
    for key, message_column, title in (("rejections", "reason", "rejected rows"), ("warnings", "note", "warnings")):
        items = batch.report.get(key, [])
        if items:
            shown = Table("row", "ref", "code", message_column, title=f"{title} (first {min(20, len(items))})")
            for item in items[:20]:
                shown.add_row(str(item["row"]), str(item["ref"]), item["code"], item["message"])
            tables.append(shown)
    return tables


def summary_tables(summary: CatalogSummaryRead) -> list[Table]:
    table = Table(title="catalog", show_header=False)
    table.add_row("contributors", str(summary.contributors))
    table.add_row("assets", str(summary.assets))
    table.add_row("license grants", str(summary.grants))
    for use, count in summary.grants_by_use.items():
        table.add_row(f"  grants permitting {use}", str(count))
    for image_format, count in sorted(summary.assets_by_format.items()):
        table.add_row(f"  {image_format} assets", str(count))
    table.add_row("imports", str(summary.imports))
    top = Table("contributor", "assets", title="top contributors")
    for item in summary.top_contributors:
        top.add_row(item.display_name, str(item.assets))
    return [table, top]
