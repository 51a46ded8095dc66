"""The watchtower (`cairn audit --watch`): recompute every newly proposed root during its challenge window and
revoke it with a guardian key if it does not verify.

Each look reads the distributor's pending root (`pendingRoot()`); a root not seen before is audited from
the chain alone (`audit_chain` for its epoch: the same checks as `cairn audit --epoch N`). On a failure the
watchtower logs an `ALERT` line, counts it (`cairn_audit_mismatches_total`, Prometheus, on
`--metrics-port`), and, with a guardian key and before `validAt`, sends `revokeRoot()`. A mismatch it could
not revoke (no key, too late, the transaction failed) ends the process with exit status 3, so that a
supervisor restarts it and pages a human.

Why the watchtower has no Cairn database: it guards against a wrong root, and the likeliest cause of a wrong
root is the Cairn side itself (a tampered or corrupt mirror database, a compromised publisher host). A
guardian that needed that database to act could be silenced by the failure it exists to catch (a database
that is down, locked, or rewritten). So it reads only the chain and content-addressed files, and sends its
one transaction through the outbox (`backend.outbox`, signed and stored before broadcast) on a database of
its own: `--outbox-db` (a SQLite file, so a crash between signing and recording cannot send twice), or a
private in-memory one (`backend.outbox.memory_engine`): a revocation is idempotent on chain (a second
`revokeRoot` reverts with `RewardDistributorNoPendingRoot`), so losing the in-memory record risks nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from sqlalchemy import Engine
from web3 import Web3

from backend.audit.artifacts import Artifacts
from backend.audit.epochs import EpochVerdict, audit_chain
from backend.outbox import CONFIRMED, Outbox, memory_engine
from cairn.core.deployment import Deployment
from cairn.core.errors import CairnError

log = logging.getLogger("cairn.audit.watch")

EXIT_UNREVOKED = 3  # a root that does not verify is still pending (or was accepted): a human must act


class WatchMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.checked = Counter(
            "cairn_audit_roots_checked_total", "Proposed roots audited", registry=self.registry
        )
        self.mismatches = Counter(
            "cairn_audit_mismatches_total", "Proposed roots that did not verify", registry=self.registry
        )
        self.revocations = Counter(
            "cairn_audit_revocations_total", "Roots the watchtower revoked", registry=self.registry
        )
        self.last_check = Gauge(
            "cairn_audit_last_check_timestamp_seconds", "Unix time of the last look", registry=self.registry
        )
        self.ok = Gauge("cairn_audit_ok", "1 while every proposed root verified", registry=self.registry)
        self.ok.set(1)

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)


@dataclass
class Finding:
    epoch: int
    root: str
    valid_at: int
    verdict: EpochVerdict
    revoked_tx: str | None = None
    problems: list[str] = field(default_factory=list)


def refutations(v: EpochVerdict) -> list[str]:
    """The problems that prove the root wrong (a file the auditor could not fetch proves nothing)."""
    return [p for p in v.problems if " not found in " not in p]


class Watchtower:
    def __init__(
        self,
        w3: Web3,
        dep: Deployment,
        *,
        artifacts: Artifacts,
        guardian_key: str | None = None,
        outbox_engine: Engine | None = None,
        metrics: WatchMetrics | None = None,
    ) -> None:
        self.w3, self.dep, self.artifacts = w3, dep, artifacts
        self.dist = dep.contract(w3, "RewardDistributor")
        self.metrics = metrics or WatchMetrics()
        self.outbox = None
        if guardian_key:
            self.outbox = Outbox(
                outbox_engine if outbox_engine is not None else memory_engine(), w3, guardian_key
            )
        self.seen: set[tuple[int, str, int]] = set()
        self.findings: list[Finding] = []
        self.unrevoked: list[Finding] = []

    def look(self) -> Finding | None:
        """One look: audit the pending root if it is new; revoke it if it does not verify."""
        root_b, epoch, valid_at = self.dist.functions.pendingRoot().call()
        self.metrics.last_check.set(time.time())
        if int(valid_at) == 0:
            return None
        root = "0x" + bytes(root_b).hex()
        key = (int(epoch), root, int(valid_at))
        if key in self.seen:
            return None
        self.seen.add(key)
        report = audit_chain(self.w3, self.dep, epochs=[int(epoch)], artifacts=self.artifacts)
        self.metrics.checked.inc()
        v = report.epochs[0]
        if v.root != root:  # proposed after our look at the events: next look
            self.seen.discard(key)
            return None
        wrong = refutations(v)
        if not wrong:
            log.info("epoch %d: pending root %s verifies (recomputed from the chain)", epoch, root)
            return None
        finding = Finding(int(epoch), root, int(valid_at), v, problems=wrong)
        self.findings.append(finding)
        self.metrics.mismatches.inc()
        self.metrics.ok.set(0)
        for p in wrong:
            log.error("ALERT epoch %d root %s: %s", epoch, root, p)
        self._revoke(finding)
        return finding

    def _revoke(self, f: Finding) -> None:
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        if self.outbox is None:
            log.error(
                "ALERT epoch %d: no guardian key: root %s stays pending until %d", f.epoch, f.root, f.valid_at
            )
            self.unrevoked.append(f)
            return
        if now >= f.valid_at:
            log.error("ALERT epoch %d: too late to revoke root %s (valid at %d)", f.epoch, f.root, f.valid_at)
            self.unrevoked.append(f)
            return
        key = f"revoke:{self.dep.chain_id}:{self.dist.address.lower()}:{f.epoch}:{f.root}:{f.valid_at}"
        try:
            self.outbox.enqueue(key, to=self.dist.address, data=self.dist.encode_abi("revokeRoot", args=[]))
            row = self.outbox.wait(key, timeout=120)
        except CairnError as exc:
            log.error("ALERT epoch %d: revoking root %s failed: %s", f.epoch, f.root, exc)
            self.unrevoked.append(f)
            return
        if row.status != CONFIRMED:
            log.error(
                "ALERT epoch %d: revokeRoot tx %s did not confirm (%s)", f.epoch, row.tx_hash, row.status
            )
            self.unrevoked.append(f)
            return
        f.revoked_tx = row.mined_hash
        self.metrics.revocations.inc()
        log.warning("epoch %d: revoked root %s (tx %s)", f.epoch, f.root, row.mined_hash)


def run_watch(
    tower: Watchtower,
    *,
    interval: float,
    once: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Look every `interval` seconds; returns the exit status (0, or EXIT_UNREVOKED)."""
    while True:
        try:
            tower.look()
        except CairnError as exc:
            log.error("look failed: %s", exc)
        if tower.unrevoked:
            return EXIT_UNREVOKED
        if once or should_stop():
            return 0
        time.sleep(interval)


def outbox_engine(path: Path | None) -> Engine | None:
    """The watchtower's own outbox database (SQLite file at `path`, migrated), or None (in memory)."""
    if path is None:
        return None
    from backend import migrations
    from cairn.core.db import make_engine

    engine = make_engine(f"sqlite:///{path}")
    migrations.upgrade(engine)
    return engine
