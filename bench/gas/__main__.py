"""`python -m bench.gas [--update | --check]`: measure every scenario on a fresh anvil and print it with the
benchmark figures; `--update` (alias `--write-snapshot`) rewrites contracts/gas-snapshot.json, `--check`
exits 1 with the difference when it is stale."""

from __future__ import annotations

import sys

from bench.gas import snapshot
from bench.gas.figures import figures
from bench.gas.scenarios import measure


def main(argv: list[str]) -> int:
    gas = measure(log=lambda m: print(f"   {m}", flush=True))
    for name, value in gas.items():
        print(f"{value:>9}  {name}")
    for name, fig in figures(gas).items():
        print(f"{name} = {fig}")
    if "--update" in argv or "--write-snapshot" in argv:
        snapshot.write(gas)
        print(f"wrote {snapshot.SNAPSHOT}")
    elif "--check" in argv:
        committed = snapshot.load()
        if committed != gas:
            print(snapshot.report(committed, gas), file=sys.stderr)
            return 1
        print(f"{snapshot.SNAPSHOT} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
