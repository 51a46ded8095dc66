"""`cairn epoch compute|publish|finalize|fund|payout|relay|keeper|status`: the epoch lifecycle (`cairn audit`
verifies epochs from the chain alone).

Every command is idempotent: re-running after a crash continues where the last run stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from backend import migrations
from backend.rewards import epochs as reward_epochs
from backend.rewards.build import build_lifecycle
from backend.rewards.lifecycle import EpochLifecycle
from cairn.core.chain import connect
from cairn.core.db import make_engine
from cairn.core.deployment import load_deployment
from cairn.core.errors import ConflictError
from cairn.core.policy import load_policy
from cairn.core.settings import Settings, load_settings

epoch_app = typer.Typer(
    help="Reward epochs: fund, close (compute), publish (propose), finalize (accept), payout, relay, keeper, "
    "status (`cairn audit` verifies them from the chain alone).",
    no_args_is_help=True,
)
out = Console()

# The options the commands share, once (each command lists the ones it takes).
DbUrl = Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL (CAIRN_DATABASE_URL)")]
RpcUrl = Annotated[str | None, typer.Option("--rpc-url", help="JSON-RPC URL (CAIRN_RPC_URLS)")]
DeploymentFile = Annotated[
    Path | None, typer.Option("--deployment", help="Deployment file (CAIRN_DEPLOYMENT_FILE)")
]
PolicyRef = Annotated[
    str, typer.Option("--policy", help="Policy version (cairn/core/policies/<v>.json) or a JSON file")
]
Source = Annotated[
    str, typer.Option("--source", help="db: the indexer's SQL mirror; chain: eth_getLogs only")
]
Confirmations = Annotated[
    int | None,
    typer.Option(
        "--confirmations",
        help="Close N blocks after the end block (default: the node's `finalized` tag, else "
        "CAIRN_CONFIRMATIONS; on the local chain CAIRN_CONFIRMATIONS)",
    ),
]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Accounts per claimForBatch transaction")]


def _settings(database_url: str | None, rpc_url: str | None, deployment: Path | None) -> Settings:
    return load_settings(database_url=database_url, rpc_urls=rpc_url, deployment_file=deployment)


def _lifecycle(
    database_url: str | None,
    rpc_url: str | None,
    deployment: Path | None,
    policy: str,
    source: str,
    confirmations: int | None,
    *,
    migrate: bool = True,
) -> EpochLifecycle:
    settings = _settings(database_url, rpc_url, deployment)
    dep = load_deployment(settings.deployment_file)
    w3 = connect(settings.rpc_urls[0])
    dep.require_chain(int(w3.eth.chain_id), settings.rpc_urls[0])
    return build_lifecycle(
        settings, engine=make_engine(settings.database_url), w3=w3, deployment=dep,
        policy=load_policy(policy), source=source, confirmations=confirmations, migrate=migrate,
    )  # fmt: skip


def _show(row: object) -> None:
    r = row.__dict__
    out.print(
        f"epoch {r['epoch']}: {r['status']} end_block={r['end_block']} root={r['root'] or '-'} "
        f"total={r['total_cumulative'] or '-'} file={r['allocation_file'] or '-'}",
        highlight=False,
        soft_wrap=True,
    )


def _step_command(name: str, step: Callable[[EpochLifecycle, int], object], doc: str) -> None:
    """`cairn epoch <name> N`: a lifecycle step that may close and compute the epoch first."""

    def command(
        epoch: int,
        database_url: DbUrl = None,
        rpc_url: RpcUrl = None,
        deployment: DeploymentFile = None,
        policy: PolicyRef = "v1",
        source: Source = "db",
        confirmations: Confirmations = None,
    ) -> None:
        eng = _lifecycle(database_url, rpc_url, deployment, policy, source, confirmations)
        _show(step(eng, epoch))

    command.__doc__ = doc
    epoch_app.command(name)(command)


_step_command(
    "compute",
    EpochLifecycle.compute,
    "Close an ended epoch (end block final, mirror past it) and compute its allocation, tree and file.",
)
_step_command(
    "publish",
    EpochLifecycle.publish,
    "Propose the epoch's root on chain (closing and computing it first if needed); an epoch whose root a "
    "guardian revoked is recomputed and proposed again.",
)


@epoch_app.command("finalize")
def finalize(
    epoch: int,
    database_url: DbUrl = None,
    rpc_url: RpcUrl = None,
    deployment: DeploymentFile = None,
    policy: PolicyRef = "v1",
) -> None:
    """Accept the proposed root once its challenge delay has passed."""
    eng = _lifecycle(database_url, rpc_url, deployment, policy, "db", None)
    _show(eng.finalize(epoch))


@epoch_app.command("fund")
def fund(
    epoch: int | None = typer.Argument(None, help="Epoch to fund (default: the chain's current epoch)"),
    database_url: DbUrl = None,
    rpc_url: RpcUrl = None,
    deployment: DeploymentFile = None,
) -> None:
    """Mint the epoch's emission into the pool (fundEmission) while it runs; once, through the outbox."""
    eng = _lifecycle(database_url, rpc_url, deployment, "v1", "db", None)
    res = eng.fund(epoch)
    tx = f" tx {res.tx.mined_hash}" if res.status == "sent" and res.tx is not None else ""
    what = "funded" if res.status == "sent" else "already funded (nothing sent)"
    out.print(
        f"epoch {res.epoch}: {what}, emission minted {res.minted} wei{tx}", highlight=False, soft_wrap=True
    )


@epoch_app.command("payout")
def payout(
    epoch: int,
    min_amount: int = typer.Option(1, "--min-amount", help="Pay accounts with at least this many wei due"),
    batch_size: BatchSize = 100,
    database_url: DbUrl = None,
    rpc_url: RpcUrl = None,
    deployment: DeploymentFile = None,
    policy: PolicyRef = "v1",
) -> None:
    """Push payouts: claimForBatch for every account of the accepted epoch with something due."""
    from backend.rewards.payouts import push_payouts

    eng = _lifecycle(database_url, rpc_url, deployment, policy, "db", None)
    report = push_payouts(eng, epoch, min_amount=min_amount, batch_size=batch_size)
    out.print(report.summary(), highlight=False, soft_wrap=True)
    for tx in report.batches:
        out.print(f"  batch {tx.status} {tx.mined_hash} (nonce {tx.nonce})", highlight=False, soft_wrap=True)
    if report.unpaid:
        raise ConflictError(
            f"{len(report.unpaid)} account(s) unpaid after repeated reverts (first {report.unpaid[0]}); "
            "run it again"
        )


@epoch_app.command("keeper")
def keeper(
    interval: float | None = typer.Option(None, help="Seconds between looks (CAIRN_KEEPER_INTERVAL)"),
    database_url: DbUrl = None,
    rpc_url: RpcUrl = None,
    deployment: DeploymentFile = None,
) -> None:
    """Fund each epoch's emission as soon as it starts (what `cairn dev` / `cairn up` run next to the API)."""
    import logging

    from backend.rewards.keeper import KeeperSettings, keep

    settings = _settings(database_url, rpc_url, deployment)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    eng = _lifecycle(database_url, rpc_url, deployment, "v1", "db", None)
    keep(eng, interval=interval if interval is not None else KeeperSettings().interval)


@epoch_app.command("relay")
def relay(
    epoch: int,
    account: list[str] | None = typer.Option(None, "--account", help="Only these accounts (repeatable)"),
    batch_size: BatchSize = 100,
    database_url: DbUrl = None,
    rpc_url: RpcUrl = None,
    deployment: DeploymentFile = None,
    policy: PolicyRef = "v1",
) -> None:
    """Relayed claims (claimForBatch, publisher pays gas) for accounts that cannot claim themselves."""
    from backend.rewards.payouts import relay_claims

    eng = _lifecycle(database_url, rpc_url, deployment, policy, "db", None)
    sent = relay_claims(eng, epoch, accounts=account or None, batch_size=batch_size)
    out.print(f"{len(sent)} claim batch(es): " + ", ".join(f"{t.status} {t.mined_hash}" for t in sent))


@epoch_app.command("status")
def status(database_url: DbUrl = None) -> None:
    """List the epochs the rewards engine knows and their state."""
    settings = load_settings(database_url=database_url)
    engine = make_engine(settings.database_url)
    migrations.upgrade(engine)
    with engine.connect() as conn:
        rows = reward_epochs.list_rows(conn)
    if not rows:
        out.print("no epochs yet")
    for r in rows:
        out.print(
            f"chain {r.chain_id} epoch {r.epoch}: {r.status} end_block={r.end_block} root={r.root or '-'} "
            f"total={r.total_cumulative or '-'} file={r.allocation_file or '-'}",
            highlight=False,
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    app.add_typer(epoch_app, name="epoch")
