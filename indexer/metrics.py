"""Prometheus metrics of the indexer (exposed by `cairn index --metrics-port N`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

REGISTRY = CollectorRegistry()

LAG = Gauge(
    "cairn_indexer_lag_blocks", "Blocks between the node's head and the last indexed block", registry=REGISTRY
)
INDEXED_BLOCK = Gauge("cairn_indexer_block", "Last block committed by the indexer", registry=REGISTRY)
HEAD = Gauge("cairn_indexer_head_block", "Head block of the node", registry=REGISTRY)
EVENTS = Counter("cairn_indexer_events", "Events written", registry=REGISTRY)
REORGS = Counter("cairn_indexer_reorgs", "Chain reorganisations handled", registry=REGISTRY)
REORG_DEPTH = Gauge("cairn_indexer_last_reorg_depth", "Depth of the last reorganisation", registry=REGISTRY)
RPC_ERRORS = Counter("cairn_indexer_rpc_errors", "RPC faults by kind", ["kind"], registry=REGISTRY)
NODE_BEHIND = Counter("cairn_indexer_node_behind", "Times the node was behind our cursor", registry=REGISTRY)


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Serve /metrics on `addr:port` from a daemon thread."""
    start_http_server(port, addr=addr, registry=REGISTRY)
