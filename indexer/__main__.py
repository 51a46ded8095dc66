"""`python -m indexer [--once ...]`: the same as `cairn index`."""

from __future__ import annotations

import sys

import typer

from cairn.errors import CairnError
from indexer.cli import err, index


def main() -> None:
    try:
        typer.run(index)
    except CairnError as exc:
        err.print(f"[bold red]error[/]: {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
