"""The `cairn` command line: the composition root, the one package that may import every layer.

Each module of `cairn.cli` registers its own commands; this module only wires them.

Errors raised on purpose (CairnError) print one line and exit with the error's code; nothing else
prints a traceback unless CAIRN_DEBUG=1.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

from cairn.cli import api, apikey, audit, commands, data, deploy, epoch, index, train
from cairn.core.errors import CairnError

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


# Each command module has `register(app: typer.Typer) -> None`.
for _module in (commands, deploy, index, epoch, audit, api, data, train, apikey):
    _module.register(app)


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
