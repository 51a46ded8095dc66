"""What every epoch step stands on: the database, the chain, the deployment's contracts, the outbox and the
`reward_epoch` rows of this chain (read and written through `backend.rewards.epochs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from web3 import Web3

from backend.models import RewardEpoch
from backend.outbox import Outbox
from backend.rewards import epochs
from cairn.core.deployment import Deployment
from cairn.core.errors import InvalidInputError, NotFoundError
from cairn.core.finality import check_mode
from cairn.core.policy import Policy

Roots = tuple[tuple[bytes, int, int], tuple[bytes, int, int]]


class EpochContext:
    def __init__(
        self,
        *,
        engine: Engine,
        w3: Web3,
        deployment: Deployment,
        policy: Policy,
        data_dir: Path,
        publisher_key: str | None = None,
        confirmations: int = 12,
        finality: str = "auto",
        source: str = "db",
        migrate: bool = True,
    ) -> None:
        self.engine = engine
        self.w3 = w3
        self.deployment = deployment
        self.policy = policy
        self.data_dir = Path(data_dir)
        self.confirmations = confirmations
        self.finality = check_mode(finality)
        self.source = source
        self.chain_id = deployment.chain_id
        self.distributor = self._contract("RewardDistributor")
        self.publisher_key = publisher_key
        self._token_contract: Any = None
        if migrate:
            from backend import migrations  # alembic is slow to import: only when needed

            migrations.upgrade(engine)

    # --- rows -------------------------------------------------------------------------------------------
    def row(self, epoch: int) -> RewardEpoch | None:
        with self.engine.connect() as conn:
            return epochs.get(conn, chain_id=self.chain_id, epoch=epoch)

    def rows(self) -> list[RewardEpoch]:
        with self.engine.connect() as conn:
            return epochs.list_rows(conn, chain_id=self.chain_id)

    def require_row(self, epoch: int) -> RewardEpoch:
        row = self.row(epoch)
        if row is None:
            raise NotFoundError(f"epoch {epoch} is not known here: run `cairn epoch compute {epoch}`")
        return row

    def _update(self, epoch: int, **fields: Any) -> RewardEpoch:
        with self.engine.begin() as conn:
            epochs.update_row(conn, chain_id=self.chain_id, epoch=epoch, **fields)
            row = epochs.get(conn, chain_id=self.chain_id, epoch=epoch)
        assert row is not None
        return row

    # --- chain ------------------------------------------------------------------------------------------
    def _contract(self, name: str) -> Any:
        """The deployment's contract `name` on this lifecycle's chain."""
        return self.deployment.contract(self.w3, name)

    def _token(self) -> Any:
        if self._token_contract is None:
            self._token_contract = self._contract("RewardToken")
        return self._token_contract

    def _now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def current_epoch(self) -> int:
        """The epoch of the chain's latest block (0 before genesis)."""
        return self.deployment.epoch.epoch_at(self._now())

    def _chain_roots(self) -> Roots:
        """(current root, its epoch, valid at), (pending root, its epoch, valid at) on the distributor."""
        cur = self.distributor.functions.root().call()
        pend = self.distributor.functions.pendingRoot().call()
        return (bytes(cur[0]), int(cur[1]), int(cur[2])), (bytes(pend[0]), int(pend[1]), int(pend[2]))

    # --- sending ----------------------------------------------------------------------------------------
    def _outbox(self) -> Outbox:
        if not self.publisher_key:
            raise InvalidInputError("no publisher key: set CAIRN_PUBLISHER_KEY")
        return Outbox(self.engine, self.w3, self.publisher_key)

    def _key(self, what: str, epoch: int) -> str:
        return f"{what}:{self.chain_id}:{self.distributor.address.lower()}:{epoch}"
