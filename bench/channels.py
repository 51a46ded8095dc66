"""x402 `batch-settlement` channel mode, measured on a real anvil chain, the real router, the indexer's
SQLite mirror and the gateway's scheme (backend.api.x402.channel), with the agents' plugin
(cairn.agent.channel_client).

Figures:
- `voucher_verify_p50_ms`: the verification a voucher adds to a paid request (payload parsing, channel id,
  EIP-712 digest, libsecp256k1 recovery; no RPC, no database), median over every voucher of the run;
  `voucher_accept_p50_ms` adds the locked database transaction (mirror read, cumulative check, record, the
  request recorded in flight); `voucher_served_p50_ms` is the transaction that marks it served (claimable).
- `paid_requests_per_settlement_tx`: requests covered by one `PaymentRouter.claim` transaction built by the
  claimer (CHANNELS channels x REQUESTS requests, all claimed in one transaction through the outbox);
  `gas_paid_request_channel`: that transaction's gasUsed / those requests.
- `gateway_paid_rps`: paid requests/s through the real API (`cairn api --workers N`, loopback,
  every middleware, the x402 gateway with both schemes; one worker process per core, sharing the
  SQLite database), AGENTS concurrent agents each paying its own channel in channel mode for
  `POST /v1/chat/completions` of the embedded model (trained on a demo corpus; `max_tokens` 8): every request
  carries a fresh voucher (PAYMENT-SIGNATURE), is verified and charged under the channel's lock, answered by
  the model and with PAYMENT-RESPONSE; only 200s are counted. The per-client rate limits are raised for the
  run (all agents are one loopback client). On this shared machine the figure follows the CPU the other
  processes leave; `gateway_cpu_ms_per_paid_request` (the API processes' CPU time / requests served) is the
  cost that does not depend on that.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
CHANNELS = int(os.environ.get("CAIRN_BENCH_CHANNELS", "10"))
REQUESTS = int(os.environ.get("CAIRN_BENCH_CHANNEL_REQUESTS", "1000"))
AGENTS = 64
RPS_SECONDS = float(os.environ.get("CAIRN_BENCH_RPS_SECONDS", "10"))
WORKERS = int(os.environ.get("CAIRN_BENCH_GATEWAY_WORKERS", str(os.cpu_count() or 2)))  # API worker processes


def _claims(world: object) -> dict[str, float]:
    from support.channels import PRICE, ChannelWorld, agent_key

    assert isinstance(world, ChannelWorld)
    agents = [world.open_channel(agent_key(i), (REQUESTS + 1) * PRICE) for i in range(CHANNELS)]
    world.index()
    requirement = world.requirement()
    charge = world.charge()
    verify_ms: list[float] = []
    accept_ms: list[float] = []
    served_ms: list[float] = []
    for _ in range(REQUESTS):
        for agent in agents:
            payload = {"x402Version": 2, "accepted": requirement,
                       "payload": agent.plugin.create_payment_payload(requirement)}  # fmt: skip
            t0 = time.perf_counter()
            world.scheme.verify(payload["payload"])
            t1 = time.perf_counter()
            accepted = world.scheme.accept(payload, requirement, charge)
            t2 = time.perf_counter()
            world.scheme.served(accepted)  # as the gateway does once the route has answered
            t3 = time.perf_counter()
            verify_ms.append((t1 - t0) * 1000)
            accept_ms.append((t2 - t1) * 1000)
            served_ms.append((t3 - t2) * 1000)
            agent.plugin.record(world.scheme.response(accepted)["extra"]["channelState"])
    claimer = world.claimer(max_rows=CHANNELS)
    rounds = [r for r in claimer.claim_all() if r.outbox_id is not None]
    assert len(rounds) == 1, [len(r.lines) for r in rounds]
    tx = claimer.outbox.get_by_id(int(rounds[0].outbox_id or 0))
    assert tx is not None and tx.mined_hash is not None and tx.status == "confirmed"
    receipt = world.w3.eth.get_transaction_receipt(tx.mined_hash)  # type: ignore[arg-type]
    requests = rounds[0].requests
    for agent in agents:
        _, claimed = world.router.functions.channels(bytes.fromhex(agent.channel_id[2:])).call()
        assert claimed == REQUESTS * PRICE
    print(f"   claim: {len(rounds[0].lines)} channels, {requests} requests, gasUsed {receipt['gasUsed']}")
    return {
        "voucher_verify_p50_ms": round(statistics.median(verify_ms), 4),
        "voucher_accept_p50_ms": round(statistics.median(accept_ms), 4),
        "voucher_served_p50_ms": round(statistics.median(served_ms), 4),
        "paid_requests_per_settlement_tx": float(requests),
        "gas_paid_request_channel": round(int(receipt["gasUsed"]) / requests, 1),
    }


async def _agents(base: str, requirement: dict[str, object], plugins: list[object], seconds: float) -> int:
    """Each agent: a voucher per request from its plugin (`payment_header`), the gateway's PAYMENT-RESPONSE
    fed back to the plugin; all agents at once until `seconds` pass. Returns the paid requests served."""
    import json

    from support.channels import CHAT

    from bench.http_load import Connection
    from cairn.agent.channel_client import CairnChannelScheme

    body = json.dumps(CHAT).encode()
    served = 0
    stop_at = time.monotonic() + seconds

    async def agent(plugin: CairnChannelScheme) -> None:
        nonlocal served
        conn = Connection(base)  # bench.http_load: one keep-alive connection per agent
        try:
            while time.monotonic() < stop_at:
                signature = plugin.payment_header(requirement)
                headers = {"Content-Type": "application/json", "PAYMENT-SIGNATURE": signature}
                response = await conn.request("POST", "/v1/chat/completions", body, headers)
                if response.status != 200:
                    problem = response.headers.get("payment-required", "")[:300]
                    raise AssertionError(f"{response.status} {problem}")
                plugin.record_response_header(response.headers["payment-response"])
                served += 1
        finally:
            await conn.close()

    await asyncio.gather(*(agent(p) for p in plugins))  # type: ignore[arg-type]
    return served


def _rps(world: object, tmp: Path) -> dict[str, float]:
    from support.channels import PRICE, ChannelWorld, GatewayProcess, agent_key

    assert isinstance(world, ChannelWorld)
    agents = [world.open_channel(agent_key(1000 + i), 10**6 * PRICE) for i in range(AGENTS)]
    world.index()
    gateway = GatewayProcess(world, tmp, "gateway", workers=WORKERS)
    try:
        requirement = world.requirement()
        plugins = [a.plugin for a in agents]
        asyncio.run(_agents(gateway.base, requirement, plugins, 1.0))  # warm-up: connections, first rows
        cpu0 = _cpu(gateway.proc.pid)
        t0 = time.perf_counter()
        served = asyncio.run(_agents(gateway.base, requirement, plugins, RPS_SECONDS))
        elapsed = time.perf_counter() - t0
        cpu = _cpu(gateway.proc.pid) - cpu0
    finally:
        gateway.stop()
    print(f"   {served} paid chat completions in {elapsed:.1f} s, {AGENTS} agents, {WORKERS} API worker(s), "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    return {
        "gateway_paid_rps": round(served / elapsed, 1),
        "gateway_cpu_ms_per_paid_request": round(cpu / served * 1000, 3),
    }


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) of the gateway process and its children."""
    import psutil

    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        t = p.cpu_times()
        total += t.user + t.system
    return total


def run() -> dict[str, float]:
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from support.channels import build_world

    from cairn.cli.devchain import start_anvil

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cairn-channels-") as tmp, start_anvil() as anvil:
        world = build_world(anvil, Path(tmp))
        try:
            figures.update(_claims(world))
            figures.update(_rps(world, Path(tmp)))
        finally:
            world.engine.dispose()
    return figures


if __name__ == "__main__":
    for k, v in run().items():
        print(k, v)
