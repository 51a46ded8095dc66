"""`CairnChannelScheme`: x402 `batch-settlement` vouchers for Cairn's PaymentRouter, as a scheme plugin of the
official x402 client.

Why a plugin: the official SDK's `BatchSettlementEvmScheme` (x402 2.25,
`x402/mechanisms/evm/batch_settlement`) pins the EIP-712 `verifyingContract` of the channel id and of every
voucher to the canonical `x402BatchSettlement` address (`BATCH_SETTLEMENT_ADDRESS`, in
`get_batch_settlement_eip712_domain`), and its deposits to the SDK's ERC-3009 deposit collector. Cairn's
channels live in the PaymentRouter, so those channel ids and voucher signatures do not verify there
(tests/integration/test_channel_client.py shows both). This plugin signs the same x402 wire payload (`{"type":
"voucher", "channelConfig", "voucher"}`) under the router's domain (the requirement's `payTo`), and registers
into the official client unchanged:

    client = x402Client()
    client.register("eip155:<chainId>", CairnChannelScheme(account))
    async with x402HttpxClient(client) as http: ...

Deposits and withdrawals are on-chain calls of the agent (`deposit`, `initiate_withdraw`, `finalize_withdraw`
below); vouchers need no gas. The plugin keeps each channel's cumulative charged amount from the gateway's
PAYMENT-RESPONSE (`extra.channelState.chargedCumulativeAmount`, never above what it signed) and signs
`charged + price` for the next request. One channel serves one request at a time: give concurrent streams
their own channel (`salt`).

When the plugin's charged total is stale (its state was lost, or another client of the same channel paid
meanwhile) its voucher does not cover the channel's charged total plus the price: the gateway answers a
corrective 402 whose batch-settlement requirement carries the channel's state (`extra.channelState`, with
`chargedCumulativeAmount`) and the latest voucher it accepted (`extra.voucherState`: `signedMaxClaimable`,
`signature`), as the official SDK's server does. The plugin resyncs (`resync`) only to a charged total that a
voucher signed by its own key already covers, and the official client then pays again, once, with a fresh
voucher (its response hook returns a recovery). The fast path's counterpart is `resync_from_header`.
"""

from __future__ import annotations

import base64
import json
import threading
from types import SimpleNamespace
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from cairn.core.channel import (
    MIN_WITHDRAW_DELAY,
    SCHEME,
    ChannelConfig,
    ChannelDomain,
    VoucherFormatError,
    recover,
    sign_digest,
    signature_bytes,
)

ZERO_SALT = "0x" + "00" * 32
# 402 errors that mean "your voucher does not match the channel's charged total": the gateway's, and the
# official x402 SDK's batch-settlement server (its `ERR_CUMULATIVE_AMOUNT_MISMATCH`)
STALE_VOUCHER_ERRORS = frozenset({
    "invalid_batch_settlement_evm_voucher_amount",
    "invalid_batch_settlement_evm_cumulative_amount_mismatch",
})  # fmt: skip
_CONFIG_ABI = {
    "name": "config", "type": "tuple", "components": [
        {"name": "payer", "type": "address"}, {"name": "payerAuthorizer", "type": "address"},
        {"name": "receiver", "type": "address"}, {"name": "receiverAuthorizer", "type": "address"},
        {"name": "token", "type": "address"}, {"name": "withdrawDelay", "type": "uint40"},
        {"name": "salt", "type": "bytes32"},
    ],
}  # fmt: skip
ROUTER_ABI: list[dict[str, Any]] = [
    {"name": "deposit", "type": "function", "stateMutability": "nonpayable",
     "inputs": [_CONFIG_ABI, {"name": "amount", "type": "uint128"}],
     "outputs": [{"name": "", "type": "bytes32"}]},
    {"name": "initiateWithdraw", "type": "function", "stateMutability": "nonpayable",
     "inputs": [_CONFIG_ABI, {"name": "amount", "type": "uint128"}], "outputs": []},
    {"name": "finalizeWithdraw", "type": "function", "stateMutability": "nonpayable",
     "inputs": [_CONFIG_ABI], "outputs": []},
]  # fmt: skip
ERC20_APPROVE_ABI: list[dict[str, Any]] = [
    {"name": "approve", "type": "function", "stateMutability": "nonpayable",
     "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
]  # fmt: skip


def _get(requirements: Any, name: str, wire: str) -> Any:
    """A field of PaymentRequirements, as the SDK's model or as the x402 wire dict."""
    if isinstance(requirements, dict):
        return requirements.get(wire)
    return getattr(requirements, name)


def chain_id_of(network: str) -> int:
    if not network.startswith("eip155:"):
        raise ValueError(f"not an EVM network: {network!r}")
    return int(network.split(":", 1)[1])


class CairnChannelScheme:
    """x402 `SchemeNetworkClient` for `batch-settlement` on Cairn's PaymentRouter.

    `account`: the agent's key; it is both `payer` and `payerAuthorizer` of its channels (an EOA, so the
    gateway verifies vouchers locally). `salt`: picks the channel (one per concurrent stream).
    `charged`: known cumulative charged amounts by channel id (e.g. restored from disk)."""

    scheme = SCHEME

    def __init__(
        self, account: LocalAccount, *, salt: str = ZERO_SALT, charged: dict[str, int] | None = None
    ):
        self.account = account
        self._key = bytes(account.key)
        self.salt = salt.lower()
        self.charged: dict[str, int] = dict(charged or {})
        self._signed: dict[str, int] = {}  # channel id -> the largest ceiling signed so far
        self._lock = threading.Lock()
        self._channels: dict[tuple[Any, ...], tuple[ChannelDomain, ChannelConfig, str, dict[str, Any]]] = {}
        self.scheme_hooks = SimpleNamespace(on_payment_response=self._on_payment_response)

    # --- channel identity ---------------------------------------------------------------------------
    def channel_config(self, requirements: Any) -> ChannelConfig:
        extra = _get(requirements, "extra", "extra") or {}
        authorizer = extra.get("receiverAuthorizer")
        if not isinstance(authorizer, str):
            raise ValueError("batch-settlement requirements must name extra.receiverAuthorizer")
        delay = extra.get("withdrawDelay", MIN_WITHDRAW_DELAY)
        return ChannelConfig.from_wire({
            "payer": self.account.address, "payerAuthorizer": self.account.address,
            "receiver": _get(requirements, "pay_to", "payTo"), "receiverAuthorizer": authorizer,
            "token": _get(requirements, "asset", "asset"), "withdrawDelay": int(delay), "salt": self.salt,
        })  # fmt: skip

    def domain(self, requirements: Any) -> ChannelDomain:
        """The router's domain: `payTo` is the router (the channel's receiver and verifying contract)."""
        return ChannelDomain(chain_id_of(str(_get(requirements, "network", "network"))),
                             str(_get(requirements, "pay_to", "payTo")))  # fmt: skip

    def channel_id(self, requirements: Any) -> str:
        return self.domain(requirements).channel_id(self.channel_config(requirements))

    # --- x402 client interface ------------------------------------------------------------------------
    def _channel(self, requirements: Any) -> tuple[ChannelDomain, ChannelConfig, str, dict[str, Any]]:
        """(domain, config, channel id, wire config) for these requirements, computed once per channel."""
        extra = _get(requirements, "extra", "extra") or {}
        key = tuple(
            str(v) for v in (
                _get(requirements, "network", "network"), _get(requirements, "pay_to", "payTo"),
                _get(requirements, "asset", "asset"), extra.get("receiverAuthorizer"),
                extra.get("withdrawDelay"),
            )
        )  # fmt: skip
        found = self._channels.get(key)
        if found is None:
            config = self.channel_config(requirements)
            domain = self.domain(requirements)
            wire = config.to_wire()
            for k in ("payer", "payerAuthorizer", "receiver", "receiverAuthorizer", "token"):
                wire[k] = to_checksum_address(wire[k])
            found = self._channels[key] = (domain, config, domain.channel_id(config), wire)
        return found

    def create_payment_payload(
        self, requirements: Any, extensions: dict[str, Any] | None = None, context: Any = None
    ) -> dict[str, Any]:
        """The inner payload: a voucher for the channel's charged total plus this request's amount."""
        domain, _, cid, wire = self._channel(requirements)
        amount = int(str(_get(requirements, "amount", "amount")))
        with self._lock:
            ceiling = self.charged.get(cid, 0) + amount
            self._signed[cid] = max(self._signed.get(cid, 0), ceiling)
        signature = sign_digest(self._key, domain.voucher_digest(cid, ceiling))
        return {
            "type": "voucher",
            "channelConfig": dict(wire),
            "voucher": {"channelId": cid, "maxClaimableAmount": str(ceiling), "signature": signature},
        }

    def _on_payment_response(self, ctx: Any) -> Any:
        settle = getattr(ctx, "settle_response", None)
        if settle is None:  # a 402 to the paid request: a corrective one lets the client pay again, once
            required = getattr(ctx, "payment_required", None)
            if required is not None and self.resync(required):
                from x402.schemas import RecoveredResponseResult

                return RecoveredResponseResult()
            return None
        if not settle.success or getattr(ctx.requirements, "scheme", None) != SCHEME:
            return None
        state = (settle.extra or {}).get("channelState") or {}
        self.record(state)
        return None

    def record(self, channel_state: dict[str, Any]) -> None:
        """Take the gateway's `channelState` (PAYMENT-RESPONSE extra): its charged total, capped by what this
        client signed for the channel (a gateway cannot make the client sign more than price by price)."""
        cid = str(channel_state.get("channelId", "")).lower()
        raw = channel_state.get("chargedCumulativeAmount")
        if not cid or not isinstance(raw, str) or not raw.isdigit():
            return
        with self._lock:
            signed = self._signed.get(cid)
            if signed is None:
                return
            self.charged[cid] = max(self.charged.get(cid, 0), min(int(raw), signed))

    def resync(self, payment_required: Any) -> bool:
        """Take a corrective 402 (PaymentRequired, the SDK's model or the wire dict): when its error says the
        voucher was stale and its batch-settlement requirement names this plugin's channel, set the channel's
        charged total to the gateway's `channelState.chargedCumulativeAmount`, provided that
        `voucherState` is a voucher of this channel signed by this plugin's key for at least that much (the
        gateway can already claim that much with it, so resyncing authorizes nothing new); with no
        `voucherState`, only up to what this plugin signed itself. True when resynced."""
        if isinstance(payment_required, dict):
            error, accepts = payment_required.get("error"), payment_required.get("accepts") or []
        else:
            error, accepts = getattr(payment_required, "error", None), payment_required.accepts or []
        if error not in STALE_VOUCHER_ERRORS:
            return False
        for requirements in accepts:
            if _get(requirements, "scheme", "scheme") == SCHEME and self._resync_one(requirements):
                return True
        return False

    def _resync_one(self, requirements: Any) -> bool:
        extra = _get(requirements, "extra", "extra") or {}
        state, voucher = extra.get("channelState"), extra.get("voucherState")
        try:
            domain, _, cid, _ = self._channel(requirements)
        except (ValueError, VoucherFormatError):
            return False
        if not isinstance(state, dict) or str(state.get("channelId", "")).lower() != cid:
            return False
        raw = state.get("chargedCumulativeAmount")
        if not isinstance(raw, str) or not raw.isdigit():
            return False
        charged, covered = int(raw), 0
        if isinstance(voucher, dict):
            signed = voucher.get("signedMaxClaimable")
            if isinstance(signed, str) and signed.isdigit():
                try:
                    sig = signature_bytes(voucher.get("signature"))
                except VoucherFormatError:
                    return False
                if recover(domain.voucher_digest(cid, int(signed)), sig) != self.account.address.lower():
                    return False  # not a voucher of this key: no resync on the gateway's word
                covered = int(signed)
        with self._lock:
            covered = max(covered, self._signed.get(cid, 0))
            if charged > covered:
                return False
            self._signed[cid] = covered
            self.charged[cid] = charged
        return True

    # --- fast path: pay without the 402 round trip ------------------------------------------------------
    def payment_header(self, requirement: dict[str, Any], resource: dict[str, Any] | None = None) -> str:
        """A PAYMENT-SIGNATURE header value (base64 JSON x402 v2 PaymentPayload) for a known requirement, so a
        high-frequency agent that has seen the 402 once pays each later request in one round trip."""
        body: dict[str, Any] = {
            "x402Version": 2, "accepted": requirement, "payload": self.create_payment_payload(requirement),
        }  # fmt: skip
        if resource is not None:
            body["resource"] = resource
        return base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()

    def resync_from_header(self, header: str) -> bool:
        """The fast path's counterpart of the recovery: read a corrective 402's PAYMENT-REQUIRED header;
        True when resynced (then pay again with `payment_header`)."""
        try:
            required = json.loads(base64.b64decode(header))
        except ValueError:
            return False
        return isinstance(required, dict) and self.resync(required)

    def record_response_header(self, header: str) -> None:
        """The fast path's counterpart of the response hook: read a PAYMENT-RESPONSE header."""
        settle = json.loads(base64.b64decode(header))
        if settle.get("success"):
            self.record((settle.get("extra") or {}).get("channelState") or {})


# --- on-chain calls of the agent (it pays their gas) ----------------------------------------------------
def _send(w3: Any, account: LocalAccount, fn: Any) -> Any:
    tx = fn.build_transaction({
        "from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
    })  # fmt: skip
    signed = account.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction), timeout=60
    )
    if int(receipt["status"]) != 1:
        raise RuntimeError(f"transaction {receipt['transactionHash'].hex()} reverted")
    return receipt


def deposit(w3: Any, account: LocalAccount, config: ChannelConfig, amount: int) -> Any:
    """Approve the router and `PaymentRouter.deposit(config, amount)`; returns the deposit's receipt."""
    token = w3.eth.contract(address=to_checksum_address(config.token), abi=ERC20_APPROVE_ABI)
    router = w3.eth.contract(address=to_checksum_address(config.receiver), abi=ROUTER_ABI)
    _send(w3, account, token.functions.approve(router.address, amount))
    return _send(w3, account, router.functions.deposit(config.as_tuple(), amount))


def initiate_withdraw(w3: Any, account: LocalAccount, config: ChannelConfig, amount: int) -> Any:
    """Start the timed withdrawal of up to `amount` unclaimed balance (available after `withdrawDelay`)."""
    router = w3.eth.contract(address=to_checksum_address(config.receiver), abi=ROUTER_ABI)
    return _send(w3, account, router.functions.initiateWithdraw(config.as_tuple(), amount))


def finalize_withdraw(w3: Any, account: LocalAccount, config: ChannelConfig) -> Any:
    """Complete the withdrawal: the requested amount, capped to what the gateway has not claimed."""
    router = w3.eth.contract(address=to_checksum_address(config.receiver), abi=ROUTER_ABI)
    return _send(w3, account, router.functions.finalizeWithdraw(config.as_tuple()))
