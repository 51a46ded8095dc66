"""Gas of every hot path, measured with real transactions on a fresh anvil (receipts' `gasUsed`).

* `bench/gas_scenarios.py`: the measured transactions, each an exact gas figure named
  `Contract.function: scenario`;
* `bench/gas_snapshot.py`: contracts/gas-snapshot.json, those exact figures, compared by
  tests/integration/test_gas_snapshot.py (any difference up or down fails; `make gas-snapshot` rewrites it);
* `bench/gas_figures.py`: the benchmark figures of `make bench` (per item, lifecycle) derived from them;
* `bench/gas_driver.py`, `bench/x402.py`: the chain driver and the signed payment inputs.

`python -m bench.gas` prints the scenarios and figures; `--update` (alias `--write-snapshot`) rewrites the
snapshot; `--check` exits 1 with the difference when it is stale. `run()` is `make bench`'s entry.
"""

from __future__ import annotations

import sys

from bench import gas_snapshot
from bench.gas_driver import Driver, derived_key, start
from bench.gas_figures import figures, run
from bench.gas_scenarios import measure
from bench.x402 import channel_config, channel_id, config_tuple, exact_payment, voucher_typed_data

__all__ = [
    "Driver",
    "channel_config",
    "channel_id",
    "config_tuple",
    "derived_key",
    "exact_payment",
    "figures",
    "measure",
    "run",
    "start",
    "voucher_typed_data",
]


def main(argv: list[str]) -> int:
    gas = measure(log=lambda m: print(f"   {m}", flush=True))
    for name, value in gas.items():
        print(f"{value:>9}  {name}")
    for name, fig in figures(gas).items():
        print(f"{name} = {fig}")
    if "--update" in argv or "--write-snapshot" in argv:
        gas_snapshot.write(gas)
        print(f"wrote {gas_snapshot.SNAPSHOT}")
    elif "--check" in argv:
        committed = gas_snapshot.load()
        if committed != gas:
            print(gas_snapshot.report(committed, gas), file=sys.stderr)
            return 1
        print(f"{gas_snapshot.SNAPSHOT} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
