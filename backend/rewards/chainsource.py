"""Audit path: the epoch's inputs from the chain alone (eth_getLogs, decoded by the ABI-derived catalogue of
`cairn.core.events`), and end blocks.

Nothing here reads the database: an auditor with an RPC URL and the deployment file (addresses, start block,
epoch clock) recomputes the allocation, the cumulative leaves and the root with the same pure core, and
compares them with the root proposed on chain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import httpx
import orjson
from web3 import Web3

from backend.rewards.allocation import EVENT_TABLES, EpochInputs, allocate, cumulate, inputs_from_events
from backend.rewards.events import DATASET_BATCH, decode_rows, reward_specs
from cairn.core.deployment import Deployment
from cairn.core.errors import InvalidInputError
from cairn.core.events import specs_from_abis
from cairn.core.policy import Policy

Rows = dict[str, list[dict[str, Any]]]


def epoch_end_time(deployment: Deployment, epoch: int) -> int:
    return deployment.epoch.bounds(epoch)[1]


def end_block(w3: Web3, deployment: Deployment, epoch: int) -> int | None:
    """The last block with timestamp < the epoch's end, or None while no block at/after the end exists."""
    end_ts = epoch_end_time(deployment, epoch)
    head = w3.eth.get_block("latest")
    if int(head["timestamp"]) < end_ts:
        return None

    def ts(n: int) -> int:
        return int(w3.eth.get_block(n)["timestamp"])

    lo, hi = 0, int(head["number"])  # invariant: ts(hi) >= end_ts; answer is the last n with ts(n) < end_ts
    if ts(0) >= end_ts:
        return -1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ts(mid) < end_ts:
            lo = mid
        else:
            hi = mid
    return lo


def fetch_events(
    w3: Web3,
    deployment: Deployment,
    to_block: int,
    *,
    chunk: int = 5_000,
    progress: Callable[[int], None] | None = None,
    extra_tables: Iterable[str] = (),
    from_block: int | None = None,
) -> Rows:
    """All reward-relevant events of the deployment's contracts from its start block (or `from_block`) to
    `to_block`; `extra_tables` adds other events of the catalogue by table name (`ev_root_proposed`, ...)."""
    addresses = sorted({Web3.to_checksum_address(c.address) for c in deployment.contracts.values()})
    abis = [c.abi for c in deployment.contracts.values()]
    specs = reward_specs(abis)
    extra = set(extra_tables)
    if extra:
        specs.update({t: s for t, s in specs_from_abis(abis, uint_as_str=False).items() if s.table in extra})
        missing = extra - {s.table for s in specs.values()}
        if missing:
            raise InvalidInputError(f"the deployment's ABIs have no events for {sorted(missing)}")
    topics = sorted(specs)
    rows: Rows = {t: [] for t in (*EVENT_TABLES, *sorted(extra))}
    lo = deployment.start_block if from_block is None else from_block
    step = chunk
    while lo <= to_block:
        hi = min(to_block, lo + step - 1)
        try:
            logs = _get_logs(w3, {"fromBlock": hex(lo), "toBlock": hex(hi), "address": addresses,
                                  "topics": [topics]})  # fmt: skip
        except Exception as exc:  # "too many results" or a range limit: halve the range
            if step == 1:
                raise InvalidInputError(f"eth_getLogs failed for block {lo}: {exc}") from None
            step = max(1, step // 2)
            continue
        for log in logs:
            raw = _raw_log(log)
            spec = specs.get(raw["topics"][0]) if raw["topics"] else None
            if spec is None:
                continue
            table = "ev_dataset_registered" if spec.table == DATASET_BATCH.table else spec.table
            rows[table].extend(decode_rows(spec, raw))
        if progress is not None:
            progress(hi)
        lo = hi + 1
    return rows


def _get_logs(w3: Web3, params: dict[str, Any]) -> list[dict[str, Any]]:
    """`eth_getLogs` as JSON-RPC returns it (hex strings): web3.py's result formatters (checksummed addresses,
    HexBytes, AttributeDicts) cost more than the request itself. Over HTTP the body is parsed with orjson."""
    uri = getattr(w3.provider, "endpoint_uri", None)
    if isinstance(uri, str) and uri.startswith(("http://", "https://")):
        body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [params]})
        r = httpx.post(uri, content=body, headers={"Content-Type": "application/json"}, timeout=120)
        r.raise_for_status()
        reply = orjson.loads(r.content)
    else:
        reply = w3.provider.make_request("eth_getLogs", [params])  # type: ignore[arg-type]
    if "error" in reply:
        raise InvalidInputError(f"eth_getLogs: {reply['error']}")
    logs: list[dict[str, Any]] = reply["result"]
    return logs


def _hex(value: Any) -> str:
    return value.lower() if isinstance(value, str) else "0x" + bytes(value).hex()


def _raw_log(log: Any) -> dict[str, Any]:
    """A web3 log (ints, HexBytes) in the JSON-RPC form the catalogue decodes (hex strings)."""
    if isinstance(log["blockNumber"], str):  # already the JSON-RPC form
        return {**log, "address": str(log["address"]).lower()}
    return {
        "blockNumber": hex(int(log["blockNumber"])),
        "logIndex": hex(int(log["logIndex"])),
        "blockHash": _hex(log.get("blockHash", b"")),
        "transactionHash": _hex(log.get("transactionHash", b"")),
        "address": str(log["address"]).lower(),
        "topics": [_hex(t) for t in log["topics"]],
        "data": _hex(log["data"]),
    }


def inputs_from_chain(
    w3: Web3, deployment: Deployment, epoch: int, end: int, policy: Policy, events: Rows | None = None
) -> EpochInputs:
    return inputs_from_events(events or fetch_events(w3, deployment, end), epoch, end, policy)


def audit_cumulative(
    w3: Web3, deployment: Deployment, first_epoch: int, epoch: int, policy: Policy
) -> tuple[dict[str, int], dict[str, int], int]:
    """Recompute the cumulative leaves of `epoch` from the chain alone, replaying epochs first..epoch.

    Returns (cumulative, this epoch's amounts, end block)."""
    ends = {e: end_block(w3, deployment, e) for e in range(first_epoch, epoch + 1)}
    last = ends[epoch]
    if last is None:
        raise InvalidInputError(f"epoch {epoch} has not ended on chain yet")
    events = fetch_events(w3, deployment, last)
    cumulative: dict[str, int] = {}
    amounts: dict[str, int] = {}
    for e in range(first_epoch, epoch + 1):
        end = ends[e]
        assert end is not None
        amounts = allocate(inputs_from_events(events, e, end, policy), policy)
        cumulative = cumulate(cumulative, amounts)
    return cumulative, amounts, last
