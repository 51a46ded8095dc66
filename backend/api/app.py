"""`create_app(settings)`: the Cairn API and dashboard.

The lifespan creates the database engine, connects to the RPC, loads the deployment file and checks the
chain id against it (one clear error), applies migrations, starts the relayer (its outbox reconciles what a
previous run left pending, then a worker thread re-broadcasts and fee-bumps) and, when asked
(`CAIRN_API_RUN_INDEXER=1` or `cairn api --with-indexer`), runs the indexer in a background thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy.exc
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from backend.api.chain import connect_chain
from backend.api.inflight import InFlightLimit
from backend.api.logs import RequestIdMiddleware
from backend.api.metrics import Metrics, install_metrics
from backend.api.problems import install_problem_handlers
from backend.api.ratelimit import RateLimiter, RateLimitMiddleware, RateLimits
from backend.api.relay import Relayer
from backend.api.relay.guard import RelayGuard
from backend.api.routers import (
    ai_models,
    audit,
    auth,
    content,
    contributors,
    health,
    inference,
    me,
    operator,
    payments,
    relays,
    rewards,
    views,
)
from backend.api.schemas import problem_responses
from backend.api.services.health import package_version
from backend.api.services.inference import Inference
from backend.api.settings import ApiSettings, api_settings
from backend.api.x402.claimer import ClaimerThread
from backend.api.x402.gateway import (
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    install_payment_response,
)
from backend.api.x402.service import build_claimer, build_gateway
from backend.api.x402.settle import SettlerThread, build_settler
from backend.outbox import OutboxWorker
from cairn.core.content import ContentStore
from cairn.core.db import make_engine
from cairn.core.deployment import Deployment
from cairn.core.errors import CairnError, DatabaseUnreachableError
from cairn.core.settings import Settings

STATIC = Path(__file__).parent / "static"
MIGRATION_ATTEMPTS = 5
_MIGRATION_LOCK = threading.Lock()
log = logging.getLogger("cairn.api")


DB_POOL_SIZE, DB_POOL_OVERFLOW = 10, 20  # per API process; requests in flight: half of it (`InFlightLimit`)


def run_migrations(engine: Engine, deployment: Deployment) -> None:
    """Bring the indexer's tables (`ev_*`, cursor, views) and the backend's tables up to date.

    Each package owns its migrations; both upgrades are idempotent and safe next to a running indexer."""
    from backend.migrations import upgrade as backend_upgrade
    from cairn.core.events import specs_from_abis
    from indexer.store import upgrade as indexer_upgrade

    specs = specs_from_abis(
        (c.abi for c in deployment.contracts.values()), uint_as_str=engine.dialect.name != "postgresql"
    )
    # `cairn dev` starts the indexer and the API together: on SQLite (no advisory lock) both may try to
    # create the same tables; the loser retries and then finds the schema at head.
    for attempt in range(1, MIGRATION_ATTEMPTS + 1):
        try:
            with _MIGRATION_LOCK:  # Alembic's context is process-global: one upgrade at a time per process
                indexer_upgrade(engine, specs)
                backend_upgrade(engine)
            return
        except sqlalchemy.exc.DBAPIError as exc:
            if attempt == MIGRATION_ATTEMPTS:
                first = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
                raise DatabaseUnreachableError(f"database migrations failed: {first}") from None
            log.info("migrations raced with another process (%s); retrying", type(exc).__name__)
            time.sleep(0.2 * attempt)


class BackgroundIndexer:
    """The indexer in a daemon thread of the API process, stopped at shutdown."""

    def __init__(self, settings: ApiSettings, deployment: Deployment, engine: Engine) -> None:
        from indexer.core import Indexer

        self.indexer = Indexer(settings, deployment, engine=engine)
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        def _run() -> None:
            try:
                self.indexer.run(self.stop_event)
            except BaseException as exc:  # reported by /health
                self.error = exc
                log.exception("background indexer stopped")

        self.thread = threading.Thread(target=_run, name="cairn-indexer", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
        self.indexer.close()


def create_app(settings: Settings | None = None, *, run_indexer: bool | None = None) -> FastAPI:
    cfg = api_settings(settings if settings is not None else ApiSettings())
    with_indexer = cfg.api_run_indexer if run_indexer is None else run_indexer
    metrics = Metrics()
    limiter = RateLimiter(RateLimits.from_settings(cfg))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(cfg.database_url, pool_size=DB_POOL_SIZE, max_overflow=DB_POOL_OVERFLOW)
        try:
            chain = connect_chain(cfg)
            if cfg.api_migrate:
                run_migrations(engine, chain.deployment)
            relayer = Relayer(
                chain=chain,
                engine=engine,
                private_key=cfg.signing_key("relayer", chain.chain_id),
                gas_limit=cfg.api_relay.gas_limit,
                guard=RelayGuard(engine, chain, cfg.api_relay, metrics),
            )
            gateway = build_gateway(cfg, chain, engine)
        except BaseException:
            engine.dispose()
            raise
        try:  # what a previous run left pending: settled, re-broadcast or fee-bumped by the outbox
            recovered = relayer.reconcile()
            if any(recovered.values()):
                log.warning("relay transactions reconciled at start-up: %s", recovered)
        except (CairnError, OSError, ValueError) as exc:  # a re-broadcast refused: the worker retries
            log.warning("relay reconciliation at start-up failed (%s); the outbox worker retries", exc)
        # re-broadcasts and fee bumps; after each round the relayer settles its gas budget from the rows the
        # round settled and sends the reveals of relays whose commit is mined
        outbox_worker = OutboxWorker(relayer.outbox, then=relayer.after_outbox_round)
        outbox_worker.start()
        settler = (
            SettlerThread(build_settler(cfg, chain, engine), cfg.api_x402_settle_interval_s)
            if cfg.api_x402_settle_in_api
            else None
        )
        if settler is not None:
            settler.start()
        claimer = (  # one per database: a second API process on it sets CAIRN_API_CHANNEL_CLAIM_IN_API=false
            ClaimerThread(build_claimer(cfg, chain, engine), interval=cfg.api_channel_claim_interval_s)
            if cfg.api_x402_channels and cfg.api_channel_claim_in_api
            else None
        )
        if claimer is not None:
            claimer.start()
        background = BackgroundIndexer(cfg, chain.deployment, engine) if with_indexer else None
        app.state.settings = cfg
        app.state.engine = engine
        app.state.chain = chain
        app.state.relayer = relayer
        app.state.content_store = ContentStore(cfg.content_dir, max_bytes=cfg.content_max_bytes)
        app.state.outbox_worker = outbox_worker
        app.state.metrics = metrics
        app.state.x402 = gateway  # backend.api.x402.gateway.require_payment reads it
        app.state.limiter = limiter
        app.state.indexer = background
        app.state.inference = Inference(cfg, engine, chain_id=chain.chain_id, store=app.state.content_store)
        if background is not None:
            background.start()
        try:
            yield
        finally:
            if background is not None:
                background.stop()
            if claimer is not None:
                claimer.stop()
            if settler is not None:
                settler.stop()
            for scheme in gateway.schemes.values():
                close = getattr(scheme, "close", None)
                if close is not None:
                    close()
            outbox_worker.stop()
            app.state.inference.close()
            engine.dispose()

    app = FastAPI(
        title="Cairn API",
        version=package_version(),
        summary="Contributor reward ledger for open AI: datasets, attestations, epochs, proofs.",
        lifespan=lifespan,
        responses=problem_responses(429),  # every operation: RateLimitMiddleware, per client and account
    )
    app.state.limiter = limiter
    install_problem_handlers(app)
    install_metrics(app, metrics)
    install_payment_response(app)
    app.add_middleware(InFlightLimit, limit=(DB_POOL_SIZE + DB_POOL_OVERFLOW) // 2)
    origins = [o.strip() for o in cfg.api_cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "HEAD", "POST", "PUT"],
            allow_headers=["Content-Type", "Authorization", "X-API-Key", "X-Request-ID", PAYMENT_SIGNATURE],
            expose_headers=[
                "Content-Type",
                "ETag",
                "Retry-After",
                "X-Request-ID",
                PAYMENT_REQUIRED,
                PAYMENT_RESPONSE,
            ],
            allow_credentials=True,  # the session cookie (SameSite=Strict) of a listed origin
        )
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer and log line has the request id
    app.include_router(health.router)
    app.include_router(contributors.router)
    app.include_router(inference.router)
    app.include_router(ai_models.router)
    app.include_router(rewards.router)
    app.include_router(content.router)
    app.include_router(payments.router)
    app.include_router(auth.router)
    app.include_router(me.router)
    app.include_router(operator.router)
    app.include_router(audit.router)
    app.include_router(relays.router)
    app.include_router(relays.signing)
    app.include_router(views.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    return app
