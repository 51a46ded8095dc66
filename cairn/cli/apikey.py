"""`cairn apikey create|list|revoke`: operators' API keys (scoped, stored hashed; the key is shown once)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import Engine

from backend import migrations
from backend.api.auth import store
from cairn.core.db import make_engine
from cairn.core.errors import NotFoundError
from cairn.core.settings import load_settings

apikey_app = typer.Typer(help="Operators' API keys for the operator endpoints (/v1/operator/...).",
                         no_args_is_help=True)  # fmt: skip
out = Console()
DbUrl = Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL (CAIRN_DATABASE_URL)")]


def _engine(database_url: str | None) -> Engine:
    engine = make_engine(load_settings(database_url=database_url).database_url)
    migrations.upgrade(engine)
    return engine


@apikey_app.command("create")
def create(
    scope: Annotated[
        list[str], typer.Option("--scope", help=f"Repeatable; one of: {', '.join(store.SCOPES)}")
    ],
    name: Annotated[str, typer.Option("--name", help="Who or what uses the key")] = "operator",
    database_url: DbUrl = None,
) -> None:
    """Create a key with these scopes; prints the key once (only its SHA-256 is stored)."""
    secret, key = store.create_key(_engine(database_url), name=name, scopes=scope, now=int(time.time()))
    out.print(secret, highlight=False, soft_wrap=True)
    typer.echo(f"key {key.key_id} ({key.name}) scopes: {' '.join(sorted(key.scopes))}", err=True)


@apikey_app.command("list")
def list_keys(database_url: DbUrl = None) -> None:
    """Every key: id, name, scopes, created, revoked (never the key)."""
    keys = store.list_keys(_engine(database_url))
    if not keys:
        out.print("no API keys")
    for k in keys:
        state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
        out.print(f"{k.key_id} {k.name} [{' '.join(sorted(k.scopes))}] created {k.created_at} {state}",
                  highlight=False, soft_wrap=True)  # fmt: skip


@apikey_app.command("revoke")
def revoke(key_id: str, database_url: DbUrl = None) -> None:
    """Revoke a key at once (the next request with it is a 401)."""
    if not store.revoke_key(_engine(database_url), key_id, now=int(time.time())):
        raise NotFoundError(f"no active API key {key_id}")
    out.print(f"revoked {key_id}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(apikey_app, name="apikey")
