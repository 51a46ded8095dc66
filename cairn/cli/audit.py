"""`cairn audit`: verify epochs and contracts from the chain alone; `--watch` is the watchtower.

Reads the chain (RPC) and the deployment file only: no Cairn database, no Cairn API. Allocation files and
policies come from `--artifacts DIR|URL` and are checked against the hashes on chain. Exit status 0 only if
everything verifies (1: the audit failed; with `--watch`, 3: a wrong root could not be revoked).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from cairn.core.chain import connect
from cairn.core.deployment import load_deployment
from cairn.core.errors import ConfigError, InvalidInputError, MissingKeyError
from cairn.core.settings import ANVIL_DEV_KEYS, LOCAL_CHAIN_ID, PLACEHOLDER_MARKERS, load_settings

if TYPE_CHECKING:
    from web3 import Web3

    from backend.audit.artifacts import Artifacts
    from cairn.core.deployment import Deployment

out = Console()


def _guardian_key(env: str | None, chain_id: int) -> str | None:
    if not env:
        return None
    value = os.environ.get(env, "").strip()
    if not value:
        raise MissingKeyError(f"{env} is not set; it must hold the guardian key")
    if chain_id != LOCAL_CHAIN_ID:
        if any(m in value.lower() for m in PLACEHOLDER_MARKERS):
            raise ConfigError(f"{env} is a placeholder; set a real guardian key for chain {chain_id}")
        if value.lower() in ANVIL_DEV_KEYS:
            raise ConfigError(f"{env} is a public anvil development key; refused on chain {chain_id}")
    return value


def audit_command(
    rpc_url: Annotated[str | None, typer.Option("--rpc-url", help="JSON-RPC URL (CAIRN_RPC_URLS)")] = None,
    deployment: Annotated[
        Path | None, typer.Option("--deployment", help="Deployment file (CAIRN_DEPLOYMENT_FILE)")
    ] = None,
    epoch: Annotated[
        list[int] | None, typer.Option("--epoch", help="Epoch to audit (repeatable; default: --all)")
    ] = None,
    all_epochs: Annotated[bool, typer.Option("--all", help="Every epoch with a proposed root")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table | json | html")] = "table",
    output: Annotated[Path | None, typer.Option("--output", help="Write the report here too")] = None,
    artifacts: Annotated[
        str | None,
        typer.Option("--artifacts", help="Where allocation files / policies are: a directory or a base URL"),
    ] = None,
    policy: Annotated[
        str | None, typer.Option("--policy", help="Expect this policy (version or file) for every epoch")
    ] = None,
    bytecode: Annotated[
        bool, typer.Option("--bytecode/--no-bytecode", help="Compile the sources and verify the contracts")
    ] = True,
    chain_checks: Annotated[
        bool, typer.Option("--epochs/--no-epochs", help="Audit the epochs and the conservation checks")
    ] = True,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Write <dir>/audit/latest.json for the API (default CAIRN_DATA_DIR)"),
    ] = None,
    save: Annotated[
        bool, typer.Option("--save/--no-save", help="Write the latest report under the data dir")
    ] = True,
    watch: Annotated[bool, typer.Option("--watch", help="Watchtower: audit every new pending root")] = False,
    guardian_key_env: Annotated[
        str | None, typer.Option("--guardian-key-env", help="Env var with the guardian key (revokes)")
    ] = None,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between looks (--watch)")] = 5.0,
    once: Annotated[bool, typer.Option("--once", help="One look, then exit (--watch)")] = False,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Serve Prometheus metrics here (--watch)")
    ] = None,
    outbox_db: Annotated[
        Path | None, typer.Option("--outbox-db", help="The watchtower's own outbox (SQLite file)")
    ] = None,
) -> None:
    """Verify epochs (roots recomputed from chain events, files and policies by hash, conservation) and
    contracts (bytecode compiled from the sources) from the chain alone."""
    from backend.audit.artifacts import Artifacts

    if fmt not in ("table", "json", "html"):
        raise InvalidInputError(f"--format must be table, json or html, not {fmt!r}")
    if epoch and all_epochs:
        raise InvalidInputError("--epoch and --all exclude each other")
    settings = load_settings(rpc_urls=rpc_url, deployment_file=deployment)
    url = settings.rpc_urls[0]
    dep = load_deployment(settings.deployment_file)
    w3 = connect(url)
    dep.require_chain(int(w3.eth.chain_id), url)
    source = Artifacts(artifacts)
    if watch:
        _watch(w3, dep, source, guardian_key_env, interval, once, metrics_port, outbox_db)
        return
    report = run_audit(
        w3,
        dep,
        rpc_url=url,
        deployment=settings.deployment_file,
        epochs=epoch or None,
        artifacts=source,
        policy=policy,
        bytecode=bytecode,
        chain_checks=chain_checks,
    )
    _emit(report, fmt, output)
    if save:
        from backend.audit.report import write_latest

        write_latest(data_dir or settings.data_dir, report)
    if not report["ok"]:
        raise typer.Exit(1)


def run_audit(
    w3: Web3,
    dep: Deployment,
    *,
    rpc_url: str,
    deployment: Path,
    epochs: list[int] | None,
    artifacts: Artifacts,
    policy: str | None,
    bytecode: bool,
    chain_checks: bool,
) -> dict[str, Any]:
    from backend.audit.bytecode import verify_bytecode
    from backend.audit.epochs import audit_chain
    from backend.audit.report import build_report
    from cairn.core.policy import load_policy

    chain = (
        audit_chain(
            w3,
            dep,
            epochs=epochs,
            artifacts=artifacts,
            expected_policy=load_policy(policy) if policy else None,
        )
        if chain_checks
        else None
    )
    code = verify_bytecode(w3, dep) if bytecode else None
    return build_report(chain, code, rpc_url=rpc_url, deployment=str(deployment))


def _emit(report: dict[str, Any], fmt: str, output: Path | None) -> None:
    import orjson

    from backend.audit.report import print_table, render_html

    if fmt == "table":
        print_table(report, out)
        text = None
    elif fmt == "json":
        text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
        print(text)
    else:
        text = render_html(report)
        if output is None:
            print(text)
    if output is not None:
        if text is None:
            text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
        output.write_text(text)


def _watch(
    w3: Web3,
    dep: Deployment,
    source: Artifacts,
    guardian_key_env: str | None,
    interval: float,
    once: bool,
    metrics_port: int | None,
    outbox_db: Path | None,
) -> None:
    from backend.audit.watch import WatchMetrics, Watchtower, outbox_engine, run_watch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    key = _guardian_key(guardian_key_env, dep.chain_id)
    metrics = WatchMetrics()
    if metrics_port is not None:
        metrics.serve(metrics_port)
    tower = Watchtower(
        w3,
        dep,
        artifacts=source,
        guardian_key=key,
        outbox_engine=outbox_engine(outbox_db),
        metrics=metrics,
    )
    status = run_watch(tower, interval=interval, once=once)
    if status:
        raise typer.Exit(status)


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_command)
