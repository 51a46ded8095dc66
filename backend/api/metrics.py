"""Prometheus metrics: one registry per app (several apps can live in one test process)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cairn_api_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "cairn_api_request_seconds", "HTTP request latency", ["method", "route"], registry=self.registry
        )
        self.relayed = Counter(
            "cairn_api_relayed_total", "Relayed registrations by outcome", ["outcome"], registry=self.registry
        )
        self.relay_refusals = Counter(
            "cairn_api_relay_refusals_total", "Relay requests refused before any gas was spent, by reason",
            ["reason"], registry=self.registry,
        )  # fmt: skip
        self.relayer_gas = Counter(
            "cairn_api_relayer_gas_spent_total", "Gas the relayer paid (receipts' gasUsed)",
            registry=self.registry,
        )  # fmt: skip
        self.relayer_wei = Counter(
            "cairn_api_relayer_wei_spent_total", "Wei the relayer paid (gasUsed * effectiveGasPrice)",
            registry=self.registry,
        )  # fmt: skip
        self.relay_budget_remaining = Gauge(
            "cairn_api_relay_budget_remaining_gas", "Gas left in the relayer's global budget today",
            registry=self.registry,
        )  # fmt: skip
        self.chain_head = Gauge(
            "cairn_chain_head_block", "Latest block seen on the chain", registry=self.registry
        )
        self.indexed = Gauge(
            "cairn_indexer_block", "Latest block committed by the indexer", registry=self.registry
        )
        self.lag = Gauge("cairn_indexer_lag_blocks", "Chain head minus indexed block", registry=self.registry)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def _route_of(request: Request) -> str:
    """The matched route template (`/v1/datasets/{content_hash}`), never the raw path (bounded labels)."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def install_metrics(app: FastAPI, metrics: Metrics) -> None:
    @app.middleware("http")
    async def _measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = _route_of(request)
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - start)
        return response
