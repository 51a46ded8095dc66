// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IRewardToken
/// @notice Cairn's ERC-20: EIP-2612 permit, EIP-3009 transfer/receive/cancel authorizations (FiatTokenV2
/// semantics: random `bytes32` nonces, `validAfter < now < validBefore`), and an on-chain emission schedule.
/// @dev Emission: `cap(e) = initialEpochCap * ((10000 - decayBps) / 10000)^e` (computed in 27-decimal fixed point,
/// rounded down). Only the immutable DISTRIBUTOR mints (no role can be granted to mint), only while the epoch
/// runs (its unminted cap expires with it), and `mintedInEpoch(e) <= cap(e)` always, so total supply never
/// exceeds the sum of the caps of started epochs.
interface IRewardToken {
    /// @notice `amount` new tokens were minted to `to` against epoch `epoch`'s emission cap.
    event EmissionMinted(uint64 indexed epoch, address indexed to, uint256 amount);

    /// @notice The epoch has not started yet, so nothing can be minted for it.
    error RewardTokenEpochNotStarted(uint64 epoch);
    /// @notice The epoch has ended: its unminted cap has expired.
    error RewardTokenEpochEnded(uint64 epoch);
    /// @notice Minting `requested` would exceed the epoch's cap; `available` is what is left.
    error RewardTokenEmissionCapExceeded(uint64 epoch, uint256 requested, uint256 available);
    /// @notice Constructor parameter out of range (decay above 10000 bps or an initial cap above 2^128).
    error RewardTokenInvalidSchedule();
    /// @notice Zero recipient or zero amount.
    error RewardTokenInvalidMint();
    /// @notice The constructor was given no distributor.
    error RewardTokenZeroDistributor();
    /// @notice Only the RewardDistributor may pay claims and mint emission.
    error RewardTokenNotDistributor(address caller);
    /// @notice A cumulative claim amount at or above 2^128 (more than the supply can ever be).
    error RewardTokenClaimTooLarge(uint256 cumulativeAmount);
    /// @notice Minting would take the total supply to 2^128 or above.
    error RewardTokenSupplyOverflow(uint256 supply);

    /// @notice The RewardDistributor, the only caller of `payClaim` (immutable).
    function DISTRIBUTOR() external view returns (address);

    /// @notice The claim ledger of the RewardDistributor: `account`'s claimed cumulative amount.
    function claimedOf(address account) external view returns (uint256);

    /// @notice Pay a verified cumulative claim (DISTRIBUTOR only): moves `cumulativeAmount - claimedOf(account)`
    /// from the distributor's balance to `account` (one `Transfer` event) and records `cumulativeAmount` as
    /// claimed. Changes nothing when `cumulativeAmount <= claimedOf(account)`.
    /// @return previous the claimed cumulative amount before this call.
    function payClaim(address account, uint256 cumulativeAmount) external returns (uint256 previous);

    /// @notice Mint `amount` to `to` for the running epoch `epoch` (DISTRIBUTOR only).
    function mintEmission(uint64 epoch, address to, uint256 amount) external;

    /// @notice The emission cap of epoch `epoch`.
    function emissionCap(uint64 epoch) external view returns (uint256);

    /// @notice How much has been minted for `epoch` so far (`<= emissionCap(epoch)`).
    function mintedInEpoch(uint64 epoch) external view returns (uint256);

    /// @notice Cap of epoch 0.
    function initialEpochCap() external view returns (uint256);

    /// @notice Decay of the cap per epoch, in basis points (0..10000).
    function decayBps() external view returns (uint16);

    /// @notice EIP-3009 `transferWithAuthorization` taking a packed 65-byte ECDSA signature or an EIP-1271 one.
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external;

    /// @notice EIP-3009 `receiveWithAuthorization` (caller must be `to`) with a bytes signature (ECDSA or EIP-1271).
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external;

    /// @notice How `nonce` of `authorizer` was used: 0 unused, 1 cancelled, else the EIP-712 digest of the
    /// Transfer/ReceiveWithAuthorization that used it (the PaymentRouter's front-run attribution reads it).
    function authorizationDigest(address authorizer, bytes32 nonce) external view returns (bytes32);

    /// @notice EIP-3009 `cancelAuthorization` with a bytes signature (ECDSA or EIP-1271).
    function cancelAuthorization(address authorizer, bytes32 nonce, bytes calldata signature) external;
}
