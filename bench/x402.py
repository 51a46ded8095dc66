"""Signed inputs for the PaymentRouter: x402 batch-settlement channels (EIP-712 ChannelConfig and Voucher)
and x402 `exact` payments (EIP-3009 TransferWithAuthorization, what the official x402 clients sign)."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_utils.crypto import keccak

from cairn.core import eip712

CHANNEL_DOMAIN_NAME = "x402 Batch Settlement"
CHANNEL_DOMAIN_VERSION = "1"
CHANNEL_CONFIG_FIELDS = [
    {"name": "payer", "type": "address"},
    {"name": "payerAuthorizer", "type": "address"},
    {"name": "receiver", "type": "address"},
    {"name": "receiverAuthorizer", "type": "address"},
    {"name": "token", "type": "address"},
    {"name": "withdrawDelay", "type": "uint40"},
    {"name": "salt", "type": "bytes32"},
]
VOUCHER_FIELDS = [{"name": "channelId", "type": "bytes32"}, {"name": "maxClaimableAmount", "type": "uint128"}]


def channel_domain(chain_id: int, router: str) -> dict[str, Any]:
    return {
        "name": CHANNEL_DOMAIN_NAME,
        "version": CHANNEL_DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": router,
    }


def channel_config(
    payer: str, payer_authorizer: str, router: str, gateway: str, token: str
) -> dict[str, Any]:
    return {
        "payer": payer,
        "payerAuthorizer": payer_authorizer,
        "receiver": router,
        "receiverAuthorizer": gateway,
        "token": token,
        "withdrawDelay": 900,
        "salt": b"\x00" * 32,
    }


def config_tuple(cfg: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(cfg[f["name"]] for f in CHANNEL_CONFIG_FIELDS)


def channel_id(chain_id: int, router: str, cfg: dict[str, Any]) -> bytes:
    """x402 channel id: the EIP-712 hash of the ChannelConfig under the router's domain."""
    typed = {
        "types": {"EIP712Domain": eip712.DOMAIN_FIELDS, "ChannelConfig": CHANNEL_CONFIG_FIELDS},
        "primaryType": "ChannelConfig",
        "domain": channel_domain(chain_id, router),
        "message": cfg,
    }
    return eip712.digest(typed)


def voucher_typed_data(chain_id: int, router: str, cid: bytes, max_claimable: int) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": eip712.DOMAIN_FIELDS, "Voucher": VOUCHER_FIELDS},
        "primaryType": "Voucher",
        "domain": channel_domain(chain_id, router),
        "message": {"channelId": cid, "maxClaimableAmount": max_claimable},
    }


def split_sig(sig: bytes) -> tuple[int, bytes, bytes]:
    return sig[64], sig[:32], sig[32:64]


def exact_payment(
    *,
    key: str,
    token_name: str,
    chain_id: int,
    token: str,
    router: str,
    value: int,
    nonce: bytes,
    now: int,
    model_id: bytes = b"",
    valid_before: int | None = None,
) -> tuple[Any, ...]:
    """A signed EIP-3009 TransferWithAuthorization to the router, as the router's `ExactPayment` tuple (the
    model is an argument of settleExact/settleExactBatch; `model_id` is unused, kept for callers); valid until
    `valid_before` (default: an hour after `now`)."""
    payer = Account.from_key(key).address
    valid_after = 0
    valid_before = now + 3600 if valid_before is None else valid_before
    typed = eip712.transfer_authorization_typed_data(
        token_name=token_name,
        chain_id=chain_id,
        verifying_contract=token,
        from_=payer,
        to=router,
        value=value,
        valid_after=valid_after,
        valid_before=valid_before,
        nonce="0x" + nonce.hex(),
    )
    v, r, s = split_sig(eip712.sign_typed_data(key, typed))
    return (payer, value, valid_after, valid_before, nonce, v, r, s)


# --------------------------------------------------------------------------------------------- bench run()
VERIFY_SAMPLES = 300
BATCH = 100
PRICE = 10**16


def _verify_figures(d: Any, tmp: str) -> dict[str, float]:
    """`x402_verify_p50_ms`: the exact scheme's verification of one official-client payload (parse, EIP-712
    digest, ECDSA recovery, the payer's chain state in one JSON-RPC batch, window and balance checks);
    `x402_accept_p50_ms`: that plus recording it (exposure under the payer's row lock) in SQLite. The payer's
    chain state is cached (`ChainView.cached_state`, the API's default 5 s); `x402_verify_uncached_p50_ms` is
    the same verification reading it every time (one JSON-RPC batch to the local anvil)."""
    import asyncio
    import statistics
    import time

    from x402 import x402Client
    from x402.mechanisms.evm.exact.register import register_exact_evm_client
    from x402.schemas import PaymentRequired

    from backend import migrations
    from backend.api.x402.evm import ChainView, TokenDomain
    from backend.api.x402.exact import ExactConfig, ExactScheme
    from backend.api.x402.gateway import Gateway
    from backend.api.x402.scheme import Charge
    from cairn.core.db import make_engine

    token, router = d.contract("RewardToken"), d.contract("PaymentRouter")
    engine = make_engine(f"sqlite:///{tmp}/bench-x402.db")
    migrations.upgrade(engine)
    scheme = ExactScheme(
        engine,
        TokenDomain.load(d.w3, token),
        ChainView(d.chain.url, str(token.address)),
        ExactConfig(router=str(router.address), exposure_limit=10**30),
    )
    charge = Charge(amount=PRICE, resource="http://bench/v1/chat/completions", model_id="0x" + "ab" * 32)
    required = PaymentRequired.model_validate(Gateway([scheme]).payment_required(charge))
    payer = Account.from_key(derived_key_for_bench(0))
    client = x402Client()
    register_exact_evm_client(client, payer, networks=f"eip155:{d.w3.eth.chain_id}")
    client.set_spend_controls(False)
    payloads = [
        asyncio.run(client.create_payment_payload(required)).model_dump(by_alias=True, exclude_none=True)
        for _ in range(VERIFY_SAMPLES + 20)
    ]
    uncached = ExactScheme(
        engine, scheme.domain, ChainView(d.chain.url, str(token.address), state_ttl=0), scheme.config
    )
    uncached_ms = []
    for i, p in enumerate(payloads[:120]):
        t0 = time.perf_counter()
        uncached.verify(p["payload"], charge)
        if i >= 20:
            uncached_ms.append((time.perf_counter() - t0) * 1000)
    verify_ms, accept_ms = [], []
    for i, p in enumerate(payloads):
        t0 = time.perf_counter()
        scheme.verify(p["payload"], charge)
        t1 = time.perf_counter()
        scheme.accept(p["payload"], p["accepted"], charge)
        t2 = time.perf_counter()
        if i >= 20:  # warm-up: connection, caches
            verify_ms.append((t1 - t0) * 1000)
            accept_ms.append((t2 - t1 + t1 - t0) * 1000)
    engine.dispose()
    return {
        "x402_verify_p50_ms": round(statistics.median(verify_ms), 3),
        "x402_accept_p50_ms": round(statistics.median(accept_ms), 3),
        "x402_verify_uncached_p50_ms": round(statistics.median(uncached_ms), 3),
    }


def derived_key_for_bench(i: int) -> str:
    from bench.gas_driver import derived_key

    return derived_key("x402-payer", i)


def _batch_gas(d: Any) -> dict[str, float]:
    """`gas_paid_request_exact_batched`: gasUsed / 100 of one settleExactBatch of 100
    TransferWithAuthorization payments from 100 distinct payers (each payer's first payment: its balance slot
    cold)."""
    from cairn.cli.devchain import mint_test_tokens

    token, router = d.contract("RewardToken"), d.contract("PaymentRouter")
    name = token.functions.name().call()
    keys = [derived_key_for_bench(100 + i) for i in range(BATCH)]
    for k in keys:
        mint_test_tokens(d.w3, d.deployment, Account.from_key(k).address, 10**17)
    now = d.now()
    rows = [
        exact_payment(
            key=k, token_name=name, chain_id=d.w3.eth.chain_id, token=token.address, router=router.address,
            value=PRICE, nonce=keccak(b"bench-batch" + i.to_bytes(4, "big")), now=now, model_id=b"\x01" * 32,
        )
        for i, k in enumerate(keys)
    ]  # fmt: skip
    from cairn.core.settings import ANVIL_DEV_KEYS

    settler = ANVIL_DEV_KEYS[1]
    d.send(
        settler, router.functions.settleExact(rows[0], b"\x01" * 32)
    )  # the pool's and fee recipient's slots warm
    last = exact_payment(
        key=keys[0], token_name=name, chain_id=d.w3.eth.chain_id, token=token.address, router=router.address,
        value=PRICE, nonce=keccak(b"bench-batch-last"), now=now, model_id=b"\x01" * 32,
    )  # fmt: skip
    gas = d.gas(settler, router.functions.settleExactBatch([*rows[1:], last], b"\x01" * 32))
    return {"gas_paid_request_exact_batched": round(gas / BATCH, 1)}


def run() -> dict[str, float]:
    import tempfile

    from bench.gas_driver import start
    from cairn.cli.devchain import mint_test_tokens, start_anvil

    with start_anvil() as chain, tempfile.TemporaryDirectory() as tmp:
        d = start(chain)
        mint_test_tokens(d.w3, d.deployment, Account.from_key(derived_key_for_bench(0)).address, 10**19)
        figures = _verify_figures(d, tmp)
        figures.update(_batch_gas(d))
    return figures
