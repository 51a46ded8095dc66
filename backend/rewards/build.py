"""`build_lifecycle`: the one way to build an `EpochLifecycle` from settings, used by `cairn epoch ...` and by
the API's operator endpoints, so both run the same steps with the same key, finality and policy."""

from __future__ import annotations

from sqlalchemy import Engine
from web3 import Web3

from backend.rewards.lifecycle import EpochLifecycle
from cairn.core.deployment import Deployment
from cairn.core.errors import InvalidInputError
from cairn.core.policy import Policy
from cairn.core.settings import LOCAL_CHAIN_ID, Settings


def build_lifecycle(
    settings: Settings,
    *,
    engine: Engine,
    w3: Web3,
    deployment: Deployment,
    policy: Policy,
    source: str = "db",
    confirmations: int | None = None,
    migrate: bool = True,
) -> EpochLifecycle:
    if source not in ("db", "chain"):
        raise InvalidInputError(f"--source must be db or chain, not {source!r}")
    return EpochLifecycle(
        engine=engine,
        w3=w3,
        deployment=deployment,
        policy=policy,
        data_dir=settings.data_dir,
        publisher_key=settings.signing_key("publisher", deployment.chain_id),
        confirmations=settings.confirmations if confirmations is None else confirmations,
        # CAIRN_FINALITY; its `auto` is the configured depth when --confirmations is given, and on the local
        # dev chain, which has no real finality (anvil's `finalized` tag just lags 64 blocks behind the head)
        finality=(
            "confirmations"
            if settings.finality == "auto"
            and (confirmations is not None or deployment.chain_id == LOCAL_CHAIN_ID)
            else settings.finality
        ),
        source=source,
        migrate=migrate,
    )
