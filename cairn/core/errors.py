"""One exception hierarchy for Cairn; the API maps it to problem+json and the CLI to exit codes."""

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


class ConfigError(CairnError):
    """The configuration is wrong or incomplete (bad URL, missing key, wrong chain id)."""

    code = "config_error"
    http_status = 500
    exit_code = 2


class ChainUnreachableError(ConfigError):
    code = "chain_unreachable"


class WrongChainError(ConfigError):
    code = "wrong_chain"


class DatabaseUnreachableError(ConfigError):
    code = "database_unreachable"


class DeploymentError(ConfigError):
    code = "deployment_invalid"


class ValidationError(CairnError):
    """Input rejected before any state changed."""

    code = "invalid_input"
    http_status = 422
    exit_code = 3


class NotFoundError(CairnError):
    code = "not_found"
    http_status = 404
    exit_code = 4


class ConflictError(CairnError):
    code = "conflict"
    http_status = 409
    exit_code = 5
