"""Waiting on a child process (a `cairn` command under test) without fixed sleeps."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def wait_until(
    what: str,
    check: Callable[[], Any],
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 60,
    interval: float = 0.1,
) -> None:
    """Poll `check` until it is truthy; fail with the process's log if it exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"{what} not seen within {timeout} s: {log.read_text()}"
        time.sleep(interval)
