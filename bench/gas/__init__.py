"""Gas of every hot path, measured with real transactions on a fresh anvil (receipts' `gasUsed`).

* `bench.gas.scenarios`: the measured transactions, each an exact gas figure named
  `Contract.function: scenario`;
* `bench.gas.snapshot`: contracts/gas-snapshot.json, those exact figures, compared by
  tests/integration/test_gas_snapshot.py (any difference up or down fails; `make gas-snapshot` rewrites it);
* `bench.gas.figures`: the benchmark figures of `make bench` (per item, lifecycle) derived from them;
* `bench.gas.driver`, `bench.gas.x402`: the chain driver and the signed payment inputs.

`python -m bench.gas` prints the scenarios and figures; `--update` rewrites the snapshot; `--check` exits 1
with the difference when the snapshot is stale.
"""

from __future__ import annotations

from bench.gas.driver import Driver, derived_key, start
from bench.gas.figures import figures, run
from bench.gas.scenarios import measure
from bench.gas.x402 import channel_config, channel_id, config_tuple, exact_payment, voucher_typed_data

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
