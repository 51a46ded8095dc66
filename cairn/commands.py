"""Core commands: configuration and health."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from cairn.settings import load_settings

out = Console()


def config_show() -> None:
    """Show the effective configuration (secrets hidden)."""
    settings = load_settings()
    table = Table("setting", "value")
    for name, value in settings.model_dump().items():
        shown = "***" if name.endswith("_key") and value else str(value)
        table.add_row(f"CAIRN_{name.upper()}", shown)
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("config")(config_show)
