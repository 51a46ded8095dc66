"""`build_gateway`: the API's x402 gateway on its chain, database and settings (`app.state.x402`): the
`exact` scheme and (`api_x402_channels`) the `batch-settlement` channel scheme, whose receiver authorizer is
the settler key's address (it signs the claims). `build_claimer`: the channel claimer on the settler key's
outbox."""

from __future__ import annotations

from eth_account import Account
from sqlalchemy import Engine

from backend.api.chain import Chain
from backend.api.settings import ApiSettings
from backend.api.x402.channel import BatchSettlementScheme
from backend.api.x402.claimer import ChannelClaimer
from backend.api.x402.evm import ChainView, TokenDomain
from backend.api.x402.exact import ExactConfig, ExactScheme
from backend.api.x402.gateway import Gateway
from backend.outbox import Outbox


def build_gateway(cfg: ApiSettings, chain: Chain, engine: Engine) -> Gateway:
    """A gateway offering `exact` (RewardToken, paid to the PaymentRouter) and, unless disabled, channels."""
    token = chain.contract("RewardToken")
    domain = TokenDomain.load(chain.w3, token)
    router = str(chain.contract("PaymentRouter").address)
    exact = ExactScheme(
        engine,
        domain,
        ChainView(chain.rpc_url, str(token.address), state_ttl=cfg.api_x402_state_ttl_s),
        ExactConfig(
            router=router,
            max_timeout_s=cfg.api_x402_max_timeout_s,
            settle_window_s=cfg.api_x402_settle_window_s,
            clock_skew_s=cfg.api_x402_clock_skew_s,
            exposure_limit=cfg.api_x402_exposure_limit,
        ),
    )
    exact.chain.chain_time()  # one read at start: the chain clock's lead over ours is known for the first 402
    gateway = Gateway([exact])
    if cfg.api_x402_channels:
        gateway.register(
            BatchSettlementScheme(
                engine=engine,
                chain_id=chain.chain_id,
                router=router,
                token=str(token.address),
                receiver_authorizer=Account.from_key(cfg.signing_key("settler", chain.chain_id)).address,
                token_name=domain.name,
                token_version=domain.version,
            )
        )
    return gateway


def build_claimer(cfg: ApiSettings, chain: Chain, engine: Engine) -> ChannelClaimer:
    """The channel claimer of the settings `cfg`: claims through the settler key's outbox (SETTLER_ROLE)."""
    return ChannelClaimer(
        engine=engine,
        outbox=Outbox(engine, chain.w3, cfg.signing_key("settler", chain.chain_id)),
        router=chain.contract("PaymentRouter"),
        min_requests=cfg.api_channel_claim_min_requests,
        max_wait_s=cfg.api_channel_claim_max_wait_s,
        serve_timeout_s=cfg.api_x402_serve_timeout_s,
    )
