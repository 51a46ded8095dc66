"""`build_gateway`: the API's x402 gateway on its chain, database and settings (`app.state.x402`)."""

from __future__ import annotations

from sqlalchemy import Engine

from backend.api.chain import Chain
from backend.api.settings import ApiSettings
from backend.api.x402.evm import ChainView, TokenDomain
from backend.api.x402.exact import ExactConfig, ExactScheme
from backend.api.x402.gateway import Gateway


def build_gateway(cfg: ApiSettings, chain: Chain, engine: Engine) -> Gateway:
    """A gateway offering `exact` (RewardToken, paid to the PaymentRouter); other schemes `register` on it."""
    token = chain.contract("RewardToken")
    domain = TokenDomain.load(chain.w3, token)
    exact = ExactScheme(
        engine,
        domain,
        ChainView(chain.rpc_url, str(token.address), state_ttl=cfg.api_x402_state_ttl_s),
        ExactConfig(
            router=str(chain.contract("PaymentRouter").address),
            max_timeout_s=cfg.api_x402_max_timeout_s,
            settle_window_s=cfg.api_x402_settle_window_s,
            clock_skew_s=cfg.api_x402_clock_skew_s,
            exposure_limit=cfg.api_x402_exposure_limit,
        ),
    )
    return Gateway([exact])
