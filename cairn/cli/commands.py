"""Core commands: the local stack (`dev`), an existing chain (`up`), configuration and health checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cairn.cli.demo import Demo
from cairn.cli.preflight import check_stack
from cairn.cli.stack import run_dev, run_up
from cairn.core.deployment import load_deployment
from cairn.core.settings import load_settings

out = Console()


def dev(
    reset: Annotated[bool, typer.Option("--reset", help="Throw away the saved chain and database.")] = False,
    chain_port: Annotated[int, typer.Option(help="Port of the local anvil chain.")] = 8545,
    api_port: Annotated[int | None, typer.Option(help="Port of the API (default CAIRN_API_PORT).")] = None,
    demo: Annotated[bool, typer.Option(help="Play the demo scenario on a fresh chain.")] = True,
) -> None:
    """Run the whole stack locally: anvil, contracts, indexer, API and dashboard on SQLite (`make run`)."""

    settings = load_settings(api_port=api_port, rpc_urls=[f"http://127.0.0.1:{chain_port}"])
    run_dev(settings, reset=reset, port=chain_port, demo=demo)


def up(
    rpc_url: Annotated[
        str | None, typer.Option(help="JSON-RPC URL(s), comma-separated (CAIRN_RPC_URLS).")
    ] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (CAIRN_DATABASE_URL).")] = None,
    deployment: Annotated[Path | None, typer.Option(help="Deployment file (CAIRN_DEPLOYMENT_FILE).")] = None,
    api_port: Annotated[int | None, typer.Option(help="Port of the API (CAIRN_API_PORT).")] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Also run the watchtower (`cairn audit --watch`; guardian key: CAIRN_GUARDIAN_KEY).",
        ),
    ] = False,
) -> None:
    """Run the indexer and the API against an existing chain and database (e.g. PostgreSQL)."""

    settings = load_settings(
        rpc_urls=rpc_url, database_url=database_url, deployment_file=deployment, api_port=api_port
    )
    run_up(settings, watch=watch)


def check(
    rpc_url: Annotated[str | None, typer.Option(help="JSON-RPC URL(s), comma-separated.")] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL.")] = None,
    deployment: Annotated[Path | None, typer.Option(help="Deployment file.")] = None,
) -> None:
    """Check the configuration: RPC reachable, chain id matches the deployment, database reachable."""

    settings = load_settings(rpc_urls=rpc_url, database_url=database_url, deployment_file=deployment)
    dep, chain_id = check_stack(settings.rpc_urls, settings.database_url, settings.deployment_file)
    out.print(f"ok: chain {chain_id}, {len(dep.contracts)} contracts, database {settings.database_kind}")


def demo(
    api_url: Annotated[
        str | None, typer.Option(help="API base URL (default from CAIRN_API_HOST/PORT).")
    ] = None,
) -> None:
    """Play the register -> attest -> pay -> close epoch -> claim loop on the running local stack."""

    settings = load_settings()
    url = api_url or f"http://{settings.api_host}:{settings.api_port}"
    Demo(settings, load_deployment(settings.deployment_file), url).run()


def config_show() -> None:
    """Show the effective configuration (secrets hidden)."""
    settings = load_settings()
    table = Table("setting", "value")
    for name, value in settings.model_dump().items():
        shown = "***" if name.endswith("_key") and value else str(value)
        table.add_row(f"CAIRN_{name.upper()}", shown)
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("dev")(dev)
    app.command("up")(up)
    app.command("check")(check)
    app.command("demo")(demo)
    app.command("config")(config_show)
