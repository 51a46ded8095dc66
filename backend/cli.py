"""Registers the backend's commands on the `cairn` CLI (`cairn epoch ...`; the API adds `cairn api`)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from backend.rewards.cli import epoch_app

    app.add_typer(epoch_app, name="epoch")
    __import__("backend.api.cli", fromlist=["register"]).register(app)
