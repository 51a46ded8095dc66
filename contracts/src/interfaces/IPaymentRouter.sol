// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IPaymentRouter
/// @notice Settles agents' inference payments in the RewardToken and routes the revenue, less a capped protocol fee,
/// to the current epoch's reward pool (RewardDistributor.fundRevenue, EpochFunded source 1).
///
/// Deployment: `new PaymentRouter(token, genesis, length, admin, distributor, maxFeeBps, feeBps, feeRecipient)`
///   - `token` the RewardToken (EIP-3009 `transferWithAuthorization` for exact payments, `receiveWithAuthorization`
///     for channel deposits);
///   - `genesis`, `length` the shared epoch clock;
///   - `admin` receives DEFAULT_ADMIN_ROLE only; it grants SETTLER_ROLE (the inference gateway: settles exact
///     payments and claims channel vouchers), FEE_MANAGER_ROLE (sets the fee below the cap) and PAUSER_ROLE;
///   - `distributor` the RewardDistributor; `maxFeeBps` immutable fee cap (<= 1000 bps = 10%); `feeBps` initial fee
///     (<= maxFeeBps); `feeRecipient` receives the fee.
///
/// Two ways to pay:
/// 1. Exact (x402 `exact` scheme): the agent's official x402 client signs an EIP-3009 `TransferWithAuthorization`
///    with `to` = this router (the requirement's `payTo`); the gateway serves first and settles later in batches
///    (`settleExactBatch`). A row that cannot be settled (cancelled authorization, funds moved, nonce used, expired)
///    is skipped with `PaymentSkipped` instead of reverting the batch. Anyone may submit a signed
///    TransferWithAuthorization to the token directly (a front-run): the funds still reach this router, with no
///    settlement event. The settler's row for it then finds the nonce used and the signature valid for this router,
///    and attributes it from the router's unattributed surplus (its token balance above the channel escrow it
///    holds), so the payment is settled once, with its payer and model, and never lost (contracts/SECURITY.md).
///    A channel deposit's `ReceiveWithAuthorization` (another EIP-712 type) can never be settled as an exact
///    payment.
/// 2. Channel (x402 `batch-settlement` EVM scheme): the agent deposits into a channel identified by the EIP-712
///    hash of its `ChannelConfig` under the domain ("x402 Batch Settlement", "1", chainId, this router), signs
///    cumulative `Voucher(bytes32 channelId,uint128 maxClaimableAmount)` off-chain, and the gateway claims the
///    latest voucher of many channels in one `claim` call. The payer can `initiateWithdraw` and, after the channel's
///    `withdrawDelay`, `finalizeWithdraw` the unclaimed balance if the gateway disappears.
///
/// Deviations from x402 batch-settlement (also in contracts/SECURITY.md):
///   - `claim` pays out immediately (no separate `settle`): claimed value goes straight to the reward pool and the
///     fee recipient, because the receiver is this router, not a server wallet. `config.receiver` must be this router
///     and `config.token` the RewardToken.
///   - claim rows carry `modelId`, `requestHash` and `requestCount`, asserted by the gateway (SETTLER_ROLE, which
///     must also be the row's `receiverAuthorizer`); `claimWithSignature` (relayed claims) is not offered.
///   - `depositWithAuthorization` binds the EIP-3009 nonce to the channel: `nonce = keccak256(abi.encode(channelId,
///     authSalt))`, so a mempool copy cannot be redirected to another channel.
///   - `refund` is the direct cooperative refund by the receiver authorizer; `refundWithSignature` is not offered.
interface IPaymentRouter {
    /// @notice x402 batch-settlement `ChannelConfig`; `channelId` is its EIP-712 hash.
    struct ChannelConfig {
        address payer;
        address payerAuthorizer; // EOA that signs vouchers, or 0 to verify against `payer` (EIP-1271 allowed)
        address receiver; // must be this router
        address receiverAuthorizer; // the gateway: claims and refunds
        address token; // must be the RewardToken
        uint40 withdrawDelay; // 15 minutes .. 30 days
        bytes32 salt;
    }

    /// @notice One channel's line in a `claim` batch.
    struct ChannelClaim {
        ChannelConfig config;
        uint128 maxClaimableAmount; // the voucher's signed cumulative ceiling
        uint128 totalClaimed; // new cumulative claimed total, <= maxClaimableAmount
        bytes signature; // payer's (or payerAuthorizer's) EIP-712 Voucher signature
        bytes32 modelId; // model served
        bytes32 requestHash; // hash of the batch of requests this claim covers
        uint32 requestCount; // number of requests in the batch
    }

    /// @notice An EIP-3009 TransferWithAuthorization (to = this router). The PaymentSettled event of an exact
    /// payment carries the authorization `nonce` as its `requestHash`: (payer, nonce) names the payment,
    /// off-chain and on-chain. The model paid for is per batch (one calldata word instead of one per row).
    struct ExactPayment {
        address from;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    /// @notice A channel state as stored on-chain.
    struct Channel {
        uint128 balance; // deposited - withdrawn - refunded (x402 semantics); unclaimed = balance - totalClaimed
        uint128 totalClaimed; // cumulative claimed (voucher scale)
    }

    // --- events (docs/ARCHITECTURE.md) ---
    /// @notice Every settlement: `amount` gross paid by `payer` for `modelId`, `fee` the protocol's part.
    event PaymentSettled(
        address indexed payer,
        bytes32 indexed modelId,
        uint64 indexed epoch,
        uint256 amount,
        uint256 fee,
        bytes32 requestHash,
        uint32 requestCount
    );
    /// @notice An exact payment row that was not settled: `reason` is the selector of the token's revert
    /// (ERC3009UsedAuthorization: cancelled or used, not attributable; ERC20InsufficientBalance: funds moved;
    /// ERC3009InvalidSignature; ERC3009InvalidAuthorizationTime) or PaymentRouterZeroValue. The batch goes on.
    event PaymentSkipped(address indexed from, bytes32 indexed nonce, bytes4 reason);
    event ChannelDeposited(bytes32 indexed channelId, address indexed payer, uint256 amount);
    event ChannelWithdrawalRequested(bytes32 indexed channelId, address indexed payer, uint64 availableAt);
    event ChannelWithdrawn(bytes32 indexed channelId, address indexed payer, uint256 amount);
    /// @notice Cooperative refund by the receiver authorizer (added to the ARCHITECTURE set).
    event ChannelRefunded(bytes32 indexed channelId, address indexed payer, uint256 amount);
    /// @notice The protocol fee changed.
    event ProtocolFeeUpdated(uint16 oldFeeBps, uint16 newFeeBps);
    /// @notice The fee recipient changed.
    event FeeRecipientUpdated(address indexed oldRecipient, address indexed newRecipient);

    // --- errors ---
    error PaymentRouterZeroValue();
    /// @notice An exact row's token call returned no revert data (out of gas): the whole batch reverts, so a
    /// too-low gas limit cannot make payable rows look failed.
    error PaymentRouterRowOutOfGas(bytes32 nonce);
    /// @notice Fee above the immutable cap (or the cap above the 10% limit).
    error PaymentRouterFeeTooHigh(uint256 feeBps, uint256 maxFeeBps);
    /// @notice `config.receiver` is not this router or `config.token` is not the RewardToken.
    error PaymentRouterInvalidChannel();
    /// @notice `withdrawDelay` outside 15 minutes .. 30 days.
    error PaymentRouterInvalidWithdrawDelay(uint40 withdrawDelay);
    /// @notice The voucher signature does not recover to the payer (or payer authorizer).
    error PaymentRouterInvalidVoucherSignature(bytes32 channelId);
    /// @notice Claimed total above the voucher ceiling or the channel balance, or below the current claimed total.
    error PaymentRouterInvalidClaimAmount(bytes32 channelId, uint256 totalClaimed);
    /// @notice The caller is not the channel's receiver authorizer.
    error PaymentRouterNotReceiverAuthorizer(bytes32 channelId);
    /// @notice The caller is not the channel's payer or payer authorizer.
    error PaymentRouterNotPayer(bytes32 channelId);
    /// @notice The withdrawal amount exceeds the unclaimed balance.
    error PaymentRouterWithdrawTooLarge(bytes32 channelId, uint256 amount, uint256 available);
    /// @notice No withdrawal is pending for the channel.
    error PaymentRouterNoWithdrawal(bytes32 channelId);
    /// @notice The withdrawal delay has not elapsed.
    error PaymentRouterWithdrawNotReady(bytes32 channelId, uint64 availableAt);

    // --- roles ---
    function SETTLER_ROLE() external view returns (bytes32);
    function FEE_MANAGER_ROLE() external view returns (bytes32);
    function PAUSER_ROLE() external view returns (bytes32);

    // --- exact payments ---
    /// @notice Settle one EIP-3009 TransferWithAuthorization (SETTLER_ROLE): `settleExactBatch` of one row.
    function settleExact(ExactPayment calldata payment, bytes32 modelId) external;

    /// @notice Settle many EIP-3009 TransferWithAuthorizations (to = this router) paid for `modelId` in one
    /// transaction (SETTLER_ROLE). Each row emits PaymentSettled (requestHash = nonce, requestCount 1) or PaymentSkipped;
    /// one failing row never reverts the batch. A row already executed at the token by someone else (front-run)
    /// is attributed from the unattributed surplus when its signature is valid for this router.
    function settleExactBatch(ExactPayment[] calldata payments, bytes32 modelId) external;

    /// @notice Channel escrow the router holds (sum over channels of balance - totalClaimed); the router's
    /// token balance above it is unattributed (front-run exact payments not yet settled, or donations).
    function escrowed() external view returns (uint256);

    // --- channels ---
    /// @notice The channel id of `config` (EIP-712 hash under the x402 Batch Settlement domain of this router).
    function channelId(ChannelConfig calldata config) external view returns (bytes32);

    /// @notice EIP-712 digest the payer signs for a voucher.
    function voucherDigest(bytes32 channelId_, uint128 maxClaimableAmount) external view returns (bytes32);

    /// @notice Deposit `amount` (pulled from the caller with transferFrom) into the channel of `config`.
    function deposit(ChannelConfig calldata config, uint128 amount) external returns (bytes32 channelId_);

    /// @notice Deposit with the payer's EIP-3009 ReceiveWithAuthorization (to = this router, value = amount,
    /// nonce = keccak256(abi.encode(channelId, authSalt))); anyone may submit it (gasless for the payer).
    function depositWithAuthorization(
        ChannelConfig calldata config,
        uint128 amount,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 authSalt,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (bytes32 channelId_);

    /// @notice Claim the latest vouchers of many channels (SETTLER_ROLE, and receiver authorizer of every row);
    /// pays the claimed value to the reward pool and the fee recipient in one transfer each.
    function claim(ChannelClaim[] calldata claims) external;

    /// @notice Start a timed withdrawal of up to `amount` unclaimed balance (payer or payer authorizer).
    function initiateWithdraw(ChannelConfig calldata config, uint128 amount) external;

    /// @notice Complete a timed withdrawal after `withdrawDelay` (payer or payer authorizer); pays the payer the
    /// requested amount capped to what is still unclaimed.
    function finalizeWithdraw(ChannelConfig calldata config) external;

    /// @notice Cooperative refund of up to `amount` unclaimed balance to the payer (receiver authorizer).
    function refund(ChannelConfig calldata config, uint128 amount) external;

    /// @notice Channel state.
    function channels(bytes32 channelId_) external view returns (Channel memory);

    /// @notice Pending withdrawal of a channel (`requestedAt == 0`: none).
    function pendingWithdrawal(bytes32 channelId_) external view returns (uint128 amount, uint64 requestedAt);

    // --- fee ---
    /// @notice Immutable cap of the protocol fee, in basis points.
    function MAX_FEE_BPS() external view returns (uint16);

    function feeBps() external view returns (uint16);

    function feeRecipient() external view returns (address);

    /// @notice Set the fee (FEE_MANAGER_ROLE), at most MAX_FEE_BPS. Emits ProtocolFeeUpdated.
    function setFeeBps(uint16 newFeeBps) external;

    /// @notice Set the fee recipient (DEFAULT_ADMIN_ROLE). Emits FeeRecipientUpdated.
    function setFeeRecipient(address newRecipient) external;

    /// @notice Pause settlements, deposits and claims (PAUSER_ROLE). Withdrawals and refunds stay open.
    function pause() external;

    function unpause() external;
}
