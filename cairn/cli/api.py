"""`cairn api`: serve the API and dashboard with uvicorn."""

from __future__ import annotations

import typer

from backend.api.app import create_app
from backend.api.chain import connect_chain
from backend.api.settings import ApiSettings
from cairn.core.db import make_engine
from cairn.core.settings import build_settings


def api(
    host: str | None = typer.Option(None, help="Interface to bind (CAIRN_API_HOST, default 127.0.0.1)"),
    port: int | None = typer.Option(None, help="Port (CAIRN_API_PORT, default 8000)"),
    with_indexer: bool | None = typer.Option(
        None, "--with-indexer/--no-indexer", help="Run the indexer in this process (CAIRN_API_RUN_INDEXER)"
    ),
    database_url: str | None = typer.Option(None, help="SQLAlchemy URL (CAIRN_DATABASE_URL)"),
) -> None:
    """Serve the Cairn API and dashboard (health at /health, docs at /docs)."""
    import uvicorn

    from backend.api.logs import log_config

    overrides = {
        k: v
        for k, v in {
            "api_host": host,
            "api_port": port,
            "api_run_indexer": with_indexer,
            "database_url": database_url,
        }.items()
        if v is not None
    }
    settings = build_settings(ApiSettings, **overrides)
    # Fail with one clear line (wrong chain, missing deployment, unreachable RPC or database) before serving.
    make_engine(settings.database_url).dispose()
    connect_chain(settings)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        log_config=log_config(settings.log_level),  # JSON lines with the request id, access log included
        access_log=True,
    )


def register(app: typer.Typer) -> None:
    app.command("api")(api)
