"""The claimer is crash-safe and idempotent: a claimer process (tests/support/claimer_proc.py) is killed
with SIGKILL at random moments while agents keep paying; after the last restart every channel's on-chain
`totalClaimed` equals what the gateway charged, the mirrored `PaymentSettled` rows add up to it exactly, and
no claim transaction failed (a claim sent twice would revert: claimed totals must rise)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from support.channels import PRICE, ChannelWorld, agent_key, build_world

from cairn.cli.devchain import Anvil

KILLS = int(os.environ.get("CAIRN_CHANNEL_CRASH_KILLS", "100" if os.environ.get("CI") else "20"))


@pytest.fixture
def world(anvil: Anvil, tmp_path: Path) -> Iterator[ChannelWorld]:
    w = build_world(anvil, tmp_path)
    try:
        yield w
    finally:
        w.engine.dispose()


def _claimer(world: ChannelWorld, tmp: Path) -> subprocess.Popen[str]:
    repo = Path(__file__).resolve().parents[2]
    env = dict(
        os.environ, PYTHONPATH=f"{repo}{os.pathsep}{repo / 'tests'}", CLAIMER_DB=world.db_url,
        CLAIMER_RPC=world.anvil.url, CLAIMER_DEPLOYMENT=str(tmp / "deployment.json"),
        CLAIMER_KEY=world.settler.key.hex(),
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "support.claimer_proc"], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_claimer_killed_at_random_points_claims_everything_exactly_once(
    world: ChannelWorld, tmp_path: Path
) -> None:
    rng = random.Random(11)
    agents = [world.open_channel(agent_key(i), 10**4 * PRICE) for i in range(4)]
    world.index()
    in_flight = 0  # kills that left a stored claim not yet settled (between enqueue and settle)
    for kill in range(KILLS):
        for _ in range(rng.randint(1, 6)):
            world.pay(rng.choice(agents))
        proc = _claimer(world, tmp_path)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with world.engine.connect() as conn:
            in_flight += bool(
                conn.execute(text("SELECT COUNT(*) FROM channel_claim WHERE state = 'pending'")).scalar()
            )
        assert proc.returncode == -signal.SIGKILL, f"the claimer exited by itself in round {kill}"
    rounds = world.claimer().claim_all()  # the last restart settles what the killed ones left
    assert rounds
    charged = {a.channel_id: a.plugin.charged[a.channel_id] for a in agents}
    for agent in agents:
        _, claimed = world.router.functions.channels(bytes.fromhex(agent.channel_id[2:])).call()
        assert claimed == charged[agent.channel_id]
    world.index()
    with world.engine.connect() as conn:
        failed = conn.execute(text("SELECT COUNT(*) FROM outbox_tx WHERE status = 'failed'")).scalar()
        amounts = [int(r[0]) for r in conn.execute(text("SELECT amount FROM ev_payment_settled"))]
        claims = conn.execute(
            text("SELECT COUNT(*), SUM(requests) FROM channel_claim WHERE state = 'confirmed'")
        ).one()
        pending = conn.execute(text("SELECT COUNT(*) FROM channel_claim WHERE state != 'confirmed'")).scalar()
        served = conn.execute(text("SELECT SUM(requests) FROM channel_state")).scalar()
    assert failed == 0 and pending == 0
    assert in_flight > 0, "no kill landed while a claim was in flight"
    assert sum(amounts) == sum(charged.values())
    assert claims[0] == len(amounts) and claims[1] == served
