// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC3009} from "@openzeppelin/contracts/token/ERC20/extensions/draft-ERC3009.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EpochClock} from "./EpochClock.sol";
import {IRewardToken} from "./interfaces/IRewardToken.sol";

/// @title RewardToken
/// @notice Cairn's ERC-20 with EIP-2612 permit, EIP-3009 authorizations (what x402 `exact` clients sign) and an
/// emission schedule enforced on-chain.
/// @dev EIP-712 domain: name = token name, version "1", chain id, this contract (rebuilt if the chain id changes).
/// EIP-3009 follows OpenZeppelin's ERC3009 (FiatTokenV2 semantics: random nonces, strict validity window), with
/// every signature checked by SignatureChecker, so contract wallets (EIP-1271) can authorize too, like FiatTokenV2_2.
///
/// Storage: one word per account, `balance (bits 0..127) | claimedCumulative (bits 128..255)`. The second field is
/// the RewardDistributor's claim ledger, kept here so that a claim reads and writes the account's single word
/// instead of a separate "claimed" slot in the distributor (a fresh 22.1k-gas slot on a first claim, 5k later).
/// Total supply is capped at 2^128 - 1, so every balance fits its 128 bits. OpenZeppelin's `_balances` and
/// `_totalSupply` are never used: `_update`, `balanceOf` and `totalSupply` are overridden.
contract RewardToken is IRewardToken, ERC20Permit, ERC3009, AccessControl, EpochClock {
    uint256 private constant _BPS = 10_000;
    uint256 private constant _RAY = 1e27;
    uint256 private constant _BALANCE_MASK = type(uint128).max;
    uint256 private constant _CLAIMED_SHIFT = 128;

    /// @inheritdoc IRewardToken
    address public immutable DISTRIBUTOR;

    uint256 private immutable _INITIAL_EPOCH_CAP;
    uint16 private immutable _DECAY_BPS;
    /// @dev `(10000 - decayBps) / 10000` in ray (27 decimals).
    uint256 private immutable _RETAIN_RAY;

    mapping(uint64 epoch => uint256 minted) private _mintedInEpoch;
    /// @dev `balance | claimedCumulative << 128` per account (see the contract's NatSpec).
    mapping(address account => uint256 word) private _accounts;
    uint256 private _supply;
    /// @dev EIP-3009 nonce state, in place of OpenZeppelin ERC3009's bool mapping (same one storage write per
    /// use): 0 unused, CANCELLED, or the EIP-712 digest of the authorization that used it. The PaymentRouter
    /// reads it to tell a payment front-run straight to the token from a cancelled or different authorization.
    mapping(address authorizer => mapping(bytes32 nonce => bytes32 use)) private _authorizations;
    bytes32 private constant _CANCELLED = bytes32(uint256(1));

    /// @param name_ Token name (also the EIP-712 domain name).
    /// @param symbol_ Token symbol.
    /// @param admin Holder of DEFAULT_ADMIN_ROLE (no role of this token mints: only DISTRIBUTOR does).
    /// @param genesis_ Epoch clock genesis (unix seconds).
    /// @param epochLength_ Epoch clock length (seconds).
    /// @param initialEpochCap_ Cap of epoch 0, at most 2^128.
    /// @param decayBps_ Decay of the cap per epoch in basis points, at most 10000.
    /// @param distributor_ The RewardDistributor (the only caller of `payClaim`); deployed after this token, so
    /// its address is predicted (the distributor's constructor checks that it is the one named here).
    constructor(
        string memory name_,
        string memory symbol_,
        address admin,
        uint64 genesis_,
        uint64 epochLength_,
        uint256 initialEpochCap_,
        uint16 decayBps_,
        address distributor_
    ) ERC20(name_, symbol_) ERC20Permit(name_) EpochClock(genesis_, epochLength_) {
        if (decayBps_ > _BPS || initialEpochCap_ > type(uint128).max) revert RewardTokenInvalidSchedule();
        if (distributor_ == address(0)) revert RewardTokenZeroDistributor();
        DISTRIBUTOR = distributor_;
        _INITIAL_EPOCH_CAP = initialEpochCap_;
        _DECAY_BPS = decayBps_;
        _RETAIN_RAY = (_BPS - decayBps_) * (_RAY / _BPS);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // --- emission ---------------------------------------------------------------------------------------

    /// @inheritdoc IRewardToken
    function mintEmission(uint64 epoch, address to, uint256 amount) external {
        if (msg.sender != DISTRIBUTOR) revert RewardTokenNotDistributor(msg.sender);
        if (to == address(0) || amount == 0) revert RewardTokenInvalidMint();
        if (!hasStarted(epoch)) revert RewardTokenEpochNotStarted(epoch);
        // An epoch's unminted cap expires with the epoch: nobody can mint a skipped past epoch later.
        if (hasEnded(epoch)) revert RewardTokenEpochEnded(epoch);
        uint256 cap = emissionCap(epoch);
        uint256 minted = _mintedInEpoch[epoch];
        // `minted <= cap` is an invariant of this function, so `cap - minted` cannot underflow.
        uint256 available;
        unchecked {
            available = cap - minted;
        }
        if (amount > available) revert RewardTokenEmissionCapExceeded(epoch, amount, available);
        // `minted + amount <= cap <= 2^128`: no overflow.
        unchecked {
            _mintedInEpoch[epoch] = minted + amount;
        }
        _mint(to, amount);
        emit EmissionMinted(epoch, to, amount);
    }

    /// @inheritdoc IRewardToken
    function emissionCap(uint64 epoch) public view returns (uint256) {
        return (_INITIAL_EPOCH_CAP * _rpow(_RETAIN_RAY, epoch)) / _RAY;
    }

    /// @inheritdoc IRewardToken
    function mintedInEpoch(uint64 epoch) external view returns (uint256) {
        return _mintedInEpoch[epoch];
    }

    /// @inheritdoc IRewardToken
    function initialEpochCap() external view returns (uint256) {
        return _INITIAL_EPOCH_CAP;
    }

    /// @inheritdoc IRewardToken
    function decayBps() external view returns (uint16) {
        return _DECAY_BPS;
    }

    /// @dev `x^n` in ray fixed point, rounding down at every step (deterministic). `x <= 1 ray`, so every
    /// intermediate product is below 1e54 and checked arithmetic never reverts.
    function _rpow(uint256 x, uint256 n) private pure returns (uint256 z) {
        z = _RAY;
        while (n != 0) {
            if (n & 1 != 0) z = (z * x) / _RAY;
            n >>= 1;
            if (n != 0) x = (x * x) / _RAY;
            if (x == 0) return n == 0 ? z : 0;
        }
    }

    // --- balances and the claim ledger -------------------------------------------------------------------

    /// @inheritdoc ERC20
    function totalSupply() public view override returns (uint256) {
        return _supply;
    }

    /// @inheritdoc ERC20
    function balanceOf(address account) public view override returns (uint256) {
        return _accounts[account] & _BALANCE_MASK;
    }

    /// @inheritdoc IRewardToken
    function claimedOf(address account) external view returns (uint256) {
        return _accounts[account] >> _CLAIMED_SHIFT;
    }

    /// @inheritdoc IRewardToken
    function payClaim(address account, uint256 cumulativeAmount) external returns (uint256 previous) {
        address distributor = DISTRIBUTOR;
        if (msg.sender != distributor) revert RewardTokenNotDistributor(msg.sender);
        if (account == address(0) || account == distributor) revert ERC20InvalidReceiver(account);
        uint256 word = _accounts[account];
        previous = word >> _CLAIMED_SHIFT;
        if (cumulativeAmount <= previous) return previous; // nothing owed: the distributor reverts
        if (cumulativeAmount > _BALANCE_MASK) revert RewardTokenClaimTooLarge(cumulativeAmount);
        uint256 amount;
        // Cannot underflow: cumulativeAmount > previous.
        unchecked {
            amount = cumulativeAmount - previous;
        }
        uint256 dword = _accounts[distributor];
        uint256 dbalance = dword & _BALANCE_MASK;
        if (dbalance < amount) revert ERC20InsufficientBalance(distributor, dbalance, amount);
        // `dword - amount` only lowers the balance field (dbalance >= amount). The account's new balance is at
        // most the total supply (< 2^128) and cumulativeAmount < 2^128, so both fields fit their bits.
        unchecked {
            _accounts[distributor] = dword - amount;
            _accounts[account] = (cumulativeAmount << _CLAIMED_SHIFT) | ((word & _BALANCE_MASK) + amount);
        }
        emit Transfer(distributor, account, amount);
    }

    /// @dev OpenZeppelin's `_update` on the packed account words (same checks, errors and event).
    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0)) {
            uint256 supply = _supply + value;
            if (supply > _BALANCE_MASK) revert RewardTokenSupplyOverflow(supply);
            _supply = supply;
        } else {
            uint256 word = _accounts[from];
            uint256 balance = word & _BALANCE_MASK;
            if (balance < value) revert ERC20InsufficientBalance(from, balance, value);
            // Only the balance field changes: balance >= value.
            unchecked {
                _accounts[from] = word - value;
            }
        }
        if (to == address(0)) {
            // value <= balance of `from` <= total supply.
            unchecked {
                _supply -= value;
            }
        } else {
            // balance + value <= total supply < 2^128: no carry into the claimed field.
            unchecked {
                _accounts[to] += value;
            }
        }
        emit Transfer(from, to, value);
    }

    // --- EIP-3009 -----------------------------------------------------------------------------------------

    /// @notice EIP-3009 `transferWithAuthorization` (v, r, s); an EIP-1271 wallet gets `abi.encodePacked(r, s, v)`.
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) public override {
        bytes32 digest =
            _transferDigest(TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce);
        _checkSignerVRS(from, digest, v, r, s);
        _useAuthorization(from, to, value, validAfter, validBefore, nonce, digest);
    }

    /// @inheritdoc IRewardToken
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external {
        bytes32 digest =
            _transferDigest(TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce);
        _checkSigner(from, digest, signature);
        _useAuthorization(from, to, value, validAfter, validBefore, nonce, digest);
    }

    /// @notice EIP-3009 `receiveWithAuthorization` (v, r, s): the caller must be `to`.
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) public override {
        if (to != _msgSender()) revert ERC20InvalidReceiver(to);
        bytes32 digest =
            _transferDigest(RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce);
        _checkSignerVRS(from, digest, v, r, s);
        _useAuthorization(from, to, value, validAfter, validBefore, nonce, digest);
    }

    /// @inheritdoc IRewardToken
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external {
        if (to != _msgSender()) revert ERC20InvalidReceiver(to);
        bytes32 digest =
            _transferDigest(RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce);
        _checkSigner(from, digest, signature);
        _useAuthorization(from, to, value, validAfter, validBefore, nonce, digest);
    }

    /// @notice EIP-3009 `cancelAuthorization` (v, r, s).
    function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) public override {
        _checkSignerVRS(authorizer, _cancelDigest(authorizer, nonce), v, r, s);
        _cancelAuthorization(authorizer, nonce);
    }

    /// @inheritdoc IRewardToken
    function cancelAuthorization(address authorizer, bytes32 nonce, bytes calldata signature) external {
        _checkSigner(authorizer, _cancelDigest(authorizer, nonce), signature);
        _cancelAuthorization(authorizer, nonce);
    }

    /// @notice EIP-3009 nonce state: used (by an authorization or a cancellation) or not.
    function authorizationState(address authorizer, bytes32 nonce) public view override returns (bool) {
        return _authorizations[authorizer][nonce] != bytes32(0);
    }

    /// @inheritdoc IRewardToken
    function authorizationDigest(address authorizer, bytes32 nonce) external view returns (bytes32) {
        return _authorizations[authorizer][nonce];
    }

    /// @dev OpenZeppelin's `_transferWithAuthorization` (window, nonce, event, transfer), recording the digest of
    /// the authorization that used the nonce.
    function _useAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes32 digest
    ) private {
        _checkValidity(validAfter, validBefore);
        if (_authorizations[from][nonce] != bytes32(0)) revert ERC3009UsedAuthorization(from, nonce);
        _authorizations[from][nonce] = digest;
        emit AuthorizationUsed(from, nonce);
        _transfer(from, to, value);
    }

    /// @dev OpenZeppelin's `_cancelAuthorization` on this token's nonce state.
    function _cancelAuthorization(address authorizer, bytes32 nonce) internal override {
        if (_authorizations[authorizer][nonce] != bytes32(0)) revert ERC3009UsedAuthorization(authorizer, nonce);
        _authorizations[authorizer][nonce] = _CANCELLED;
        emit AuthorizationCanceled(authorizer, nonce);
    }

    function _transferDigest(
        bytes32 typehash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce
    ) private view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(typehash, from, to, value, validAfter, validBefore, nonce)));
    }

    function _cancelDigest(address authorizer, bytes32 nonce) private view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(CANCEL_AUTHORIZATION_TYPEHASH, authorizer, nonce)));
    }

    /// @dev (v, r, s): ECDSA first (low-s only), EIP-1271 only when that does not recover the signer and the
    /// signer has code; saves an account access (EXTCODESIZE) per EOA signature, e.g. per settled x402 payment.
    function _checkSignerVRS(address signer, bytes32 digest, uint8 v, bytes32 r, bytes32 s) private view {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, v, r, s);
        if (err == ECDSA.RecoverError.NoError && recovered == signer) return;
        if (signer.code.length == 0 || !SignatureChecker.isValidERC1271SignatureNow(signer, digest, abi.encodePacked(r, s, v))) {
            revert ERC3009InvalidSignature();
        }
    }

    /// @dev ECDSA (low-s only) for EOAs, EIP-1271 for contracts.
    function _checkSigner(address signer, bytes32 digest, bytes memory signature) private view {
        if (!SignatureChecker.isValidSignatureNow(signer, digest, signature)) revert ERC3009InvalidSignature();
    }
}
