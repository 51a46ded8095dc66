// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IRewardDistributor
/// @notice Cairn's epoch reward pool and cumulative Merkle claims.
///
/// Deployment: `new RewardDistributor(token, genesis, length, admin, challengeDelay)`
///   - `token`   the RewardToken (IRewardToken); the distributor must be granted its MINTER_ROLE to mint emission;
///   - `genesis`, `length` the shared epoch clock (unix seconds; identical for every Cairn contract);
///   - `admin`   receives DEFAULT_ADMIN_ROLE only; it then grants PUBLISHER_ROLE (proposes roots), GUARDIAN_ROLE
///               (revokes pending roots) and PAUSER_ROLE (pauses/unpauses claims) to separate keys;
///   - `challengeDelay` seconds between a root's proposal and the moment it can be accepted (1 s .. 30 days).
///
/// Funding: `fundEmission(epoch)` (anyone, once per epoch, while it runs) mints the epoch's remaining emission cap to the
/// distributor; `fundRevenue(amount)` (anyone; the PaymentRouter calls it) pulls tokens from the caller. Both emit
/// `EpochFunded` and raise `totalFunded`; `fundedThrough(epoch)` is what was funded while the clock was at or
/// before `epoch` (a root of `epoch` may promise no more).
///
/// Roots: after epoch `e` has ended, the publisher proposes the cumulative root of epoch `e` (epochs strictly
/// consecutive, starting at the deployment epoch). It becomes acceptable at `validAt = now + challengeDelay`; until
/// then a guardian may revoke it. While it waits the previous root stays claimable. The publisher cannot replace a
/// pending root (so it cannot restart its timer); only a guardian revoke clears it. `acceptRoot()` (anyone) makes a
/// due root current; `proposeRoot` for the next epoch accepts a due pending root first.
///
/// Leaves: OpenZeppelin StandardMerkleTree over `(address account, uint256 cumulativeAmount)`:
/// `leaf = keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))))`, sorted-pair hashing.
interface IRewardDistributor {
    // --- events (docs/ARCHITECTURE.md) ---
    /// @notice `amount` entered the reward pool during `epoch`; `source` 0 = emission (from = address(0)),
    /// 1 = revenue (from = the payer of the tokens, normally the PaymentRouter).
    event EpochFunded(uint64 indexed epoch, address indexed from, uint256 amount, uint8 source);
    /// @notice A root for `epoch` was proposed; claimable once accepted, not before `validAt`.
    event RootProposed(
        uint64 indexed epoch, bytes32 indexed root, bytes32 policyHash, uint256 totalCumulative, uint64 validAt, string uri
    );
    /// @notice A guardian revoked the pending root of `epoch`.
    event RootRevoked(uint64 indexed epoch, bytes32 indexed root, address indexed guardian);
    /// @notice The pending root of `epoch` became the claimable root.
    event RootAccepted(uint64 indexed epoch, bytes32 indexed root);
    /// @notice `account` received `amount`; its claimed total is now `cumulativeAmount`. `caller` sent the tx.
    event Claimed(address indexed account, address indexed caller, uint256 amount, uint256 cumulativeAmount);
    /// @notice `claimForBatch` skipped `account`, which had already claimed `alreadyClaimed >= cumulativeAmount`.
    event ClaimSkipped(address indexed account, uint256 cumulativeAmount, uint256 alreadyClaimed);

    // --- errors ---
    /// @notice The proof does not prove `(account, cumulativeAmount)` under the current root.
    error RewardDistributorInvalidProof();
    /// @notice `cumulativeAmount` is not above what `account` has already claimed.
    error RewardDistributorNothingToClaim(address account, uint256 cumulativeAmount, uint256 alreadyClaimed);
    /// @notice No root has been accepted yet.
    error RewardDistributorNoRoot();
    /// @notice Batch accounts must be strictly increasing (rejects duplicates); `index` is the first offender.
    error RewardDistributorUnsortedAccounts(uint256 index);
    /// @notice Batch arrays have different lengths.
    error RewardDistributorLengthMismatch();
    /// @notice Roots are only for consecutive epochs: `expected` is the next one.
    error RewardDistributorNotNextEpoch(uint64 epoch, uint64 expected);
    /// @notice Roots are only for ended epochs.
    error RewardDistributorEpochNotEnded(uint64 epoch);
    /// @notice A root is pending (not yet due): it cannot be replaced, only revoked by a guardian.
    error RewardDistributorRootPending(uint64 epoch, uint64 validAt);
    /// @notice There is no pending root.
    error RewardDistributorNoPendingRoot();
    /// @notice The pending root is not acceptable before `validAt`.
    error RewardDistributorRootNotDue(uint64 validAt);
    /// @notice The challenge delay has passed: the pending root can no longer be revoked.
    error RewardDistributorRevokeTooLate(uint64 validAt);
    /// @notice A zero root.
    error RewardDistributorZeroRoot();
    /// @notice A root's total exceeds what was funded up to its epoch's end (`funded = fundedThrough(epoch)`).
    error RewardDistributorExceedsFunded(uint256 totalCumulative, uint256 funded);
    /// @notice Emission for `epoch` was already minted, or the epoch is not running (not started or ended).
    error RewardDistributorEmissionUnavailable(uint64 epoch);
    /// @notice Zero address or zero amount.
    error RewardDistributorZeroValue();
    /// @notice Challenge delay out of range.
    error RewardDistributorInvalidDelay();
    /// @notice The token does not name this contract as its DISTRIBUTOR (the claim ledger lives in the token).
    error RewardDistributorNotTokenDistributor(address token);

    // --- roles ---
    function PUBLISHER_ROLE() external view returns (bytes32);
    function GUARDIAN_ROLE() external view returns (bytes32);
    function PAUSER_ROLE() external view returns (bytes32);

    // --- funding ---
    /// @notice Mint epoch `epoch`'s remaining emission cap to the pool (anyone; while the epoch runs). Reverts with
    /// RewardDistributorEmissionUnavailable before the epoch starts, after it ends (the pool is read up to the
    /// epoch's end block) or once its cap is minted (so: once per epoch).
    /// Call it at the start of each epoch so the epoch's pool is known when its root is built.
    /// @return amount minted.
    function fundEmission(uint64 epoch) external returns (uint256 amount);

    /// @notice Pull `amount` tokens from the caller into the current epoch's pool (revenue, source 1).
    function fundRevenue(uint256 amount) external;

    // --- roots ---
    /// @notice Propose the cumulative root of ended epoch `epoch` (PUBLISHER_ROLE). `totalCumulative` is the sum
    /// of all leaves (must not exceed `fundedThrough(epoch)`); `policyHash` identifies the reward policy; `uri` locates the
    /// full allocation (leaves and proofs).
    function proposeRoot(bytes32 root, uint64 epoch, bytes32 policyHash, uint256 totalCumulative, string calldata uri)
        external;

    /// @notice Revoke the pending root before it is due (GUARDIAN_ROLE).
    function revokeRoot() external;

    /// @notice Make the pending root current once due (anyone).
    function acceptRoot() external;

    /// @notice The accepted root, its epoch and when it became valid (zero root if none accepted yet). Reported
    /// even while paused (claims then revert with Pausable's EnforcedPause).
    function root() external view returns (bytes32 root, uint64 epoch, uint64 validAt);

    /// @notice The pending root, its epoch and due time (`validAt == 0`: none pending).
    function pendingRoot() external view returns (bytes32 root, uint64 epoch, uint64 validAt);

    /// @notice The epoch the next proposal must be for.
    function nextEpoch() external view returns (uint64);

    // --- claims ---
    /// @notice Claim for the caller: pays `cumulativeAmount - claimed(msg.sender)` to the caller.
    function claim(uint256 cumulativeAmount, bytes32[] calldata proof) external returns (uint256 amount);

    /// @notice Claim on behalf of `account` (anyone may call); the tokens go to `account` only.
    function claimFor(address account, uint256 cumulativeAmount, bytes32[] calldata proof)
        external
        returns (uint256 amount);

    /// @notice Relayed batch: `accounts` strictly increasing (no duplicates); tokens go to each account. An
    /// account that has already claimed its cumulative amount (e.g. a front-run `claimFor`) is skipped with
    /// `ClaimSkipped`, so nobody can make the batch revert for the others; an invalid proof still reverts.
    function claimForBatch(address[] calldata accounts, uint256[] calldata cumulativeAmounts, bytes32[][] calldata proofs)
        external
        returns (uint256 total);

    /// @notice Cumulative amount already paid to `account`.
    function claimed(address account) external view returns (uint256);

    /// @notice Everything ever funded (emission + revenue).
    function totalFunded() external view returns (uint256);

    /// @notice What was funded while the epoch clock was at or before `epoch` (emission is funded only during
    /// its own epoch, revenue counts for the epoch it arrives in).
    function fundedThrough(uint64 epoch) external view returns (uint256);

    /// @notice Seconds between a proposal and its acceptance.
    function challengeDelay() external view returns (uint64);

    /// @notice Pause / unpause claims (PAUSER_ROLE). Funding and root management continue while paused.
    function pause() external;

    function unpause() external;
}
