"""The `cairn` command line. Each package registers its own commands; this module only wires them.

Errors raised on purpose (CairnError) print one line and exit with the error's code; nothing else
prints a traceback unless CAIRN_DEBUG=1.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.console import Console

from cairn.errors import CairnError

app = typer.Typer(
    name="cairn",
    help="Cairn: contributor reward ledger for open AI — chain, indexer, rewards, API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Cairn: contributor reward ledger for open AI — chain, indexer, rewards, API."""


# Modules that contribute commands: each has `register(app: typer.Typer) -> None`.
COMMAND_MODULES = (
    "cairn.commands",
    "cairn.deploy",
    "indexer.cli",
    "backend.cli",
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that package has no commands yet
                continue
            raise
        module.register(app)


_register_all()


def main() -> None:
    """Console-script entry point: one clear line and an exit code for every deliberate error."""
    try:
        app()
    except CairnError as exc:
        err.print(f"[bold red]error[/]: {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: one line unless CAIRN_DEBUG=1 asks for the traceback
        if os.environ.get("CAIRN_DEBUG") == "1":
            raise
        err.print(f"[bold red]internal error[/]: {type(exc).__name__}: {exc}", highlight=False)
        sys.exit(70)


if __name__ == "__main__":
    main()
