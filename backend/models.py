"""The backend's own tables, as SQLModel models: one module for all of them (the FastAPI full-stack template's
`models.py`). Every change here is an Alembic revision in `backend/migrations/versions/`;
`tests/integration/test_backend_models.py` checks that the migrations' head and these models agree.

Wei amounts are decimal TEXT (they exceed 64 bits); addresses and hashes are `0x`-lowercase text.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata


class RewardEpoch(SQLModel, table=True):
    """One row per (chain, epoch): closed -> computed -> proposed -> accepted (backend.rewards.lifecycle)."""

    __tablename__ = "reward_epoch"

    chain_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    epoch: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    end_block: int = Field(sa_column=Column(BigInteger, nullable=False))
    policy_hash: str = Field(sa_column=Column(String(66), nullable=False))
    root: str | None = Field(default=None, sa_column=Column(String(66)))
    epoch_total: str | None = Field(default=None, sa_column=Column(Text))  # wei, decimal
    total_cumulative: str | None = Field(default=None, sa_column=Column(Text))  # wei, decimal
    leaf_count: int | None = Field(default=None, sa_column=Column(Integer))
    allocation_file: str | None = Field(default=None, sa_column=Column(Text))  # under <data_dir>/rewards/
    uri: str | None = Field(default=None, sa_column=Column(Text))
    propose_tx: int | None = Field(default=None, sa_column=Column(Integer))  # outbox_tx.id
    accept_tx: int | None = Field(default=None, sa_column=Column(Integer))  # outbox_tx.id
    valid_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    updated_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class OutboxTx(SQLModel, table=True):
    """A transaction, signed and stored before it is broadcast; its nonce is fixed at that moment."""

    __tablename__ = "outbox_tx"
    __table_args__ = (UniqueConstraint("chain_id", "sender", "nonce", name="uq_outbox_tx_nonce"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    key: str = Field(sa_column=Column(String(200), nullable=False, unique=True))  # idempotency key
    chain_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    sender: str = Field(sa_column=Column(String(42), nullable=False))
    nonce: int = Field(sa_column=Column(BigInteger, nullable=False))
    to_address: str | None = Field(default=None, sa_column=Column(String(42)))  # None: contract creation
    data: str = Field(sa_column=Column(Text, nullable=False))
    value: str = Field(sa_column=Column(Text, nullable=False))  # wei, decimal
    gas: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))  # pending | confirmed | failed
    mined_hash: str | None = Field(default=None, sa_column=Column(String(66)))
    block_number: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class OutboxAttempt(SQLModel, table=True):
    """Every signed version of an outbox transaction (fee bumps replace it at the same nonce)."""

    __tablename__ = "outbox_attempt"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    outbox_id: int = Field(sa_column=Column(Integer, ForeignKey("outbox_tx.id"), nullable=False, index=True))
    tx_hash: str = Field(sa_column=Column(String(66), nullable=False, unique=True))
    raw_tx: str = Field(sa_column=Column(Text, nullable=False))
    max_fee: str = Field(sa_column=Column(Text, nullable=False))  # wei, decimal
    priority_fee: str = Field(sa_column=Column(Text, nullable=False))  # wei, decimal
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class RelayRecord(SQLModel, table=True):
    """One relayed registration (backend.api.relay): the owner's signed message and the outbox row that
    carries it. `relay_id` (keccak256 of the signature) is the name clients use; it survives fee bumps,
    which change the transaction hash (every hash is an `outbox_attempt`)."""

    __tablename__ = "relay_record"

    relay_id: str = Field(sa_column=Column(String(66), primary_key=True))  # keccak256(signature)
    message_digest: str = Field(sa_column=Column(String(66), nullable=False, unique=True))  # EIP-712 digest
    request_digest: str = Field(sa_column=Column(String(66), nullable=False))  # what the client asked for
    chain_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    owner: str = Field(sa_column=Column(String(42), nullable=False))
    content_hash: str = Field(sa_column=Column(String(66), nullable=False, index=True))
    owner_nonce: str = Field(sa_column=Column(Text, nullable=False))  # uint256, decimal
    deadline: str = Field(sa_column=Column(Text, nullable=False))  # uint256, decimal
    relayer: str = Field(sa_column=Column(String(42), nullable=False))
    outbox_id: int = Field(
        sa_column=Column(Integer, ForeignKey("outbox_tx.id"), nullable=False, unique=True)
    )  # the current carrier of the commit; a replaced one is superseded by a new row (relayed afresh)
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    # commit-reveal: the reveal's calldata (`registerDatasetFor` with the salt), sent once the commit is mined
    reveal_data: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    reveal_outbox_id: int | None = Field(  # an outbox_tx.id
        default=None, sa_column=Column(Integer, nullable=True)
    )
    # what the relay calls (backend.api.relay.kinds); rows from before revision 0009 are single datasets
    kind: str = Field(
        default="dataset", sa_column=Column(String(24), nullable=False, server_default="dataset")
    )
    # the owner has code (decided once, at the request); NULL: recorded before revision 0009
    owner_is_contract: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))
    failure: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # can no longer succeed


class RelayBudget(SQLModel, table=True):
    """The relayer's gas for one UTC day (backend.api.relay.budget): `scope` is `*` (all accounts) or an
    owner's address. A relay reserves its transaction's gas limit before it is sent (in the database
    transaction that stores it); the receipt's gasUsed replaces the reservation (shared by all processes)."""

    __tablename__ = "relay_budget"

    chain_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    day: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))  # unix s // 86400
    scope: str = Field(sa_column=Column(String(42), primary_key=True))
    reserved_gas: int = Field(sa_column=Column(BigInteger, nullable=False))
    spent_gas: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class RelayCharge(SQLModel, table=True):
    """One relayed transaction's claim on the budget and on its owner's nonce: `pending_nonce` is the owner
    nonce while the transaction is pending (one pending relay per owner nonce), NULL once it is settled
    (`state` reserved -> settled, with gasUsed and the wei paid, or released: nothing was spent)."""

    __tablename__ = "relay_charge"
    __table_args__ = (
        UniqueConstraint("chain_id", "owner", "pending_nonce", name="uq_relay_charge_pending_nonce"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    chain_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    relay_id: str = Field(sa_column=Column(String(66), nullable=False))
    owner: str = Field(sa_column=Column(String(42), nullable=False))
    owner_nonce: str = Field(sa_column=Column(Text, nullable=False))  # uint256, decimal
    pending_nonce: str | None = Field(default=None, sa_column=Column(Text))
    outbox_id: int = Field(sa_column=Column(Integer, nullable=False, unique=True))  # outbox_tx.id
    day: int = Field(sa_column=Column(BigInteger, nullable=False))
    reserved_gas: int = Field(sa_column=Column(BigInteger, nullable=False))
    gas_used: int | None = Field(default=None, sa_column=Column(BigInteger))
    wei: str | None = Field(default=None, sa_column=Column(Text))  # wei, decimal
    state: str = Field(sa_column=Column(String(16), nullable=False, index=True))
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class RelayDenied(SQLModel, table=True):
    """Contract-wallet owners whose relayed transaction reverted on chain after passing every check: the
    relayer paid for it once and relays nothing more for them."""

    __tablename__ = "relay_denied"

    chain_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    owner: str = Field(sa_column=Column(String(42), primary_key=True))
    tx_hash: str = Field(sa_column=Column(String(66), nullable=False))
    gas_used: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class TrainedModel(SQLModel, table=True):
    """One training run of the embedded model (backend.inference.training): the content-addressed artefact
    (its SHA-256, the blob in the content store) next to the model id (keccak256 of the model's name) and
    the manifest registered on chain through the outbox row `outbox_id` (key `outbox_key`). `status`:
    pending -> registered (the manifest is mined; `version` is its on-chain version) or failed."""

    __tablename__ = "trained_model"
    __table_args__ = (
        UniqueConstraint("chain_id", "model_id", "artefact_hash", name="uq_trained_model_artefact"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    chain_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    name: str = Field(sa_column=Column(String(100), nullable=False, index=True))
    model_id: str = Field(sa_column=Column(String(66), nullable=False))  # keccak256(name)
    artefact_hash: str = Field(sa_column=Column(String(66), nullable=False))  # SHA-256 of the artefact
    artefact_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    dataset_ids: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of 0x hex, ascending
    weights: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of uint32
    tokens: str = Field(sa_column=Column(Text, nullable=False))  # JSON list: training tokens per dataset
    outbox_id: int = Field(sa_column=Column(Integer, ForeignKey("outbox_tx.id"), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))  # pending | registered | failed
    version: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class X402Payment(SQLModel, table=True):
    """One x402 payment the gateway accepted and served before settling it (backend.api.x402): the signed
    EIP-3009 authorization (`authorization`: JSON of validAfter, validBefore, signature), then its outcome.
    `status`: accepted (waiting for a batch) -> settling (in batch `batch_id`) -> settled (`tx_hash`) or
    failed (`reason`, e.g. the payer cancelled the authorization or moved its funds)."""

    __tablename__ = "x402_payment"
    __table_args__ = (UniqueConstraint("chain_id", "payer", "nonce", name="uq_x402_payment_nonce"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    chain_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    scheme: str = Field(sa_column=Column(String(32), nullable=False))
    payer: str = Field(sa_column=Column(String(42), nullable=False, index=True))
    nonce: str = Field(sa_column=Column(String(66), nullable=False))  # EIP-3009 nonce, bytes32 hex
    amount: str = Field(sa_column=Column(Text, nullable=False))  # atomic units, decimal
    model_id: str = Field(sa_column=Column(String(66), nullable=False))
    resource: str = Field(sa_column=Column(Text, nullable=False))
    authorization: str = Field(sa_column=Column(Text, nullable=False))  # JSON
    status: str = Field(sa_column=Column(String(16), nullable=False, index=True))
    batch_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True, index=True))
    tx_hash: str | None = Field(default=None, sa_column=Column(String(66)))
    reason: str | None = Field(default=None, sa_column=Column(Text))
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class X402Payer(SQLModel, table=True):
    """A payer's serve-first exposure: `unsettled` is the sum of its accepted and settling payments (updated
    in the transaction that changes a payment's status), `failed` how many of its payments failed to settle.
    A payer past the exposure limit, or with a failed settlement, is refused (402)."""

    __tablename__ = "x402_payer"

    chain_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    payer: str = Field(sa_column=Column(String(42), primary_key=True))
    unsettled: str = Field(sa_column=Column(Text, nullable=False))  # atomic units, decimal
    failed: int = Field(sa_column=Column(Integer, nullable=False))
    failed_amount: str = Field(sa_column=Column(Text, nullable=False))  # atomic units, decimal
    updated_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class X402Batch(SQLModel, table=True):
    """One settleExactBatch transaction: its outbox row and whether its receipt's outcomes were applied to
    its payments (`status`: pending -> applied, or released when the transaction did not land and its
    payments went back to `accepted`)."""

    __tablename__ = "x402_batch"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    chain_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    outbox_id: int = Field(sa_column=Column(Integer, ForeignKey("outbox_tx.id"), nullable=False, unique=True))
    size: int = Field(sa_column=Column(Integer, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False, index=True))
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class AuthNonce(SQLModel, table=True):
    """A Sign-In with Ethereum nonce the server issued (backend.api.auth): single use, short-lived. `used_at`
    is set, in the same statement that checks it is unset, by the one sign-in that consumes it."""

    __tablename__ = "auth_nonce"

    nonce: str = Field(sa_column=Column(String(64), primary_key=True))
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    used_at: int | None = Field(default=None, sa_column=Column(BigInteger))


class AuthSession(SQLModel, table=True):
    """A signed-in session: only the SHA-256 of its token is stored (the cookie or bearer token itself is
    never written anywhere on the server)."""

    __tablename__ = "auth_session"

    token_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    address: str = Field(sa_column=Column(String(42), nullable=False, index=True))  # 0x-lowercase
    chain_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(sa_column=Column(String(8), nullable=False))  # cookie | bearer
    nonce: str = Field(sa_column=Column(String(64), nullable=False))  # the auth_nonce it consumed
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    revoked_at: int | None = Field(default=None, sa_column=Column(BigInteger))


class ApiKey(SQLModel, table=True):
    """An operator's API key (`cairn apikey create --scope ...`): `key_id` is the key's public part, only
    the SHA-256 of the whole key is stored; `scopes` is space-separated (`epochs:write payouts:write`)."""

    __tablename__ = "api_key"

    key_id: str = Field(sa_column=Column(String(32), primary_key=True))
    key_hash: str = Field(sa_column=Column(String(64), nullable=False))
    name: str = Field(sa_column=Column(Text, nullable=False))
    scopes: str = Field(sa_column=Column(Text, nullable=False))
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_used_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    revoked_at: int | None = Field(default=None, sa_column=Column(BigInteger))


class ChannelState(SQLModel, table=True):
    """One x402 batch-settlement channel the gateway has served (backend.api.x402.channel): its config (what a
    claim row needs), the latest accepted voucher (signed cumulative ceiling + signature) and the cumulative
    amount charged against it. The accept step locks this row (PostgreSQL `FOR UPDATE`, SQLite the write
    lock), so one channel's requests are processed one at a time by all API processes."""

    __tablename__ = "channel_state"

    chain_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    channel_id: str = Field(sa_column=Column(String(66), primary_key=True))
    router: str = Field(sa_column=Column(String(42), nullable=False))
    payer: str = Field(sa_column=Column(String(42), nullable=False, index=True))
    payer_authorizer: str = Field(sa_column=Column(String(42), nullable=False))
    receiver_authorizer: str = Field(sa_column=Column(String(42), nullable=False))
    token: str = Field(sa_column=Column(String(42), nullable=False))
    withdraw_delay: int = Field(sa_column=Column(BigInteger, nullable=False))
    salt: str = Field(sa_column=Column(String(66), nullable=False))
    max_claimable: str = Field(sa_column=Column(Text, nullable=False))  # latest voucher's ceiling, decimal
    signature: str = Field(sa_column=Column(Text, nullable=False))  # latest voucher's signature
    charged: str = Field(sa_column=Column(Text, nullable=False))  # cumulative charged, decimal
    requests: int = Field(sa_column=Column(BigInteger, nullable=False))  # cumulative paid requests
    updated_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class ChannelUsage(SQLModel, table=True):
    """What one channel paid per model (claim rows carry the model): cumulative charged and requests."""

    __tablename__ = "channel_usage"

    chain_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    channel_id: str = Field(sa_column=Column(String(66), primary_key=True))
    model_id: str = Field(sa_column=Column(String(66), primary_key=True))
    charged: str = Field(sa_column=Column(Text, nullable=False))  # cumulative, decimal
    requests: int = Field(sa_column=Column(BigInteger, nullable=False))  # cumulative


class ChannelRequest(SQLModel, table=True):
    """One channel request in flight: its charge was accepted (in `channel_state` / `channel_usage`) and its
    route has not yet served it or failed (backend.api.x402.channel). The row goes when the request is served
    (its charge becomes claimable) or void (its charge is released), or when the claimer releases it as stale
    (older than `api_x402_serve_timeout_s`: its API process was killed). The claimer never claims the charge
    of a row that is here, so a request that ends void is never claimed."""

    __tablename__ = "channel_request"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    chain_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    channel_id: str = Field(sa_column=Column(String(66), nullable=False, index=True))
    model_id: str = Field(sa_column=Column(String(66), nullable=False))
    amount: str = Field(sa_column=Column(Text, nullable=False))  # decimal, the request's charge
    accepted_at: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))


class ChannelClaim(SQLModel, table=True):
    """One row of a `PaymentRouter.claim` batch, stored with its outbox transaction
    (backend.api.x402.claimer): `total_claimed` is the channel's cumulative claimed total after the row,
    `amount` / `requests` what the row adds for `model_id`. State pending -> confirmed, or failed (the
    amounts are claimable again)."""

    __tablename__ = "channel_claim"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    outbox_id: int = Field(sa_column=Column(Integer, nullable=False, index=True))  # outbox_tx.id
    chain_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    channel_id: str = Field(sa_column=Column(String(66), nullable=False, index=True))
    model_id: str = Field(sa_column=Column(String(66), nullable=False))
    total_claimed: str = Field(sa_column=Column(Text, nullable=False))  # decimal
    amount: str = Field(sa_column=Column(Text, nullable=False))  # decimal
    requests: int = Field(sa_column=Column(BigInteger, nullable=False))
    state: str = Field(sa_column=Column(String(16), nullable=False, index=True))  # pending|confirmed|failed
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
