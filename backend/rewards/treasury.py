"""The policy's treasury must be the protocol's real treasury outside the local chain."""

from __future__ import annotations

from typing import Any

from eth_account import Account

from cairn.core.errors import TreasuryError
from cairn.core.policy import PLACEHOLDER_TREASURIES, Policy
from cairn.core.settings import ANVIL_DEV_KEYS, LOCAL_CHAIN_ID


def require_real_treasury(chain_id: int, policy: Policy, payment_router: Any | None) -> None:
    """Outside the local chain the policy's treasury must be the deployment's treasury.

    Refused: a known placeholder (policy v1 ships `0x...c41a` for the local chain), an address below
    2**64 (hand-typed), a public anvil development account, and, when the deployment has a PaymentRouter
    (`payment_router`, its contract), any address other than its `feeRecipient()` (one protocol treasury
    receives the protocol fee and the policy's protocol share)."""
    if chain_id == LOCAL_CHAIN_ID:
        return
    t = policy.treasury
    hint = f"on chain {chain_id} use a policy file whose treasury is the protocol's (--policy FILE)"
    dev = {Account.from_key(k).address.lower() for k in ANVIL_DEV_KEYS}
    if t in PLACEHOLDER_TREASURIES or int(t, 16) < 2**64 or t in dev:
        raise TreasuryError(f"policy treasury {t} is a placeholder; {hint}")
    if payment_router is not None:
        fee_recipient = str(payment_router.functions.feeRecipient().call()).lower()
        if fee_recipient != t:
            raise TreasuryError(
                f"policy treasury {t} is not the PaymentRouter's fee recipient {fee_recipient}; {hint}"
            )
