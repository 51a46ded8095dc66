"""`cairn dev` (what `make run` runs) and `cairn up`: run the whole stack as supervised child processes.

`cairn dev` starts a local anvil (state persisted in `.cairn/dev/anvil-state.json`), deploys the contracts on
first start, then runs the indexer (`cairn index`) and the API (`cairn api`) on SQLite, and once the API
answers (and the demo, if any, has played) the epoch keeper (`cairn epoch keeper`). A second `cairn dev`
resumes the same chain and database when both are still consistent, and resets otherwise (or with
`--reset`); it says which. `cairn up` runs the indexer, the API and the keeper against an existing chain and
database.
Ctrl-C (SIGINT) or SIGTERM stops every child, the chain last so that its state is saved.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from rich.console import Console

from backend.api.app import run_migrations
from backend.rewards.keeper import KeeperSettings
from cairn.cli.demo import Demo, give_agent_test_tokens
from cairn.cli.deploy import deploy_all
from cairn.cli.devchain import Anvil, rpc_call, start_anvil
from cairn.cli.preflight import check_stack
from cairn.core.db import make_engine
from cairn.core.deployment import load_deployment
from cairn.core.errors import CairnError, ConfigError
from cairn.core.settings import LOCAL_CHAIN_ID, Settings

out = Console()
HEALTH_TIMEOUT_S = 120.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Supervisor:
    """Starts children in their own process groups and stops them all, in reverse order."""

    log_dir: Path
    env: dict[str, str]
    children: list[Child] = field(default_factory=list)
    chain: Anvil | None = None

    def spawn(self, name: str, args: list[str]) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        handle = open(log, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        proc = subprocess.Popen(
            [sys.executable, "-m", "cairn.cli", *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def check_alive(self) -> None:
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                tail = (
                    child.log.read_text(errors="replace").strip().splitlines()[-1:]
                    if child.log.exists()
                    else []
                )
                last = tail[0] if tail else "(no output)"
                raise CairnError(f"{child.name} exited with code {code}: {last} (log: {child.log})")

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.process.poll() is None:
                try:
                    os.killpg(child.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 10
        for child in self.children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
        if self.chain is not None:
            self.chain.stop()


def wait_for_health(url: str, supervisor: Supervisor, timeout: float = HEALTH_TIMEOUT_S) -> dict[str, object]:
    """Poll GET /health until it answers with an indexed block, failing fast if a child dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        supervisor.check_alive()
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                body: dict[str, object] = json.loads(resp.read())
                # ready = the API answers and the indexer has committed its first block
                if resp.status == 200 and body.get("latest_indexed_block") is not None:
                    return body
        except OSError:
            pass
        time.sleep(0.25)
    raise CairnError(
        f"the API did not answer {url}/health within {timeout:.0f} s (logs: {supervisor.log_dir})"
    )


def _child_env(settings: Settings, rpc_url: str, database_url: str, deployment_file: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CAIRN_RPC_URLS": rpc_url,
            "CAIRN_DATABASE_URL": database_url,
            "CAIRN_DEPLOYMENT_FILE": str(deployment_file),
            "CAIRN_DATA_DIR": str(settings.data_dir),
            "CAIRN_CONFIRMATIONS": str(settings.confirmations),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def migrate_all(database_url: str, deployment_file: Path) -> None:
    """Bring every package's tables up to date once, before the indexer and API start side by side."""

    engine = make_engine(database_url)
    try:
        run_migrations(engine, load_deployment(deployment_file))
    finally:
        engine.dispose()


def _serve(
    supervisor: Supervisor,
    settings: Settings,
    *,
    on_ready: list[str],
    after_ready: Callable[[str], None] | None = None,
    watch: bool = False,
) -> None:
    """Migrate, start indexer and API, wait for health, print where to go, then supervise until a signal."""
    api_url = f"http://{settings.api_host}:{settings.api_port}"
    migrate_all(supervisor.env["CAIRN_DATABASE_URL"], Path(supervisor.env["CAIRN_DEPLOYMENT_FILE"]))
    supervisor.spawn("indexer", ["index"])
    supervisor.spawn("api", ["api", "--host", settings.api_host, "--port", str(settings.api_port)])
    health = wait_for_health(api_url, supervisor)
    out.print(
        f"[green]ready[/]: API {api_url}  (health: chain {health.get('chain_id')}, "
        f"indexed block {health.get('latest_indexed_block')}, database {health.get('database_kind')})"
    )
    out.print(f"  dashboard      {api_url}/")
    out.print(f"  API docs       {api_url}/docs")
    out.print(f"  health         curl {api_url}/health")
    out.print(f"  logs           {supervisor.log_dir}/")
    for line in on_ready:
        out.print(line)
    if after_ready is not None:
        after_ready(api_url)
    start_keeper(supervisor)
    if watch:
        start_watchtower(supervisor, settings)
    out.print("Ctrl-C stops everything.")
    while True:
        supervisor.check_alive()
        time.sleep(0.5)


def start_keeper(supervisor: Supervisor) -> None:
    """The epoch keeper (`cairn epoch keeper`: each epoch's emission funded as it starts), unless
    CAIRN_KEEPER_ENABLED=false. Started once the API answers and the demo (if any) has played."""

    if KeeperSettings().enabled:
        supervisor.spawn("keeper", ["epoch", "keeper"])
        out.print(f"  keeper         funds each epoch as it starts ({supervisor.log_dir}/keeper.log)")


GUARDIAN_KEY_ENV = "CAIRN_GUARDIAN_KEY"


def watchtower_args(settings: Settings, env: dict[str, str]) -> list[str]:
    """`cairn audit --watch` as the stack runs it: files from the data dir, metrics next to the API's port,
    and the guardian key from CAIRN_GUARDIAN_KEY when set (else it alerts and exits 3 without revoking)."""
    args = [
        "audit",
        "--watch",
        "--artifacts",
        str(settings.data_dir),
        "--metrics-port",
        str(settings.api_port + 1),
    ]
    if env.get(GUARDIAN_KEY_ENV, "").strip():
        args += ["--guardian-key-env", GUARDIAN_KEY_ENV]
    return args


def start_watchtower(supervisor: Supervisor, settings: Settings) -> None:
    """The watchtower (`cairn audit --watch`): every proposed root recomputed from the chain during its
    challenge window. If it exits (3: a wrong root it could not revoke), the supervisor stops the stack."""
    supervisor.spawn("watchtower", watchtower_args(settings, supervisor.env))
    out.print(f"  watchtower     audits every proposed root ({supervisor.log_dir}/watchtower.log)")


def _install_signal_handlers() -> None:
    def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise_interrupt)
    # A shell that starts us in the background sets SIGINT to "ignore"; Ctrl-C must always stop the stack.
    signal.signal(signal.SIGINT, _raise_interrupt)


def run_dev(settings: Settings, *, reset: bool, port: int, demo: bool) -> None:
    """The local stack on anvil and SQLite (what `make run` runs)."""

    _install_signal_handlers()
    dev_dir = settings.data_dir / "dev"
    state_file = dev_dir / "anvil-state.json"
    deployment_file = settings.deployment_file
    database_url = settings.database_url
    fresh = reset or not (state_file.exists() and deployment_file.exists())
    if fresh:
        why = "--reset given" if reset else "no previous chain state"
        out.print(f"[bold]reset[/]: starting a fresh local chain ({why})")
        _wipe(dev_dir, deployment_file, database_url)
    supervisor = Supervisor(log_dir=settings.data_dir / "logs", env={})
    supervisor.log_dir.mkdir(parents=True, exist_ok=True)
    try:
        chain = start_anvil(
            port, state_file=state_file, block_time=1, log_file=supervisor.log_dir / "anvil.log"
        )
        supervisor.chain = chain
        if not fresh and not _deployment_alive(chain, deployment_file):
            out.print("[bold]reset[/]: the saved chain no longer holds the deployed contracts; starting over")
            chain.stop()
            _wipe(dev_dir, deployment_file, database_url)
            fresh = True
            chain = start_anvil(
                port, state_file=state_file, block_time=1, log_file=supervisor.log_dir / "anvil.log"
            )
            supervisor.chain = chain
        if fresh:
            key = settings.signing_key("publisher", LOCAL_CHAIN_ID)
            deployment = deploy_all(chain.url, key, out=deployment_file)
            out.print(
                f"deployed {len(deployment.contracts)} contracts at block {deployment.start_block} "
                f"-> {deployment_file}"
            )
            from web3 import Web3

            # the demo agent's test tokens come from epoch 0's cap, before the keeper mints the rest
            give_agent_test_tokens(Web3(Web3.HTTPProvider(chain.url)), deployment)
        else:
            out.print(
                f"[bold]resume[/]: same chain ({state_file}), deployment ({deployment_file}) and database"
            )
        supervisor.env = _child_env(settings, chain.url, database_url, deployment_file)
        hints = [
            f"  chain          {chain.url} (anvil, chain id {LOCAL_CHAIN_ID})",
            f"  deployment     {deployment_file}",
        ]
        player = _play_demo(settings, deployment_file) if demo and fresh else None
        _serve(supervisor, settings, on_ready=hints, after_ready=player)
    except KeyboardInterrupt:
        out.print("stopping: indexer, API, keeper, then the chain (state saved for the next `make run`)")
    finally:
        supervisor.stop()


def _play_demo(settings: Settings, deployment_file: Path) -> Callable[[str], None]:
    def play(api_url: str) -> None:

        started = time.monotonic()
        try:
            Demo(settings, load_deployment(deployment_file), api_url).run()
        except CairnError as exc:
            out.print(f"[yellow]demo stopped[/]: {exc.message} (the stack keeps running)")
            return
        out.print(f"demo played in {time.monotonic() - started:.0f} s")

    return play


def run_up(settings: Settings, *, watch: bool = False) -> None:
    """Indexer and API against an existing chain and database (e.g. PostgreSQL)."""
    _install_signal_handlers()
    deployment, chain_id = check_stack(settings.rpc_urls, settings.database_url, settings.deployment_file)
    out.print(
        f"chain {chain_id} reachable, deployment {settings.deployment_file} matches, "
        f"database {settings.database_kind} reachable"
    )
    supervisor = Supervisor(log_dir=settings.data_dir / "logs", env={})
    supervisor.env = _child_env(
        settings, ",".join(settings.rpc_urls), settings.database_url, settings.deployment_file
    )
    try:
        _serve(
            supervisor,
            settings,
            on_ready=[f"  contracts      {len(deployment.contracts)} from {settings.deployment_file}"],
            watch=watch,
        )
    except KeyboardInterrupt:
        out.print("stopping: indexer, API and keeper")
    finally:
        supervisor.stop()


def _deployment_alive(chain: Anvil, deployment_file: Path) -> bool:
    try:
        data = json.loads(deployment_file.read_text())
        address = next(iter(data["contracts"].values()))["address"]
        code = rpc_call(chain.url, "eth_getCode", [address, "latest"])
    except (OSError, ValueError, KeyError, StopIteration, RuntimeError):
        return False
    return isinstance(code, str) and len(code) > 2


def _wipe(dev_dir: Path, deployment_file: Path, database_url: str) -> None:
    shutil.rmtree(dev_dir, ignore_errors=True)
    deployment_file.unlink(missing_ok=True)
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        raise ConfigError("`cairn dev` resets only a SQLite database; use `cairn up` for PostgreSQL")
