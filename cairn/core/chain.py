"""Chain access: one way to get a connected Web3."""

from __future__ import annotations

from web3 import Web3

from cairn.core.errors import ChainUnreachableError


def connect(w3_or_rpc_url: Web3 | str) -> Web3:
    """A connected Web3 (HTTP) or ChainUnreachableError."""
    if isinstance(w3_or_rpc_url, Web3):
        return w3_or_rpc_url
    w3 = Web3(Web3.HTTPProvider(w3_or_rpc_url, request_kwargs={"timeout": 30}))
    try:
        w3.eth.chain_id  # noqa: B018 - probe
    except Exception as exc:
        raise ChainUnreachableError(f"cannot reach RPC {w3_or_rpc_url}: {type(exc).__name__}") from None
    return w3
