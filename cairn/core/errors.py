"""One exception hierarchy for Cairn; the API maps it to problem+json (`http_status`), the CLI to exit codes.

Exit codes: 1 other, 2 configuration, 3 invalid input, 4 not found, 5 conflict, 6 deep reorg,
69 unavailable (sysexits' EX_UNAVAILABLE: the chain or the database does not answer; retrying later may work).
"""

from __future__ import annotations


class CairnError(Exception):
    """Base of every error Cairn raises on purpose. `code` is stable and machine-readable."""

    code: str = "cairn_error"
    http_status: int = 500
    exit_code: int = 1

    def __init__(self, message: str, **fields: object) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


# --- configuration ---------------------------------------------------------------------------------------
class ConfigError(CairnError):
    """The configuration is wrong or incomplete (bad URL, missing key, wrong chain id)."""

    code = "config_error"
    http_status = 500
    exit_code = 2


class WrongChainError(ConfigError):
    code = "wrong_chain"


class DeploymentError(ConfigError):
    code = "deployment_invalid"


class MissingKeyError(ConfigError):
    """A signing key the command needs is not configured (CAIRN_<ROLE>_KEY)."""

    code = "signing_key_missing"


class ArtifactError(ConfigError):
    """A compiled artifact is missing or unreadable (run `npx hardhat build`)."""

    code = "artifact_missing"


class SchemaMismatchError(ConfigError):
    """The mirror's event tables do not match the deployment's ABIs."""

    code = "indexer_schema_mismatch"


class TreasuryError(ConfigError):
    """The policy's treasury is not a real treasury for this chain."""

    code = "treasury_invalid"


# --- a dependency that does not answer --------------------------------------------------------------------
class UnavailableError(CairnError):
    """A service Cairn depends on (the chain's node, the database) does not answer: HTTP 503, exit 69."""

    code = "unavailable"
    http_status = 503
    exit_code = 69


class ChainUnreachableError(UnavailableError):
    code = "chain_unreachable"


class DatabaseUnreachableError(UnavailableError):
    code = "database_unreachable"


# --- input ------------------------------------------------------------------------------------------------
class InvalidInputError(CairnError):
    """Input rejected before any state changed."""

    code = "invalid_input"
    http_status = 422
    exit_code = 3


class PublishRefusedError(InvalidInputError):
    """The checker refuses to publish an allocation (a decreasing leaf, a duplicate account, a bad sum)."""

    code = "publish_refused"


class NotFoundError(CairnError):
    code = "not_found"
    http_status = 404
    exit_code = 4


# --- state ------------------------------------------------------------------------------------------------
class ConflictError(CairnError):
    code = "conflict"
    http_status = 409
    exit_code = 5


class EpochNotReadyError(ConflictError):
    code = "epoch_not_ready"


class EpochEndedError(ConflictError):
    """Too late: the epoch has ended (its emission would fall outside its allocation)."""

    code = "epoch_ended"


class AllocationMismatchError(ConflictError):
    """The allocation file on disk does not produce the root published on chain."""

    code = "allocation_mismatch"


class OutboxRevertError(ConflictError):
    """The node's gas estimate says the transaction would revert."""

    code = "would_revert"


# --- the chain's answers ----------------------------------------------------------------------------------
class OutboxError(CairnError):
    """The outbox cannot sign or send a transaction."""

    code = "outbox_error"


class OutboxRejectedError(OutboxError):
    """The node refused a transaction's first broadcast (e.g. insufficient funds): nothing went out, the
    outbox row was discarded and its nonce is free again."""

    code = "outbox_rejected"
    http_status = 502


class OutboxNonceError(OutboxError):
    """No free nonce could be reserved: other senders on the same key kept taking the candidates."""

    code = "outbox_nonce_contended"
    http_status = 503


class RelayError(CairnError):
    """The node refused the relayed transaction."""

    code = "relay_failed"
    http_status = 502


class RpcError(CairnError):
    """A JSON-RPC error answer that retrying the same request will not fix."""

    code = "rpc_error"

    def __init__(self, message: str, *, rpc_code: int | None = None, method: str = "") -> None:
        super().__init__(message, rpc_code=rpc_code, method=method)
        self.rpc_code = rpc_code
        self.method = method


class RangeTooLargeError(RpcError):
    """eth_getLogs asked for too much; `suggested` is the provider's proposed (from, to) if it gave one."""

    code = "rpc_range_too_large"

    def __init__(
        self,
        message: str,
        suggested: tuple[int, int] | None,
        *,
        rpc_code: int | None = None,
        method: str = "",
    ) -> None:
        super().__init__(message, rpc_code=rpc_code, method=method)
        self.suggested = suggested


class DeepReorgError(CairnError):
    """A reorganisation deeper than the kept window of unfinalized block hashes."""

    code = "indexer_deep_reorg"
    exit_code = 6


# --- the relayer's limits (backend/api/relay/guard.py) -----------------------------------------------------
class RelayRefusedError(CairnError):
    """The relayer declines to pay for a registration; nothing was signed or sent. `reason` names the limit
    (the `reason` label of the refusals metric); `retry_after` (seconds), when set, becomes the problem's
    `Retry-After` header."""

    code = "relay_refused"
    reason = "refused"

    def __init__(
        self, message: str, *, reason: str | None = None, retry_after: int | None = None, **fields: object
    ) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(message, retry_after=retry_after, reason=self.reason, **fields)
        self.retry_after = retry_after


class RateLimitedError(RelayRefusedError):
    """Too many relay requests from one client or for one account: HTTP 429 with `Retry-After`."""

    code = "rate_limited"
    http_status = 429


class BudgetExhaustedError(RelayRefusedError):
    """The relayer's daily gas budget (global or the account's) is spent: HTTP 402, `Retry-After` = the next
    UTC day. The registration itself is fine: the owner can pay for it (send it directly) or wait."""

    code = "relay_budget_exhausted"
    http_status = 402


class RelayDeniedError(RelayRefusedError):
    """The owner (a contract wallet) made the relayer pay for a reverted transaction: HTTP 403, for good."""

    code = "relay_denied"
    http_status = 403
    reason = "denied"


class NoncePendingError(RelayRefusedError):
    """Another relay with the same owner nonce is pending: only one of them could be mined."""

    code = "relay_nonce_pending"
    http_status = 409
    reason = "nonce_pending"


class RelayGasCeilingError(RelayRefusedError):
    """The relayed transaction's own gas estimate is above the relayer's ceiling for it (a contract wallet
    whose `isValidSignature` costs more on chain than in the relayer's bounded check)."""

    code = "relay_gas_ceiling"
    http_status = 422
    reason = "gas_ceiling"


class DeadlineTooSoonError(InvalidInputError):
    """The signature's deadline leaves less than the relayer's minimum margin (it could expire in flight)."""

    code = "deadline_too_soon"


# --- who is asking (backend/api/auth) ---------------------------------------------------------------------
class AuthenticationError(CairnError):
    """No valid credentials (session cookie, bearer token or API key): HTTP 401 with `WWW-Authenticate`."""

    code = "unauthenticated"
    http_status = 401


class PermissionDeniedError(CairnError):
    """Valid credentials that do not allow this request (e.g. an API key without the scope): HTTP 403."""

    code = "forbidden"
    http_status = 403


class SiweRejectedError(AuthenticationError):
    """A Sign-In with Ethereum message or signature the server does not accept; `code` names the check."""

    code = "siwe_rejected"

    def __init__(self, code: str, message: str, **fields: object) -> None:
        super().__init__(message, **fields)
        self.code = code


class SiweMalformedError(InvalidInputError):
    """The text is not an EIP-4361 message (its ABNF grammar refuses it)."""

    code = "siwe_malformed"


# --- inference (backend/api/services/inference.py) ----------------------------------------------------------
class ModelNotFoundError(NotFoundError):
    """No served model has this name (OpenAI's `model_not_found`): HTTP 404."""

    code = "model_not_found"


class UpstreamError(CairnError):
    """An OpenAI-compatible upstream answered with an error or with something that is not a completion."""

    code = "upstream_error"
    http_status = 502


class UpstreamUnavailableError(UnavailableError):
    """An OpenAI-compatible upstream did not answer in time (or refused the connection)."""

    code = "upstream_unavailable"
