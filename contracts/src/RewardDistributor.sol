// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EpochClock} from "./EpochClock.sol";
import {IRewardToken} from "./interfaces/IRewardToken.sol";
import {IRewardDistributor} from "./interfaces/IRewardDistributor.sol";

/// @title RewardDistributor
/// @notice Epoch reward pool (emission + inference revenue) paid out through cumulative Merkle claims.
/// @dev Gas design (see contracts/SECURITY.md): a claim reads one root slot here; the claimed cumulative lives in
/// the account's word in the token (`RewardToken.payClaim`), so paying and recording a claim is one write of the
/// account's word plus the distributor's balance. Pausing zeroes the "live" root that claims read, so the pause
/// check costs nothing on the hot path. A proposal writes two slots (pending root, packed root state).
contract RewardDistributor is IRewardDistributor, AccessControl, Pausable, EpochClock {
    using SafeERC20 for IERC20;

    bytes32 public constant PUBLISHER_ROLE = keccak256("PUBLISHER_ROLE");
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    /// @notice Longest allowed challenge delay.
    uint64 public constant MAX_CHALLENGE_DELAY = 30 days;

    /// @dev Packed root bookkeeping: one slot.
    struct RootState {
        uint64 rootEpoch; // epoch of the accepted root
        uint64 rootValidAt; // when the accepted root became valid (0: no root accepted yet)
        uint64 pendingEpoch; // epoch of the pending root
        uint64 pendingValidAt; // when the pending root becomes acceptable (0: nothing pending)
    }

    IRewardToken public immutable TOKEN;
    uint64 private immutable _CHALLENGE_DELAY;
    /// @notice The first epoch a root may be proposed for (the epoch of deployment).
    uint64 public immutable FIRST_EPOCH;

    /// @dev The root claims verify against: the accepted root, or zero while paused.
    bytes32 private _liveRoot;
    bytes32 private _acceptedRoot;
    bytes32 private _pendingRoot;
    RootState private _state;
    /// @dev Running funded total and the epoch of the last funding, one slot (192 bits cannot overflow: every
    /// funding is of tokens whose supply is below 2^128).
    struct Funding {
        uint192 total;
        uint64 lastEpoch;
    }

    Funding private _funding;
    /// @dev `1 + total funded before the first funding of epoch e` (0: epoch e had no funding, or not yet), written
    /// once per epoch that receives funds: what `fundedThrough(e - 1)` reads once later epochs were funded.
    mapping(uint64 epoch => uint256 fundedBeforePlusOne) private _fundedBefore;

    /// @param token_ the RewardToken, which must name this contract as its DISTRIBUTOR (its only minter).
    /// @param genesis_ epoch clock genesis (unix seconds).
    /// @param length_ epoch length (seconds).
    /// @param admin receives DEFAULT_ADMIN_ROLE only.
    /// @param challengeDelay_ seconds between proposal and acceptance, 1 .. 30 days.
    constructor(address token_, uint64 genesis_, uint64 length_, address admin, uint64 challengeDelay_)
        EpochClock(genesis_, length_)
    {
        if (token_ == address(0) || admin == address(0)) revert RewardDistributorZeroValue();
        if (challengeDelay_ == 0 || challengeDelay_ > MAX_CHALLENGE_DELAY) revert RewardDistributorInvalidDelay();
        if (IRewardToken(token_).DISTRIBUTOR() != address(this)) revert RewardDistributorNotTokenDistributor(token_);
        TOKEN = IRewardToken(token_);
        _CHALLENGE_DELAY = challengeDelay_;
        FIRST_EPOCH = currentEpoch();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ------------------------------------------------------------------------------------------------ funding

    /// @inheritdoc IRewardDistributor
    function fundEmission(uint64 epoch) external returns (uint256 amount) {
        // Only while the epoch runs: its pool is read up to its end block, so emission minted later would sit in
        // the distributor outside every allocation.
        if (!hasStarted(epoch) || hasEnded(epoch)) revert RewardDistributorEmissionUnavailable(epoch);
        amount = TOKEN.emissionCap(epoch) - TOKEN.mintedInEpoch(epoch);
        if (amount == 0) revert RewardDistributorEmissionUnavailable(epoch);
        _addFunding(epoch, amount);
        TOKEN.mintEmission(epoch, address(this), amount);
        emit EpochFunded(epoch, address(0), amount, 0);
    }

    /// @inheritdoc IRewardDistributor
    function fundRevenue(uint256 amount) external {
        if (amount == 0) revert RewardDistributorZeroValue();
        uint64 epoch = currentEpoch();
        _addFunding(epoch, amount);
        IERC20(address(TOKEN)).safeTransferFrom(msg.sender, address(this), amount);
        emit EpochFunded(epoch, msg.sender, amount, 1);
    }

    /// @dev Adds `amount` funded in the running epoch `epoch`; the first funding of an epoch checkpoints the total
    /// before it (one fresh slot per funded epoch).
    function _addFunding(uint64 epoch, uint256 amount) private {
        Funding memory f = _funding;
        if (epoch != f.lastEpoch || f.total == 0) {
            // Cannot overflow: total < 2^192 (see Funding).
            unchecked {
                _fundedBefore[epoch] = uint256(f.total) + 1;
            }
            f.lastEpoch = epoch;
        }
        f.total += uint192(amount);
        _funding = f;
    }

    // ------------------------------------------------------------------------------------------------ roots

    /// @inheritdoc IRewardDistributor
    function proposeRoot(bytes32 newRoot, uint64 epoch, bytes32 policyHash, uint256 totalCumulative, string calldata uri)
        external
        onlyRole(PUBLISHER_ROLE)
    {
        if (newRoot == bytes32(0)) revert RewardDistributorZeroRoot();
        RootState memory s = _state;
        if (s.pendingValidAt != 0) {
            // A pending root cannot be replaced (its timer cannot be reset); a due one is accepted first.
            if (block.timestamp < s.pendingValidAt) revert RewardDistributorRootPending(s.pendingEpoch, s.pendingValidAt);
            _accept(s);
        }
        uint64 expected = s.rootValidAt == 0 ? FIRST_EPOCH : s.rootEpoch + 1;
        if (epoch != expected) revert RewardDistributorNotNextEpoch(epoch, expected);
        if (!hasEnded(epoch)) revert RewardDistributorEpochNotEnded(epoch);
        uint256 funded = fundedThrough(epoch);
        if (totalCumulative > funded) revert RewardDistributorExceedsFunded(totalCumulative, funded);
        // Cannot overflow: block.timestamp < 2^64 for billions of years and the delay is at most 30 days.
        uint64 validAt = uint64(block.timestamp) + _CHALLENGE_DELAY;
        _pendingRoot = newRoot;
        s.pendingEpoch = epoch;
        s.pendingValidAt = validAt;
        _state = s;
        emit RootProposed(epoch, newRoot, policyHash, totalCumulative, validAt, uri);
    }

    /// @inheritdoc IRewardDistributor
    function revokeRoot() external onlyRole(GUARDIAN_ROLE) {
        RootState memory s = _state;
        if (s.pendingValidAt == 0) revert RewardDistributorNoPendingRoot();
        if (block.timestamp >= s.pendingValidAt) revert RewardDistributorRevokeTooLate(s.pendingValidAt);
        bytes32 revoked = _pendingRoot;
        _state.pendingValidAt = 0;
        emit RootRevoked(s.pendingEpoch, revoked, msg.sender);
    }

    /// @inheritdoc IRewardDistributor
    function acceptRoot() external {
        RootState memory s = _state;
        if (s.pendingValidAt == 0) revert RewardDistributorNoPendingRoot();
        if (block.timestamp < s.pendingValidAt) revert RewardDistributorRootNotDue(s.pendingValidAt);
        _accept(s);
        _state = s;
    }

    /// @dev Makes the (due) pending root current; updates `s` in memory, the caller stores it.
    function _accept(RootState memory s) private {
        bytes32 r = _pendingRoot;
        _acceptedRoot = r;
        if (!paused()) _liveRoot = r;
        s.rootEpoch = s.pendingEpoch;
        s.rootValidAt = s.pendingValidAt;
        s.pendingValidAt = 0;
        emit RootAccepted(s.rootEpoch, r);
    }

    /// @inheritdoc IRewardDistributor
    function root() external view returns (bytes32, uint64, uint64) {
        RootState memory s = _state;
        return (_acceptedRoot, s.rootEpoch, s.rootValidAt);
    }

    /// @inheritdoc IRewardDistributor
    function pendingRoot() external view returns (bytes32, uint64, uint64) {
        RootState memory s = _state;
        if (s.pendingValidAt == 0) return (bytes32(0), 0, 0);
        return (_pendingRoot, s.pendingEpoch, s.pendingValidAt);
    }

    /// @inheritdoc IRewardDistributor
    function nextEpoch() external view returns (uint64) {
        RootState memory s = _state;
        if (s.pendingValidAt != 0 && block.timestamp >= s.pendingValidAt) return s.pendingEpoch + 1;
        return s.rootValidAt == 0 ? FIRST_EPOCH : s.rootEpoch + 1;
    }

    // ------------------------------------------------------------------------------------------------ claims

    /// @inheritdoc IRewardDistributor
    function claim(uint256 cumulativeAmount, bytes32[] calldata proof) external returns (uint256) {
        return _claim(_claimRoot(), msg.sender, cumulativeAmount, proof, false);
    }

    /// @inheritdoc IRewardDistributor
    function claimFor(address account, uint256 cumulativeAmount, bytes32[] calldata proof)
        external
        returns (uint256)
    {
        return _claim(_claimRoot(), account, cumulativeAmount, proof, false);
    }

    /// @inheritdoc IRewardDistributor
    function claimForBatch(address[] calldata accounts, uint256[] calldata cumulativeAmounts, bytes32[][] calldata proofs)
        external
        returns (uint256 total)
    {
        uint256 n = accounts.length;
        if (cumulativeAmounts.length != n || proofs.length != n) revert RewardDistributorLengthMismatch();
        bytes32 r = _claimRoot();
        address prev;
        for (uint256 i; i < n; ++i) {
            address account = accounts[i];
            // Strictly increasing: no account twice in one batch (Level Finance, 2023). Index 0 compares with
            // address(0), which no real claimant is.
            if (account <= prev) revert RewardDistributorUnsortedAccounts(i);
            prev = account;
            total += _claim(r, account, cumulativeAmounts[i], proofs[i], true);
        }
    }

    /// @inheritdoc IRewardDistributor
    function claimed(address account) external view returns (uint256) {
        return TOKEN.claimedOf(account);
    }

    /// @inheritdoc IRewardDistributor
    function totalFunded() external view returns (uint256) {
        return _funding.total;
    }

    /// @inheritdoc IRewardDistributor
    function fundedThrough(uint64 epoch) public view returns (uint256 funded) {
        Funding memory f = _funding;
        if (f.lastEpoch <= epoch) return f.total;
        // Some later epoch was funded: the total before the first funded epoch after `epoch`. Normally that is
        // `epoch + 1` (the keeper funds every epoch's emission); the loop only walks epochs that received nothing,
        // and stops at `lastEpoch`, whose checkpoint is always written.
        uint64 e = epoch;
        do {
            ++e;
            funded = _fundedBefore[e];
        } while (funded == 0);
        // Cannot underflow: the loop stopped at a non-zero checkpoint (stored as total + 1).
        unchecked {
            funded -= 1;
        }
    }

    /// @inheritdoc IRewardDistributor
    function challengeDelay() external view returns (uint64) {
        return _CHALLENGE_DELAY;
    }

    function _claimRoot() private view returns (bytes32 r) {
        r = _liveRoot;
        if (r == bytes32(0)) {
            _requireNotPaused();
            revert RewardDistributorNoRoot();
        }
    }

    /// @dev `skipClaimed`: emit `ClaimSkipped` and return 0 instead of reverting when nothing is owed.
    function _claim(bytes32 r, address account, uint256 cumulativeAmount, bytes32[] calldata proof, bool skipClaimed)
        private
        returns (uint256 amount)
    {
        bytes32 leaf;
        assembly ("memory-safe") {
            // keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount)))) in scratch space.
            mstore(0x00, account)
            mstore(0x20, cumulativeAmount)
            mstore(0x00, keccak256(0x00, 0x40))
            leaf := keccak256(0x00, 0x20)
        }
        if (!_verify(proof, r, leaf)) revert RewardDistributorInvalidProof();
        // The token (immutable, Cairn's own, no hooks) records the claim and moves the tokens in one step; it
        // changes nothing when nothing is owed, and this call then reverts.
        uint256 already = TOKEN.payClaim(account, cumulativeAmount);
        if (cumulativeAmount <= already) {
            if (!skipClaimed) revert RewardDistributorNothingToClaim(account, cumulativeAmount, already);
            emit ClaimSkipped(account, cumulativeAmount, already);
            return 0;
        }
        // Cannot underflow: checked just above.
        unchecked {
            amount = cumulativeAmount - already;
        }
        emit Claimed(account, msg.sender, amount, cumulativeAmount);
    }

    /// @dev OpenZeppelin `MerkleProof.verifyCalldata` with sorted-pair hashing (`Hashes.commutativeKeccak256`),
    /// as a branchless loop over scratch space: the smaller hash goes first. The ABI decoder has already checked
    /// that `proof` lies inside calldata, so `proof.offset + 32 * proof.length` cannot overflow.
    function _verify(bytes32[] calldata proof, bytes32 r, bytes32 leaf) private pure returns (bool ok) {
        assembly ("memory-safe") {
            let end := add(proof.offset, shl(5, proof.length))
            for { let p := proof.offset } lt(p, end) { p := add(p, 0x20) } {
                let sibling := calldataload(p)
                let first := shl(5, gt(leaf, sibling)) // 0x20 when leaf > sibling: sibling goes first
                mstore(first, leaf)
                mstore(xor(first, 0x20), sibling)
                leaf := keccak256(0x00, 0x40)
            }
            ok := eq(leaf, r)
        }
    }

    // ------------------------------------------------------------------------------------------------ pause

    /// @inheritdoc IRewardDistributor
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
        _liveRoot = bytes32(0);
    }

    /// @inheritdoc IRewardDistributor
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
        _liveRoot = _acceptedRoot;
    }
}
