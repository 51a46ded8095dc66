"""Health: chain head, indexer position and lag, database kind, contracts, version."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sqlalchemy import Engine

from backend.api.chain import Chain
from cairn.core.db import database_kind
from indexer.store import latest_indexed_block


def package_version() -> str:
    try:
        return version("cairn")
    except PackageNotFoundError:
        return "0+unknown"


def health(*, chain: Chain, engine: Engine) -> dict[str, Any]:
    head = chain.latest_block()
    latest = int(head["number"])
    indexed = latest_indexed_block(engine)
    return {
        "status": "ok",
        "version": package_version(),
        "chain_id": chain.chain_id,
        "rpc_url": chain.rpc_url,
        "latest_block": latest,
        "latest_block_time": int(head["timestamp"]),
        "latest_indexed_block": indexed,
        "indexer_lag": None if indexed is None else max(0, latest - indexed),
        "database": database_kind(engine),
        "database_kind": database_kind(engine),
        "contracts": {
            name: chain.w3.to_checksum_address(info.address)
            for name, info in chain.deployment.contracts.items()
        },
        "epoch": {"genesis": chain.deployment.epoch.genesis, "length": chain.deployment.epoch.length},
        "start_block": chain.deployment.start_block,
    }
