"""Prometheus metrics: one registry per app (several apps can live in one test process)."""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send


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


class MetricsMiddleware:
    """ASGI middleware counting requests and their latency by method, route template and status (plain ASGI,
    not `BaseHTTPMiddleware`: no extra task and stream per request on the paid hot path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # the matched route template (`/v1/datasets/{content_hash}`), never the raw path (bounded labels)
            path = getattr(scope.get("route"), "path", None)
            route = str(path) if path else "unmatched"
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - start)


def install_metrics(app: FastAPI, metrics: Metrics) -> None:
    app.add_middleware(MetricsMiddleware, metrics=metrics)
