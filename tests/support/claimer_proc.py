"""A channel claimer process for the crash test (tests/integration/test_channel_claimer_crash.py): claims in
a tight loop (every channel with anything unclaimed is due) until killed. Prints `ready` once it runs."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from web3 import Web3

from backend.api.x402.claimer import ChannelClaimer
from backend.outbox import Outbox
from cairn.core.db import make_engine
from cairn.core.deployment import load_deployment


def main() -> None:
    dep = load_deployment(Path(os.environ["CLAIMER_DEPLOYMENT"]))
    w3 = Web3(Web3.HTTPProvider(os.environ["CLAIMER_RPC"]))
    engine = make_engine(os.environ["CLAIMER_DB"])
    outbox = Outbox(engine, w3, os.environ["CLAIMER_KEY"])
    claimer = ChannelClaimer(
        engine=engine, outbox=outbox, router=dep.contract(w3, "PaymentRouter"), min_requests=1, max_wait_s=0
    )
    print("ready", flush=True)
    while True:
        claimer.run_once()
        time.sleep(0.005)


if __name__ == "__main__":
    sys.exit(main())
