"""The x402 v2 `exact` scheme on EVM, EIP-3009 flavour, serve first
(github.com/coinbase/x402/specs/schemes/exact/scheme_exact_evm.md).

Requirement: `{scheme: "exact", network: "eip155:<chainId>", asset: RewardToken, amount, payTo: PaymentRouter,
maxTimeoutSeconds, extra: {name, version}}`, the name and version read from the token's own EIP-712 domain.
The official clients sign validBefore = their own clock + maxTimeoutSeconds, while the token (and so this
gateway) judges it against the chain's clock. On a chain whose clock runs ahead of wall time (a local chain
moved past an epoch's end, as `cairn demo` does) `maxTimeoutSeconds` is the configured timeout plus the
lead, rounded up to whole hours (`LEAD_STEP_S`), once the lead is more than the timeout leaves to settle;
the lead is the one of the chain clock last read (at start and by every paid request's verification: no RPC
for a 402).
A payment signed against an offer made before the clock jumped is refused with
`invalid_exact_evm_payload_authorization_valid_before`, and that 402 carries the corrected offer.

The payload the official clients send: `{signature, authorization: {from, to, value, validAfter, validBefore,
nonce}}`, a TransferWithAuthorization to `payTo`. Verified off-chain, the way the token will check it at
settlement: the signature (ECDSA, low-s; else EIP-1271 when the payer has code, the token's order),
`to == payTo`, `value >= amount`, the validity window against the chain's clock (the latest block's timestamp,
with `clock_skew` of tolerance for validAfter and `settle_window` seconds left to settle), the nonce unused at
the token, and the payer's balance covering this payment plus what it already owes unsettled. The chain state
is one JSON-RPC batch, cached for a few seconds per payer (`ChainView.cached_state`: no RPC on the hot
path). The payment is then recorded `accepted` (exposure checked under the payer's row lock) before the
request is served, marked `served` once the route has produced its whole response (`served`, called by the
gateway's middleware) or `void` if it failed; the settler (backend.api.x402.settle) settles only served
payments, later, through the outbox.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from backend.api.x402 import store
from backend.api.x402.evm import ChainView, PayerState, TokenDomain, recover
from backend.api.x402.scheme import Accepted, Charge, PaymentRejectedError

NAME = "exact"
LEAD_STEP_S = 3600  # a chain clock ahead of this machine's is added to maxTimeoutSeconds in whole hours


@dataclass(frozen=True)
class ExactConfig:
    router: str  # payTo, checksummed
    max_timeout_s: int = 600
    settle_window_s: int = 60
    clock_skew_s: int = 5
    exposure_limit: int = 10 * 10**18


@dataclass(frozen=True)
class Authorization:
    payer: str  # 0x-lowercase
    to: str
    value: int
    valid_after: int
    valid_before: int
    nonce: bytes
    signature: bytes


def _reject(reason: str, message: str) -> PaymentRejectedError:
    return PaymentRejectedError(reason, message)


def _hex_bytes(value: Any, field: str, size: int | None = None) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise _reject("invalid_exact_evm_payload", f"payload {field} must be 0x-prefixed hex")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise _reject("invalid_exact_evm_payload", f"payload {field} is not hex") from None
    if size is not None and len(raw) != size:
        raise _reject("invalid_exact_evm_payload", f"payload {field} must be {size} bytes")
    return raw


def _uint(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _reject("invalid_exact_evm_payload", f"payload authorization.{field} must be a decimal string")
    try:
        n = int(value)
    except ValueError:
        raise _reject(
            "invalid_exact_evm_payload", f"payload authorization.{field} is not an integer"
        ) from None
    if not 0 <= n < 2**256:
        raise _reject("invalid_exact_evm_payload", f"payload authorization.{field} is out of range")
    return n


def parse_payload(payload: dict[str, Any]) -> Authorization:
    """The EIP-3009 authorization of an x402 exact EVM payload (`PaymentPayload.payload`)."""
    auth = payload.get("authorization")
    if not isinstance(auth, dict):
        raise _reject(
            "invalid_exact_evm_payload", "payload.authorization is missing (only EIP-3009 is accepted)"
        )
    return Authorization(
        payer="0x" + _hex_bytes(auth.get("from"), "authorization.from", 20).hex(),
        to="0x" + _hex_bytes(auth.get("to"), "authorization.to", 20).hex(),
        value=_uint(auth.get("value"), "value"),
        valid_after=_uint(auth.get("validAfter"), "validAfter"),
        valid_before=_uint(auth.get("validBefore"), "validBefore"),
        nonce=_hex_bytes(auth.get("nonce"), "authorization.nonce", 32),
        signature=_hex_bytes(payload.get("signature"), "signature"),
    )


class ExactScheme:
    """x402 `exact` on the RewardToken, paid to the PaymentRouter, settled later in batches."""

    name = NAME

    def __init__(self, engine: Engine, domain: TokenDomain, chain: ChainView, config: ExactConfig) -> None:
        self.engine = engine
        self.domain = domain
        self.chain = chain
        self.config = config
        self.network = f"eip155:{domain.chain_id}"

    def max_timeout(self) -> int:
        """`maxTimeoutSeconds`: the configured timeout, plus the chain clock's lead (as last read) rounded up
        to whole LEAD_STEP_S when the timeout alone would leave less than the settle window and a minute."""
        slack = max(0, self.config.max_timeout_s - self.config.settle_window_s - 60)
        lead = self.chain.clock_lead()
        if lead <= slack:
            return self.config.max_timeout_s
        return self.config.max_timeout_s + -(-(lead - slack) // LEAD_STEP_S) * LEAD_STEP_S

    def requirement(self, charge: Charge) -> dict[str, Any]:
        return {
            "scheme": NAME,
            "network": self.network,
            "asset": self.domain.token,
            "amount": str(charge.amount),
            "payTo": self.config.router,
            "maxTimeoutSeconds": self.max_timeout(),
            "extra": {"name": self.domain.name, "version": self.domain.version},
        }

    def verify(self, payload: dict[str, Any], charge: Charge) -> tuple[Authorization, PayerState]:
        """Every off-chain check of the authorization (no database): the verification a request pays for."""
        a = parse_payload(payload)
        if a.to != self.config.router.lower():
            raise _reject(
                "invalid_exact_evm_payload_recipient_mismatch",
                f"authorization.to {a.to} is not payTo {self.config.router}",
            )
        if a.value < charge.amount:
            raise _reject(
                "invalid_exact_evm_payload_authorization_value_mismatch",
                f"authorization.value {a.value} is below the price {charge.amount}",
            )
        if len(a.signature) != 65:
            raise _reject(
                "invalid_exact_evm_payload_signature",
                "the signature must be 65 bytes (r, s, v): the router settles with "
                "transferWithAuthorization(v, r, s)",
            )
        digest = self.domain.transfer_digest(a.payer, a.to, a.value, a.valid_after, a.valid_before, a.nonce)
        # as the token checks (v, r, s): ECDSA first (local, no RPC), EIP-1271 only when that fails and the
        # payer has code; the payer's chain state is read only once the signature is the payer's, so a
        # forged payload naming any address costs no RPC unless ECDSA fails (then one cached eth_getCode)
        ok = recover(digest, a.signature) == a.payer
        if not ok and self.chain.has_code(a.payer):
            ok = self.chain.is_valid_1271(a.payer, digest, a.signature)
        if not ok:
            raise _reject(
                "invalid_exact_evm_payload_signature",
                f"the signature is not {a.payer}'s TransferWithAuthorization for the token's domain "
                f"({self.domain.name!r}, version {self.domain.version!r}, chain {self.domain.chain_id})",
            )
        state = self.chain.cached_state(a.payer, a.nonce)
        now = state.chain_time
        if a.valid_after > now + self.config.clock_skew_s:
            raise _reject(
                "invalid_exact_evm_payload_authorization_valid_after",
                f"authorization.validAfter {a.valid_after} is in the future (chain time {now})",
            )
        if a.valid_before < now + self.config.settle_window_s:
            raise _reject(
                "invalid_exact_evm_payload_authorization_valid_before",
                f"authorization.validBefore {a.valid_before} leaves less than "
                f"{self.config.settle_window_s} s to settle at chain time {now} "
                f"(this machine's clock: {int(time.time())})",
            )
        if state.nonce_used:
            raise _reject(
                "invalid_exact_evm_nonce_already_used",
                f"authorization nonce 0x{a.nonce.hex()} of {a.payer} is already used or cancelled at the "
                "token",
            )
        if state.balance < a.value:
            raise _reject(
                "invalid_exact_evm_insufficient_balance",
                f"payer {a.payer} holds {state.balance} atomic units, less than {a.value}",
            )
        return a, state

    def accept(self, payload: dict[str, Any], requirement: dict[str, Any], charge: Charge) -> Accepted:
        a, state = self.verify(payload, charge)
        pid = store.record(
            self.engine,
            chain_id=self.domain.chain_id,
            scheme=NAME,
            payer=a.payer,
            nonce="0x" + a.nonce.hex(),
            amount=a.value,
            model_id=charge.model_id,
            resource=charge.resource,
            authorization={
                "validAfter": str(a.valid_after),
                "validBefore": str(a.valid_before),
                "signature": "0x" + a.signature.hex(),
            },
            balance=state.balance,
            limit=self.config.exposure_limit,
        )
        payer = _checksum(a.payer)
        return Accepted(NAME, payer, a.value, {"payment_id": pid, "nonce": "0x" + a.nonce.hex()})

    def response(self, accepted: Accepted) -> dict[str, Any]:
        # Served first, settled later: no transaction yet. `extra` says where to follow the settlement.
        pid = accepted.extra["payment_id"]
        return {
            "success": True,
            "transaction": "",
            "network": self.network,
            "payer": accepted.payer,
            "amount": str(accepted.amount),
            "extra": {"settlement": "pending", "paymentId": pid, "status": f"/v1/payments/{pid}"},
        }

    def served(self, accepted: Accepted) -> None:
        """The route produced its whole response: the payment may now be batched for settlement (False from
        the store when it was voided first, e.g. by the settler's serve timeout: then it is never charged)."""
        store.served(self.engine, accepted.extra["payment_id"])

    def void(self, accepted: Accepted, reason: str) -> dict[str, Any] | None:
        pid = accepted.extra["payment_id"]
        if not store.void(self.engine, pid, reason):
            return None  # already served (and maybe batched): it settles
        return {
            "success": False,
            "errorReason": reason,
            "errorMessage": "the paid request failed: this payment is void and will not be settled",
            "transaction": "",
            "network": self.network,
            "payer": accepted.payer,
            "amount": "0",
            "extra": {"settlement": "void", "paymentId": pid, "status": f"/v1/payments/{pid}"},
        }


def _checksum(address: str) -> str:
    from eth_utils.address import to_checksum_address

    return str(to_checksum_address(address))
