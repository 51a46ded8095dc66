"""`cairn index`: follow the chain into SQL (`--once` catches up and exits)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from cairn.core.deployment import load_deployment
from cairn.core.errors import CairnError
from cairn.core.finality import FINALITY_MODES
from cairn.core.settings import load_settings
from indexer import metrics
from indexer.core import Indexer, IndexerOptions
from indexer.core import Progress as StepProgress

err = Console(stderr=True)


class _Bar:
    """Rich progress bar during backfill: blocks/s, events/s, ETA."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.start = time.monotonic()
        self.first: int | None = None
        self.events = 0

    def update(self, p: StepProgress) -> None:
        if not self.enabled or p.head < 0:
            return
        if self.first is None:
            self.first = p.cursor - p.blocks
        self.events += p.events
        if self.progress is None:
            if p.mode != "backfill" or p.head - p.cursor < 100:
                return
            self.progress = Progress(
                TextColumn("indexing"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} blocks"),
                TextColumn("{task.fields[bps]:,.0f} blocks/s"),
                TextColumn("{task.fields[eps]:,.0f} events/s"),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("backfill", total=p.head - self.first, bps=0.0, eps=0.0)
        elapsed = max(1e-6, time.monotonic() - self.start)
        done = p.cursor - self.first
        assert self.task is not None
        self.progress.update(
            self.task,
            completed=done,
            total=max(done, p.head - self.first),
            bps=done / elapsed,
            eps=self.events / elapsed,
        )
        if p.mode != "backfill":
            self.stop()

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
            self.enabled = False


def index(
    once: Annotated[bool, typer.Option("--once", help="Catch up with the head, then exit.")] = False,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Serve Prometheus /metrics.")
    ] = None,
    rpc_url: Annotated[
        str | None, typer.Option("--rpc-url", help="Comma-separated RPC URLs (overrides CAIRN_RPC_URLS).")
    ] = None,
    database_url: Annotated[str | None, typer.Option("--database-url")] = None,
    deployment_file: Annotated[
        Path | None, typer.Option("--deployment", help="Deployment file (CAIRN_DEPLOYMENT_FILE).")
    ] = None,
    confirmations: Annotated[int | None, typer.Option("--confirmations", min=0)] = None,
    finality: Annotated[
        str | None,
        typer.Option(
            "--finality", help="auto (node's `finalized` tag if any), tag, or confirmations (CAIRN_FINALITY)"
        ),
    ] = None,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between head polls.")] = 1.0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    initial_range: Annotated[int, typer.Option("--initial-range", min=1, help="First getLogs range.")] = 1,
    max_range: Annotated[int, typer.Option("--max-range", min=1, help="Largest getLogs range.")] = 500_000,
) -> None:
    """Mirror every event of the deployment into the database (reorg-safe, resumable)."""
    if finality is not None and finality not in FINALITY_MODES:
        raise typer.BadParameter(f"--finality must be one of {', '.join(FINALITY_MODES)}")
    settings = load_settings(
        rpc_urls=rpc_url,
        database_url=database_url,
        deployment_file=deployment_file,
        confirmations=confirmations,
        finality=finality,
    )
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    deployment = load_deployment(settings.deployment_file)
    if metrics_port is not None:
        metrics.serve(metrics_port)
    bar = _Bar(enabled=not quiet and err.is_terminal)
    options = IndexerOptions(
        poll_interval=poll,
        initial_range=min(initial_range, max_range),
        max_range=max_range,
        grow_step=min(2000, max_range),
    )
    indexer = Indexer(settings, deployment, options=options, on_progress=bar.update)
    stop = threading.Event()
    try:
        indexer.run(stop, once=once)
    except KeyboardInterrupt:
        stop.set()
    finally:
        bar.stop()
        indexer.close()
    if once:
        cur = indexer.cursor.block_number if indexer.cursor else None
        err.print(f"indexed up to block {cur} ({indexer.events_total} events this run)", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("index")(index)


def main() -> None:
    """`python -m cairn.cli.index [--once ...]`: `cairn index` without loading the other commands (a lean
    process
    for supervisors and the peak-RSS benchmark)."""
    try:
        typer.run(index)
    except CairnError as exc:
        err.print(f"[bold red]error[/]: {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
