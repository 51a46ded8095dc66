"""What backfill (indexer.backfill) and live steps (indexer.follow) work with, built once by indexer.core."""

from __future__ import annotations

from dataclasses import dataclass

from indexer.decode import Decoder
from indexer.rpc import RpcClient
from indexer.step import IndexerOptions
from indexer.store import Store


@dataclass(frozen=True)
class StepContext:
    """One indexer's RPC client, store, decoder, options; the deployment's chain and contracts; the depth."""

    rpc: RpcClient
    store: Store
    decoder: Decoder
    options: IndexerOptions
    chain_id: int
    addresses: list[str]  # every contract of the deployment, lowercase, sorted (the eth_getLogs filter)
    confirmations: int  # finality depth (block hashes are kept at least this deep)
