"""`cairn epoch close|publish|finalize|status`: the epoch lifecycle from the command line."""

from __future__ import annotations

import typer
from rich.console import Console
from sqlalchemy import text

from backend import migrations
from cairn.db import make_engine
from cairn.settings import load_settings

epoch_app = typer.Typer(help="Reward epochs: close, publish (propose the root), finalize (accept), status.")
out = Console()


@epoch_app.command("status")
def status(database_url: str | None = typer.Option(None, help="SQLAlchemy URL (CAIRN_DATABASE_URL)")) -> None:
    """List the epochs the rewards engine knows and their state."""
    settings = load_settings(database_url=database_url)
    engine = make_engine(settings.database_url)
    migrations.upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT chain_id, epoch, status, end_block, root FROM reward_epoch ORDER BY chain_id, epoch")
        ).all()
    if not rows:
        out.print("no epochs yet")
    for r in rows:
        root = r.root or "-"
        out.print(f"chain {r.chain_id} epoch {r.epoch}: {r.status} end_block={r.end_block} root={root}")
