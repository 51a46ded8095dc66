"""The indexer's process (`python -m cairn.cli.index`) loads neither web3.py nor the API's stack: they cost
~0.5 s of start-up and ~25 MB each, which `indexer_restart_s` and `indexer_peak_rss_mb` would show."""

from __future__ import annotations

import subprocess
import sys


def test_indexer_process_imports_no_web3_and_no_api() -> None:
    probe = "import sys, cairn.cli.index; print(sorted({'web3', 'fastapi', 'sqlmodel'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
