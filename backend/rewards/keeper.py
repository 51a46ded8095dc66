"""The epoch keeper (`cairn epoch keeper`): mints each epoch's emission into the reward pool as it starts.

`RewardDistributor.fundEmission(e)` must run during epoch e: emission funded after the epoch's end block is
outside that epoch's allocation (the pool of e is the `EpochFunded(epoch=e)` events up to its end block).
The keeper polls the chain's clock and calls `EpochLifecycle.fund` once per epoch, through the outbox, so a
crash or a restart never sends twice and a second keeper (or a manual `cairn epoch fund`) sends nothing.
`cairn dev` and `cairn up` run it as a supervised child next to the indexer and the API
(`CAIRN_KEEPER_ENABLED=false` leaves it out).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.rewards.lifecycle import EpochLifecycle
from cairn.core.errors import CairnError, ConfigError, EpochEndedError, EpochNotReadyError

log = logging.getLogger("cairn.keeper")


class KeeperSettings(BaseSettings):
    """`CAIRN_KEEPER_*` settings."""

    model_config = SettingsConfigDict(
        env_prefix="CAIRN_KEEPER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    enabled: bool = Field(default=True, description="Run the keeper in `cairn dev` / `cairn up`.")
    interval: float = Field(default=5.0, gt=0, le=3600, description="Seconds between two looks at the clock.")


def keep(
    eng: EpochLifecycle,
    *,
    interval: float,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Fund every epoch once, as soon as it starts, until `stop()` says so (or the process is stopped).

    Transient failures (RPC down, a reverted try) are logged and retried on the next tick; a configuration
    error (no publisher key on a real chain, wrong deployment) ends the loop with that error."""
    funded: int | None = None
    while not stop():
        try:
            epoch = eng.current_epoch()
            if epoch != funded:
                try:
                    res = eng.fund(epoch)
                except EpochEndedError as exc:  # the clock moved on between two looks: too late for it
                    log.warning("%s", exc.message)
                else:
                    what = "funded" if res.status == "sent" else "already funded"
                    tx = f" (tx {res.tx.mined_hash})" if res.status == "sent" and res.tx is not None else ""
                    log.info(
                        "epoch %d: emission %s, %d wei minted in the epoch%s", epoch, what, res.minted, tx
                    )
                funded = epoch
        except EpochNotReadyError as exc:  # before genesis
            log.info("%s", exc.message)
        except ConfigError:
            raise
        except CairnError as exc:
            log.warning("%s (retrying in %.0f s)", exc.message, interval)
        except Exception as exc:  # RPC or database hiccup: the next tick retries; the outbox keeps it exact
            log.warning("%s: %s (retrying in %.0f s)", type(exc).__name__, exc, interval)
        time.sleep(interval)  # pacing between looks at the chain's clock, not a synchronisation
