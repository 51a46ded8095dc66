"""What the gateway asks of a payment scheme (x402 v2 `scheme` values: "exact", "batch-settlement")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from cairn.core.errors import CairnError


class PaymentRejectedError(CairnError):
    """A payment payload that does not pay for the request: the gateway answers 402 with the requirements
    again and this message as the `error` of the PAYMENT-REQUIRED body (x402 v2 `PaymentRequired.error`)."""

    code = "payment_rejected"
    http_status = 402
    exit_code = 3

    def __init__(self, reason: str, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason  # machine-readable, e.g. "invalid_exact_evm_payload_signature"
        # fields added to the rejecting scheme's requirement `extra` in the 402 (a corrective 402: e.g. a
        # channel's current state, so that the client can resync and pay again)
        self.extra = extra


@dataclass(frozen=True)
class Charge:
    """What one request costs and where it is paid: the gateway's input to `Scheme.requirement`."""

    amount: int  # atomic units of the asset
    resource: str  # the URL being paid for
    model_id: str  # bytes32 hex of the model the revenue is attributed to
    description: str = ""


@dataclass(frozen=True)
class Accepted:
    """A verified payment, recorded for settlement before the request is served."""

    scheme: str
    payer: str  # checksummed address
    amount: int
    extra: dict[str, Any] = field(default_factory=dict)  # scheme-specific, e.g. the authorization nonce


class Scheme(Protocol):
    """One x402 payment scheme on the gateway."""

    name: str  # the x402 `scheme` value

    def requirement(self, charge: Charge) -> dict[str, Any]:
        """One entry of `accepts` (x402 v2 PaymentRequirements) for `charge`."""
        ...

    def accept(self, payload: dict[str, Any], requirement: dict[str, Any], charge: Charge) -> Accepted:
        """Verify the PAYMENT-SIGNATURE `payload` against `requirement` and record it for settlement
        (exposure, channel state) atomically; raise PaymentRejectedError when it does not pay for `charge`."""
        ...

    def response(self, accepted: Accepted) -> dict[str, Any]:
        """The PAYMENT-RESPONSE body (x402 v2 SettleResponse: success, transaction, network, payer, ...)."""
        ...

    def void(self, accepted: Accepted, reason: str) -> dict[str, Any] | None:
        """The paid route failed (5xx or raised): release the payment so it is never settled, and return the
        PAYMENT-RESPONSE body saying so (success false); None when it cannot be released (it stays paid)."""
        ...
