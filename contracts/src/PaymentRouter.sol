// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IERC3009} from "@openzeppelin/contracts/interfaces/draft-IERC3009.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {EpochClock} from "./EpochClock.sol";
import {IPaymentRouter} from "./interfaces/IPaymentRouter.sol";
import {IRewardDistributor} from "./interfaces/IRewardDistributor.sol";
import {IRewardToken} from "./interfaces/IRewardToken.sol";

/// @title PaymentRouter
/// @notice Settles inference payments (EIP-3009 exact payments and x402 batch-settlement channels) and routes the
/// revenue, less a capped protocol fee, to the RewardDistributor's current epoch pool.
/// @dev EIP-712 domain ("x402 Batch Settlement", "1", chainId, this): the channel id and voucher digest are the
/// x402 batch-settlement ones for this verifying contract; OpenZeppelin's EIP712 rebuilds the separator when the
/// chain id changes (fork replay protection). ECDSA recovery rejects high-s signatures.
contract PaymentRouter is IPaymentRouter, AccessControl, Pausable, EIP712, EpochClock {
    using SafeERC20 for IERC20;

    bytes32 public constant SETTLER_ROLE = keccak256("SETTLER_ROLE");
    bytes32 public constant FEE_MANAGER_ROLE = keccak256("FEE_MANAGER_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    bytes32 public constant CHANNEL_CONFIG_TYPEHASH = keccak256(
        "ChannelConfig(address payer,address payerAuthorizer,address receiver,address receiverAuthorizer,address token,uint40 withdrawDelay,bytes32 salt)"
    );
    bytes32 public constant VOUCHER_TYPEHASH = keccak256("Voucher(bytes32 channelId,uint128 maxClaimableAmount)");

    /// @dev EIP-3009 TransferWithAuthorization type hash (what x402 `exact` clients sign).
    bytes32 private constant _TRANSFER_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    /// @dev Selector of OpenZeppelin ERC3009's `ERC3009UsedAuthorization(address,bytes32)` (a used or cancelled
    /// nonce): the front-run check keys on it.
    bytes4 private constant _USED_AUTHORIZATION = bytes4(keccak256("ERC3009UsedAuthorization(address,bytes32)"));

    uint40 public constant MIN_WITHDRAW_DELAY = 15 minutes;
    uint40 public constant MAX_WITHDRAW_DELAY = 30 days;
    uint16 private constant _BPS = 10_000;
    /// @notice Hard ceiling of the immutable fee cap: 10%.
    uint16 public constant FEE_CAP_LIMIT_BPS = 1_000;

    /// @dev One slot read by every settlement: fee recipient, fee, and the pause flag (Pausable's own flag is
    /// unused: `paused()` is overridden to read this slot, saving a cold storage read per settlement).
    struct FeeConfig {
        address recipient;
        uint16 feeBps;
        bool paused;
    }

    struct Withdrawal {
        uint128 amount;
        uint64 requestedAt;
    }

    address public immutable TOKEN;
    IRewardDistributor public immutable DISTRIBUTOR;
    uint16 public immutable MAX_FEE_BPS;

    FeeConfig private _fee;
    mapping(bytes32 channelId => Channel) private _channels;
    mapping(bytes32 channelId => Withdrawal) private _withdrawals;
    /// @dev Channel escrow held: sum over channels of (balance - totalClaimed). The token balance above it (plus
    /// what a running exact batch attributed) is unattributed surplus.
    uint256 private _escrowed;

    /// @param token_ the RewardToken.
    /// @param genesis_ epoch clock genesis (unix seconds).
    /// @param length_ epoch length (seconds).
    /// @param admin receives DEFAULT_ADMIN_ROLE only.
    /// @param distributor_ the RewardDistributor (revenue destination; approved for unlimited pulls).
    /// @param maxFeeBps_ immutable fee cap in basis points (<= FEE_CAP_LIMIT_BPS = 1000, i.e. 10%).
    /// @param feeBps_ initial fee (<= maxFeeBps_).
    /// @param feeRecipient_ receives the protocol fee.
    constructor(
        address token_,
        uint64 genesis_,
        uint64 length_,
        address admin,
        address distributor_,
        uint16 maxFeeBps_,
        uint16 feeBps_,
        address feeRecipient_
    ) EIP712("x402 Batch Settlement", "1") EpochClock(genesis_, length_) {
        if (token_ == address(0) || admin == address(0) || distributor_ == address(0) || feeRecipient_ == address(0)) {
            revert PaymentRouterZeroValue();
        }
        if (maxFeeBps_ > FEE_CAP_LIMIT_BPS) revert PaymentRouterFeeTooHigh(maxFeeBps_, FEE_CAP_LIMIT_BPS);
        if (feeBps_ > maxFeeBps_) revert PaymentRouterFeeTooHigh(feeBps_, maxFeeBps_);
        TOKEN = token_;
        DISTRIBUTOR = IRewardDistributor(distributor_);
        MAX_FEE_BPS = maxFeeBps_;
        _fee = FeeConfig(feeRecipient_, feeBps_, false);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        IERC20(token_).forceApprove(distributor_, type(uint256).max);
        emit ProtocolFeeUpdated(0, feeBps_);
        emit FeeRecipientUpdated(address(0), feeRecipient_);
    }

    // --------------------------------------------------------------------------------------------- exact

    /// @inheritdoc IPaymentRouter
    function settleExact(ExactPayment calldata payment, bytes32 modelId)
        external
        onlyRole(SETTLER_ROLE)
        whenNotPaused
    {
        FeeConfig memory fc = _fee;
        uint256 value = _collect(payment, 0);
        uint256 fee = value == 0 ? 0 : _record(payment, modelId, currentEpoch(), value, fc.feeBps);
        _payout(value, fee, fc.recipient);
    }

    /// @inheritdoc IPaymentRouter
    function settleExactBatch(ExactPayment[] calldata payments, bytes32 modelId)
        external
        onlyRole(SETTLER_ROLE)
        whenNotPaused
    {
        FeeConfig memory fc = _fee;
        uint64 epoch = currentEpoch();
        uint256 gross;
        uint256 fees;
        for (uint256 i; i < payments.length; ++i) {
            uint256 value = _collect(payments[i], gross);
            if (value == 0) continue;
            uint256 fee = _record(payments[i], modelId, epoch, value, fc.feeBps);
            // Cannot overflow: the values are token amounts that reached this router (supply < 2^128).
            unchecked {
                gross += value;
                fees += fee;
            }
        }
        _payout(gross, fees, fc.recipient);
    }

    /// @dev One row's funds: the token checks the signature (ECDSA or EIP-1271), the validity window and the
    /// nonce, and moves `p.value` to this router (`to` is always this router, so a row cannot pay anyone else).
    /// Returns the value collected, or 0 after recording why not (PaymentSkipped); a front-run row (already
    /// executed at the token) is collected from the unattributed surplus. `batchGross` is what earlier rows of
    /// this batch collected (already in this router's balance).
    function _collect(ExactPayment calldata p, uint256 batchGross) private returns (uint256) {
        if (p.value == 0) {
            emit PaymentSkipped(p.from, p.nonce, PaymentRouterZeroValue.selector);
            return 0;
        }
        try IERC3009(TOKEN).transferWithAuthorization(
            p.from, address(this), p.value, p.validAfter, p.validBefore, p.nonce, p.v, p.r, p.s
        ) {
            return p.value;
        } catch (bytes memory err) {
            // No revert data: the call ran out of gas (the token reverts only with custom errors). Reverting the
            // batch keeps a too-low gas limit (or estimate) from skipping payable rows.
            if (err.length < 4) revert PaymentRouterRowOutOfGas(p.nonce);
            bytes4 reason = bytes4(err);
            if (reason == _USED_AUTHORIZATION && _frontRun(p, batchGross)) return p.value;
            emit PaymentSkipped(p.from, p.nonce, reason);
            return 0;
        }
    }

    /// @dev The settlement event of a collected row; returns its fee. Exact rows: requestHash = the nonce.
    function _record(ExactPayment calldata p, bytes32 modelId, uint64 epoch, uint256 value, uint16 feeBps_)
        private
        returns (uint256 fee)
    {
        fee = _feeOf(value, feeBps_);
        emit PaymentSettled(p.from, modelId, epoch, value, fee, p.nonce, 1);
    }

    /// @dev Whether a row whose nonce the token reports used was executed by someone else straight at the token
    /// (the funds are here, unattributed): the token records the digest of the authorization that used each
    /// nonce, so it must be exactly this row's TransferWithAuthorization to this router (a cancelled nonce, one
    /// used by another authorization of the payer, or a channel deposit's ReceiveWithAuthorization is not), and
    /// the unattributed surplus (balance - escrow - what this batch attributed so far) must cover the value.
    function _frontRun(ExactPayment calldata p, uint256 batchGross) private view returns (bool) {
        uint256 value = p.value;
        bytes32 structHash = keccak256(
            abi.encode(_TRANSFER_WITH_AUTHORIZATION_TYPEHASH, p.from, address(this), value, p.validAfter, p.validBefore, p.nonce)
        );
        bytes32 digest = MessageHashUtils.toTypedDataHash(IERC20Permit(TOKEN).DOMAIN_SEPARATOR(), structHash);
        if (IRewardToken(TOKEN).authorizationDigest(p.from, p.nonce) != digest) return false;
        uint256 balance = IERC20(TOKEN).balanceOf(address(this));
        uint256 committed = _escrowed + batchGross;
        return balance >= committed && balance - committed >= value;
    }

    /// @inheritdoc IPaymentRouter
    function escrowed() external view returns (uint256) {
        return _escrowed;
    }

    /// @dev The protocol fee, rounded up: a dust-sized row (or many of them) cannot round the fee to zero. Cannot
    /// overflow: `value` is a token amount (< 2^128, the supply cap) and `feeBps <= 1000`; the result is at most
    /// `value` because `feeBps <= 10000`.
    function _feeOf(uint256 value, uint16 feeBps_) private pure returns (uint256) {
        unchecked {
            return (value * feeBps_ + (_BPS - 1)) / _BPS;
        }
    }

    /// @dev Sends the fee to the recipient and the rest to the reward pool.
    function _payout(uint256 gross, uint256 fee, address recipient) private {
        if (fee != 0) IERC20(TOKEN).safeTransfer(recipient, fee);
        // Cannot underflow: fee = ceil(value * feeBps / 10000) <= value for every row, so the sums keep the order.
        uint256 net;
        unchecked {
            net = gross - fee;
        }
        if (net != 0) DISTRIBUTOR.fundRevenue(net);
    }

    // --------------------------------------------------------------------------------------------- channels

    /// @inheritdoc IPaymentRouter
    function channelId(ChannelConfig calldata config) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(CHANNEL_CONFIG_TYPEHASH, config)));
    }

    /// @inheritdoc IPaymentRouter
    function voucherDigest(bytes32 channelId_, uint128 maxClaimableAmount) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(VOUCHER_TYPEHASH, channelId_, maxClaimableAmount)));
    }

    /// @inheritdoc IPaymentRouter
    function deposit(ChannelConfig calldata config, uint128 amount)
        external
        whenNotPaused
        returns (bytes32 id)
    {
        id = _credit(config, amount);
        IERC20(TOKEN).safeTransferFrom(msg.sender, address(this), amount);
        emit ChannelDeposited(id, config.payer, amount);
    }

    /// @inheritdoc IPaymentRouter
    function depositWithAuthorization(
        ChannelConfig calldata config,
        uint128 amount,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 authSalt,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external whenNotPaused returns (bytes32 id) {
        id = _credit(config, amount);
        bytes32 nonce = keccak256(abi.encode(id, authSalt));
        IERC3009(TOKEN).receiveWithAuthorization(
            config.payer, address(this), amount, validAfter, validBefore, nonce, v, r, s
        );
        emit ChannelDeposited(id, config.payer, amount);
    }

    function _credit(ChannelConfig calldata config, uint128 amount) private returns (bytes32 id) {
        if (amount == 0 || config.payer == address(0) || config.receiverAuthorizer == address(0)) {
            revert PaymentRouterZeroValue();
        }
        if (config.receiver != address(this) || config.token != TOKEN) revert PaymentRouterInvalidChannel();
        if (config.withdrawDelay < MIN_WITHDRAW_DELAY || config.withdrawDelay > MAX_WITHDRAW_DELAY) {
            revert PaymentRouterInvalidWithdrawDelay(config.withdrawDelay);
        }
        id = channelId(config);
        _channels[id].balance += amount; // checked: reverts past 2^128
        _escrowed += amount;
    }

    /// @inheritdoc IPaymentRouter
    function claim(ChannelClaim[] calldata claims) external onlyRole(SETTLER_ROLE) whenNotPaused {
        FeeConfig memory fc = _fee;
        uint64 epoch = currentEpoch();
        uint256 gross;
        uint256 fees;
        for (uint256 i; i < claims.length; ++i) {
            ChannelClaim calldata k = claims[i];
            bytes32 id = channelId(k.config);
            if (k.config.receiverAuthorizer != msg.sender) revert PaymentRouterNotReceiverAuthorizer(id);
            Channel storage ch = _channels[id];
            uint128 before = ch.totalClaimed;
            // Strictly increasing: a row repeated in one batch, or a replayed voucher, claims nothing and reverts.
            if (k.totalClaimed <= before || k.totalClaimed > k.maxClaimableAmount || k.totalClaimed > ch.balance) {
                revert PaymentRouterInvalidClaimAmount(id, k.totalClaimed);
            }
            _checkVoucher(k.config, id, k.maxClaimableAmount, k.signature);
            ch.totalClaimed = k.totalClaimed;
            uint256 amount;
            // Cannot underflow: k.totalClaimed > before was checked above.
            unchecked {
                amount = k.totalClaimed - before;
            }
            uint256 fee = _feeOf(amount, fc.feeBps);
            gross += amount;
            fees += fee;
            emit PaymentSettled(k.config.payer, k.modelId, epoch, amount, fee, k.requestHash, k.requestCount);
        }
        _escrowed -= gross; // every claimed amount was escrowed (totalClaimed <= balance)
        _payout(gross, fees, fc.recipient);
    }

    function _checkVoucher(ChannelConfig calldata config, bytes32 id, uint128 maxClaimable, bytes calldata sig)
        private
        view
    {
        bytes32 digest = voucherDigest(id, maxClaimable);
        address authorizer = config.payerAuthorizer;
        bool ok;
        if (authorizer != address(0)) {
            // ECDSA only (x402: a committed EOA key); tryRecover rejects malleable (high-s) signatures.
            (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, sig);
            ok = err == ECDSA.RecoverError.NoError && recovered == authorizer;
        } else {
            ok = SignatureChecker.isValidSignatureNowCalldata(config.payer, digest, sig);
        }
        if (!ok) revert PaymentRouterInvalidVoucherSignature(id);
    }

    /// @inheritdoc IPaymentRouter
    function initiateWithdraw(ChannelConfig calldata config, uint128 amount) external {
        bytes32 id = channelId(config);
        _onlyPayer(config, id);
        Channel memory ch = _channels[id];
        uint256 available = ch.balance - ch.totalClaimed;
        if (amount == 0) revert PaymentRouterZeroValue();
        if (amount > available) revert PaymentRouterWithdrawTooLarge(id, amount, available);
        _withdrawals[id] = Withdrawal(amount, uint64(block.timestamp));
        emit ChannelWithdrawalRequested(id, config.payer, uint64(block.timestamp) + config.withdrawDelay);
    }

    /// @inheritdoc IPaymentRouter
    function finalizeWithdraw(ChannelConfig calldata config) external {
        bytes32 id = channelId(config);
        _onlyPayer(config, id);
        Withdrawal memory w = _withdrawals[id];
        if (w.requestedAt == 0) revert PaymentRouterNoWithdrawal(id);
        uint64 availableAt = w.requestedAt + config.withdrawDelay;
        if (block.timestamp < availableAt) revert PaymentRouterWithdrawNotReady(id, availableAt);
        Channel storage ch = _channels[id];
        uint128 available = ch.balance - ch.totalClaimed;
        uint128 amount = w.amount < available ? w.amount : available;
        delete _withdrawals[id];
        ch.balance -= amount;
        _escrowed -= amount;
        if (amount != 0) IERC20(TOKEN).safeTransfer(config.payer, amount);
        emit ChannelWithdrawn(id, config.payer, amount);
    }

    /// @inheritdoc IPaymentRouter
    function refund(ChannelConfig calldata config, uint128 amount) external {
        bytes32 id = channelId(config);
        if (msg.sender != config.receiverAuthorizer) revert PaymentRouterNotReceiverAuthorizer(id);
        if (amount == 0) revert PaymentRouterZeroValue();
        Channel storage ch = _channels[id];
        uint128 available = ch.balance - ch.totalClaimed;
        if (amount > available) amount = available;
        if (amount == 0) return;
        ch.balance -= amount;
        _escrowed -= amount;
        Withdrawal storage w = _withdrawals[id];
        if (w.requestedAt != 0) {
            // A refund reduces a pending withdrawal, and cancels it when it covers it (x402 semantics).
            if (amount >= w.amount) delete _withdrawals[id];
            else w.amount -= amount;
        }
        IERC20(TOKEN).safeTransfer(config.payer, amount);
        emit ChannelRefunded(id, config.payer, amount);
    }

    function _onlyPayer(ChannelConfig calldata config, bytes32 id) private view {
        if (msg.sender != config.payer && (config.payerAuthorizer == address(0) || msg.sender != config.payerAuthorizer))
        {
            revert PaymentRouterNotPayer(id);
        }
    }

    /// @inheritdoc IPaymentRouter
    function channels(bytes32 channelId_) external view returns (Channel memory) {
        return _channels[channelId_];
    }

    /// @inheritdoc IPaymentRouter
    function pendingWithdrawal(bytes32 channelId_) external view returns (uint128, uint64) {
        Withdrawal memory w = _withdrawals[channelId_];
        return (w.amount, w.requestedAt);
    }

    // --------------------------------------------------------------------------------------------- fee, pause

    /// @inheritdoc IPaymentRouter
    function feeBps() external view returns (uint16) {
        return _fee.feeBps;
    }

    /// @inheritdoc IPaymentRouter
    function feeRecipient() external view returns (address) {
        return _fee.recipient;
    }

    /// @inheritdoc IPaymentRouter
    function setFeeBps(uint16 newFeeBps) external onlyRole(FEE_MANAGER_ROLE) {
        if (newFeeBps > MAX_FEE_BPS) revert PaymentRouterFeeTooHigh(newFeeBps, MAX_FEE_BPS);
        uint16 old = _fee.feeBps;
        _fee.feeBps = newFeeBps;
        emit ProtocolFeeUpdated(old, newFeeBps);
    }

    /// @inheritdoc IPaymentRouter
    function setFeeRecipient(address newRecipient) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (newRecipient == address(0)) revert PaymentRouterZeroValue();
        address old = _fee.recipient;
        _fee.recipient = newRecipient;
        emit FeeRecipientUpdated(old, newRecipient);
    }

    /// @inheritdoc IPaymentRouter
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @notice Whether settlements, deposits and claims are paused.
    function paused() public view override returns (bool) {
        return _fee.paused;
    }

    function _pause() internal override whenNotPaused {
        _fee.paused = true;
        emit Paused(msg.sender);
    }

    function _unpause() internal override whenPaused {
        _fee.paused = false;
        emit Unpaused(msg.sender);
    }

    /// @inheritdoc IPaymentRouter
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }
}
