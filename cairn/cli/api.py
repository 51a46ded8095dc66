"""`cairn api`: serve the API and dashboard with uvicorn, in one process or `--workers N`.

With N workers, each process binds its own socket to the one port with SO_REUSEPORT, so the kernel spreads
new connections evenly over the processes by their addresses. (uvicorn's own `--workers` shares one listening
socket: whichever process is idle when a burst of clients connects accepts most of it, and those clients
then wait behind each other while another core idles: at 64 clients on 2 processes, measured splits of
20/44 connections doubled one half's latency.) The parent checks the configuration and applies the
migrations once, then starts the workers and stops them all when one of them exits or it is told to stop.
Only the first worker runs the indexer (`--with-indexer`); every worker runs the gateway's settler and
claimer and the outbox worker, which share their work through the database."""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
from typing import Any

import typer

from backend.api.app import create_app, run_migrations
from backend.api.chain import connect_chain
from backend.api.settings import ApiSettings
from cairn.core.db import make_engine
from cairn.core.settings import build_settings


def api(
    host: str | None = typer.Option(None, help="Interface to bind (CAIRN_API_HOST, default 127.0.0.1)"),
    port: int | None = typer.Option(None, help="Port (CAIRN_API_PORT, default 8000)"),
    workers: int | None = typer.Option(
        None, help="API processes on the one port (CAIRN_API_WORKERS, default 1; use the number of cores)"
    ),
    with_indexer: bool | None = typer.Option(
        None, "--with-indexer/--no-indexer", help="Run the indexer in this process (CAIRN_API_RUN_INDEXER)"
    ),
    database_url: str | None = typer.Option(None, help="SQLAlchemy URL (CAIRN_DATABASE_URL)"),
) -> None:
    """Serve the Cairn API and dashboard (health at /health, docs at /docs)."""
    overrides = {
        k: v
        for k, v in {
            "api_host": host,
            "api_port": port,
            "api_workers": workers,
            "api_run_indexer": with_indexer,
            "database_url": database_url,
        }.items()
        if v is not None
    }
    settings = build_settings(ApiSettings, **overrides)
    # Fail with one clear line (wrong chain, missing deployment, unreachable RPC or database) before serving.
    engine = make_engine(settings.database_url)
    chain = connect_chain(settings)
    if settings.api_workers == 1:
        engine.dispose()
        _serve(settings, None)
        return
    if settings.api_migrate:
        run_migrations(engine, chain.deployment)  # once, before the workers (they would race on it)
    engine.dispose()
    sys.exit(_supervise(overrides, settings.api_workers))


def _serve(settings: ApiSettings, sock: socket.socket | None) -> None:
    import uvicorn

    from backend.api.logs import log_config

    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        log_config=log_config(settings.log_level),  # JSON lines with the request id, access log included
        access_log=True,
    )
    uvicorn.Server(config).run(sockets=[sock] if sock is not None else None)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port) that other processes may bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _worker(overrides: dict[str, Any], index: int) -> None:
    """One worker process: the same configuration, migrations already applied, the indexer in worker 0."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the workers (SIGTERM)
    settings = build_settings(ApiSettings, **overrides)
    settings = settings.model_copy(
        update={"api_migrate": False, "api_run_indexer": settings.api_run_indexer and index == 0}
    )
    _serve(settings, reuse_port_socket(settings.api_host, settings.api_port))


def _supervise(overrides: dict[str, Any], count: int) -> int:
    """Start `count` workers; when one exits or SIGTERM/SIGINT arrives, stop the rest. The exit code: 0 when
    told to stop, else the first worker's that exited on its own (1 if it had none)."""
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited threads or connections
    procs = [ctx.Process(target=_worker, args=(overrides, i), name=f"cairn-api-{i}") for i in range(count)]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.is_alive() and p.pid is not None:
                p.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for p in procs:
        p.start()
    from multiprocessing.connection import wait

    wait([p.sentinel for p in procs])  # the first to exit (or all, once stopped)
    first = next((p for p in procs if not p.is_alive()), None)
    exited = first.exitcode if first is not None else None
    code = 0 if stopping else (exited if exited is not None and exited > 0 else 1)
    stop(signal.SIGTERM, None)
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
    return code


def register(app: typer.Typer) -> None:
    app.command("api")(api)
