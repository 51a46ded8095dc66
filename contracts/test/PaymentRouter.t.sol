// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {RewardToken} from "../src/RewardToken.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {PaymentRouter} from "../src/PaymentRouter.sol";
import {IPaymentRouter} from "../src/interfaces/IPaymentRouter.sol";
import {IRewardDistributor} from "../src/interfaces/IRewardDistributor.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ERC3009} from "@openzeppelin/contracts/token/ERC20/extensions/draft-ERC3009.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

/// @notice Fixture on the real RewardToken: router + distributor, a gateway (SETTLER, receiver authorizer), payers.
abstract contract PaymentRouterFixture is Test {
    uint64 internal constant GENESIS = 1_000_000;
    uint64 internal constant LENGTH = 1 days;
    uint16 internal constant MAX_FEE = 1000;
    uint16 internal constant FEE = 500;
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    bytes32 internal constant RECEIVE_TYPEHASH = keccak256(
        "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    bytes32 internal constant TRANSFER_TYPEHASH = keccak256(
        "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    bytes32 internal constant CANCEL_TYPEHASH = keccak256("CancelAuthorization(address authorizer,bytes32 nonce)");

    RewardToken internal token;
    RewardDistributor internal dist;
    PaymentRouter internal router;
    address internal admin = makeAddr("admin");
    address internal gateway = makeAddr("gateway");
    address internal feeRecipient = makeAddr("feeRecipient");
    address internal feeManager = makeAddr("feeManager");
    address internal pauser = makeAddr("pauser");
    address internal payer;
    uint256 internal payerKey;
    address internal other;
    uint256 internal otherKey;
    bytes32 internal constant MODEL = keccak256("model-1");

    function setUp() public virtual {
        vm.warp(GENESIS + 10);
        (payer, payerKey) = makeAddrAndKey("payer");
        (other, otherKey) = makeAddrAndKey("other");
        token = new RewardToken("Cairn", "CAIRN", address(this), GENESIS, LENGTH, 1e30, 0, predictCreate(1));
        dist = new RewardDistributor(address(token), GENESIS, LENGTH, admin, 1 hours);
        router = new PaymentRouter(address(token), GENESIS, LENGTH, admin, address(dist), MAX_FEE, FEE, feeRecipient);
        vm.startPrank(admin);
        router.grantRole(router.SETTLER_ROLE(), gateway);
        router.grantRole(router.FEE_MANAGER_ROLE(), feeManager);
        router.grantRole(router.PAUSER_ROLE(), pauser);
        vm.stopPrank();
        vm.startPrank(address(dist)); // only the distributor mints
        token.mintEmission(0, payer, 1_000_000e18);
        token.mintEmission(0, other, 1_000_000e18);
        vm.stopPrank();
    }

    // --- EIP-3009 helpers ---
    function _domain(address verifying, uint256 chainId) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256(bytes(token.name())),
                keccak256("1"),
                chainId,
                verifying
            )
        );
    }

    function _signAuthTyped(
        bytes32 typehash,
        uint256 key,
        bytes32 domain,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce
    ) internal pure returns (uint8 v, bytes32 r, bytes32 s) {
        bytes32 structHash = keccak256(abi.encode(typehash, from, to, value, validAfter, validBefore, nonce));
        return vm.sign(key, keccak256(abi.encodePacked("\x19\x01", domain, structHash)));
    }

    /// @dev A ReceiveWithAuthorization (what channel deposits use).
    function _signAuth(
        uint256 key,
        bytes32 domain,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce
    ) internal pure returns (uint8 v, bytes32 r, bytes32 s) {
        bytes32 structHash = keccak256(abi.encode(RECEIVE_TYPEHASH, from, to, value, validAfter, validBefore, nonce));
        return vm.sign(key, keccak256(abi.encodePacked("\x19\x01", domain, structHash)));
    }

    function _exact(uint256 value, bytes32 nonce) internal view returns (IPaymentRouter.ExactPayment memory p) {
        p = _exactSigned(payerKey, _domain(address(token), block.chainid), payer, address(router), value, nonce);
    }

    function _exactSigned(uint256 key, bytes32 domain, address from, address to, uint256 value, bytes32 nonce)
        internal
        view
        returns (IPaymentRouter.ExactPayment memory p)
    {
        uint256 va = block.timestamp - 1;
        uint256 vb = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _signAuthTyped(TRANSFER_TYPEHASH, key, domain, from, to, value, va, vb, nonce);
        p = IPaymentRouter.ExactPayment(from, value, va, vb, nonce, v, r, s);
    }

    function _batch1(IPaymentRouter.ExactPayment memory p) internal pure returns (IPaymentRouter.ExactPayment[] memory a) {
        a = new IPaymentRouter.ExactPayment[](1);
        a[0] = p;
    }

    /// @dev Settle `p` expecting it skipped with `reason`, nothing paid out.
    function _expectSkipped(IPaymentRouter.ExactPayment memory p, bytes4 reason) internal {
        uint256 pool = token.balanceOf(address(dist));
        vm.expectEmit(true, true, false, true, address(router));
        emit IPaymentRouter.PaymentSkipped(p.from, p.nonce, reason);
        vm.prank(gateway);
        router.settleExact(p, MODEL);
        assertEq(token.balanceOf(address(dist)), pool);
    }

    // --- channel helpers ---
    function _config(address payer_, address payerAuthorizer) internal view returns (IPaymentRouter.ChannelConfig memory) {
        return IPaymentRouter.ChannelConfig(
            payer_, payerAuthorizer, address(router), gateway, address(token), uint40(1 hours), bytes32(0)
        );
    }

    function _voucher(uint256 key, bytes32 id, uint128 maxClaimable) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, router.voucherDigest(id, maxClaimable));
        return abi.encodePacked(r, s, v);
    }

    function _deposit(IPaymentRouter.ChannelConfig memory c, uint128 amount) internal returns (bytes32 id) {
        vm.startPrank(c.payer);
        token.approve(address(router), amount);
        id = router.deposit(c, amount);
        vm.stopPrank();
    }

    function _claimRow(IPaymentRouter.ChannelConfig memory c, uint256 key, uint128 maxClaimable, uint128 total)
        internal
        view
        returns (IPaymentRouter.ChannelClaim memory)
    {
        bytes32 id = router.channelId(c);
        return IPaymentRouter.ChannelClaim(c, maxClaimable, total, _voucher(key, id, maxClaimable), MODEL, id, 1000);
    }

    function _one(IPaymentRouter.ChannelClaim memory row) internal pure returns (IPaymentRouter.ChannelClaim[] memory a) {
        a = new IPaymentRouter.ChannelClaim[](1);
        a[0] = row;
    }
}

contract PaymentRouterTest is PaymentRouterFixture {
    // --- constructor and fee ---
    function test_constructor_revertsWhen_zeroAddress() public {
        vm.expectRevert(IPaymentRouter.PaymentRouterZeroValue.selector);
        new PaymentRouter(address(0), GENESIS, LENGTH, admin, address(dist), MAX_FEE, FEE, feeRecipient);
        vm.expectRevert(IPaymentRouter.PaymentRouterZeroValue.selector);
        new PaymentRouter(address(token), GENESIS, LENGTH, admin, address(0), MAX_FEE, FEE, feeRecipient);
        vm.expectRevert(IPaymentRouter.PaymentRouterZeroValue.selector);
        new PaymentRouter(address(token), GENESIS, LENGTH, admin, address(dist), MAX_FEE, FEE, address(0));
        vm.expectRevert(IPaymentRouter.PaymentRouterZeroValue.selector);
        new PaymentRouter(address(token), GENESIS, LENGTH, address(0), address(dist), MAX_FEE, FEE, feeRecipient);
    }

    function test_constructor_revertsWhen_feeAboveCap() public {
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterFeeTooHigh.selector, 1001, 1000));
        new PaymentRouter(address(token), GENESIS, LENGTH, admin, address(dist), 1001, 0, feeRecipient);
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterFeeTooHigh.selector, 1001, 1000));
        new PaymentRouter(address(token), GENESIS, LENGTH, admin, address(dist), 1000, 1001, feeRecipient);
    }

    function test_setFeeBps_emitsAndCaps() public {
        vm.expectEmit(false, false, false, true, address(router));
        emit IPaymentRouter.ProtocolFeeUpdated(FEE, MAX_FEE);
        vm.prank(feeManager);
        router.setFeeBps(MAX_FEE);
        assertEq(router.feeBps(), MAX_FEE);
        vm.prank(feeManager);
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterFeeTooHigh.selector, MAX_FEE + 1, MAX_FEE));
        router.setFeeBps(MAX_FEE + 1);
    }

    function test_setFeeBps_revertsWhen_notFeeManager() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, admin, router.FEE_MANAGER_ROLE()
            )
        );
        vm.prank(admin);
        router.setFeeBps(1);
    }

    function test_setFeeRecipient() public {
        vm.expectEmit(true, true, false, false, address(router));
        emit IPaymentRouter.FeeRecipientUpdated(feeRecipient, other);
        vm.prank(admin);
        router.setFeeRecipient(other);
        assertEq(router.feeRecipient(), other);
        vm.prank(admin);
        vm.expectRevert(IPaymentRouter.PaymentRouterZeroValue.selector);
        router.setFeeRecipient(address(0));
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, feeManager, router.DEFAULT_ADMIN_ROLE()
            )
        );
        vm.prank(feeManager);
        router.setFeeRecipient(other);
    }

    // --- exact payments (EIP-3009 TransferWithAuthorization, to = router) ---
    function test_settleExact_routesRevenueAndFee() public {
        IPaymentRouter.ExactPayment memory p = _exact(1000e18, keccak256("n1"));
        vm.expectEmit(true, true, true, true, address(router));
        emit IPaymentRouter.PaymentSettled(payer, MODEL, 0, 1000e18, 50e18, p.nonce, 1);
        vm.expectEmit(true, true, false, true, address(dist));
        emit IRewardDistributor.EpochFunded(0, address(router), 950e18, 1);
        vm.prank(gateway);
        router.settleExact(p, MODEL);
        assertEq(token.balanceOf(address(dist)), 950e18);
        assertEq(token.balanceOf(feeRecipient), 50e18);
        assertEq(token.balanceOf(address(router)), 0);
        assertEq(dist.totalFunded(), 950e18);
    }

    function test_settleExact_revertsWhen_notSettler() public {
        IPaymentRouter.ExactPayment memory p = _exact(1e18, keccak256("n1"));
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, other, router.SETTLER_ROLE())
        );
        vm.prank(other);
        router.settleExact(p, MODEL);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, other, router.SETTLER_ROLE())
        );
        vm.prank(other);
        router.settleExactBatch(_batch1(p), MODEL);
    }

    function test_settleExact_revertsWhen_paused() public {
        IPaymentRouter.ExactPayment memory p = _exact(1e18, keccak256("n1"));
        vm.prank(pauser);
        router.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        vm.prank(gateway);
        router.settleExact(p, MODEL);
    }

    function test_settleExact_skipsZeroValue() public {
        _expectSkipped(_exact(0, keccak256("n1")), IPaymentRouter.PaymentRouterZeroValue.selector);
    }

    function test_settleExactBatch_settlesEach() public {
        IPaymentRouter.ExactPayment[] memory ps = new IPaymentRouter.ExactPayment[](3);
        for (uint256 i; i < 3; ++i) ps[i] = _exact((i + 1) * 100e18, keccak256(abi.encode("b", i)));
        vm.prank(gateway);
        router.settleExactBatch(ps, MODEL);
        assertEq(token.balanceOf(address(dist)), 570e18);
        assertEq(token.balanceOf(feeRecipient), 30e18);
    }

    /// One payer cancels its authorization, another moves its funds away: both rows are skipped and recorded,
    /// the rest of the batch settles.
    function test_settleExactBatch_skipsCancelledAndUnfundedRows() public {
        IPaymentRouter.ExactPayment[] memory ps = new IPaymentRouter.ExactPayment[](3);
        ps[0] = _exact(100e18, keccak256("ok"));
        ps[1] = _exact(100e18, keccak256("cancelled"));
        ps[2] = _exactSigned(otherKey, _domain(address(token), block.chainid), other, address(router), 100e18, keccak256("m"));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(
            payerKey,
            keccak256(
                abi.encodePacked(
                    "\x19\x01",
                    _domain(address(token), block.chainid),
                    keccak256(abi.encode(CANCEL_TYPEHASH, payer, ps[1].nonce))
                )
            )
        );
        token.cancelAuthorization(payer, ps[1].nonce, v, r, s);
        uint256 all = token.balanceOf(other);
        vm.prank(other);
        token.transfer(feeManager, all);
        vm.expectEmit(true, true, false, true, address(router));
        emit IPaymentRouter.PaymentSettled(payer, MODEL, 0, 100e18, 5e18, ps[0].nonce, 1);
        vm.expectEmit(true, true, false, true, address(router));
        emit IPaymentRouter.PaymentSkipped(payer, ps[1].nonce, ERC3009.ERC3009UsedAuthorization.selector);
        vm.expectEmit(true, true, false, true, address(router));
        emit IPaymentRouter.PaymentSkipped(other, ps[2].nonce, IERC20Errors.ERC20InsufficientBalance.selector);
        vm.prank(gateway);
        router.settleExactBatch(ps, MODEL);
        assertEq(token.balanceOf(address(dist)), 95e18);
        assertEq(token.balanceOf(address(router)), 0);
    }

    /// Too little gas for a row's token call reverts the batch (no revert data) instead of skipping the row.
    function test_settleExactBatch_revertsWhen_rowRunsOutOfGas() public {
        IPaymentRouter.ExactPayment[] memory ps = new IPaymentRouter.ExactPayment[](1);
        ps[0] = _exact(1e18, keccak256("gas"));
        vm.prank(gateway);
        (bool ok,) = address(router).call{gas: 60_000}(abi.encodeCall(router.settleExactBatch, (ps, MODEL)));
        assertFalse(ok);
        assertFalse(token.authorizationState(payer, ps[0].nonce));
    }

    // --- replay matrix: exact authorizations (EIP-3009): every bad row is skipped, never paid twice ---
    function test_exactReplay_skippedWhen_reused() public {
        IPaymentRouter.ExactPayment memory p = _exact(1e18, keccak256("n1"));
        vm.prank(gateway);
        router.settleExact(p, MODEL);
        _expectSkipped(p, ERC3009.ERC3009UsedAuthorization.selector);
        assertEq(token.balanceOf(address(dist)), 95e16);
    }

    function test_exactReplay_skippedWhen_otherChainId() public {
        _expectSkipped(
            _exactSigned(payerKey, _domain(address(token), 999), payer, address(router), 1e18, keccak256("n")),
            ERC3009.ERC3009InvalidSignature.selector
        );
    }

    function test_exactReplay_skippedWhen_forkChangesChainId() public {
        IPaymentRouter.ExactPayment memory p = _exact(1e18, keccak256("n1"));
        vm.chainId(999);
        _expectSkipped(p, ERC3009.ERC3009InvalidSignature.selector);
    }

    function test_exactReplay_skippedWhen_otherContractOrPayee() public {
        _expectSkipped(
            _exactSigned(payerKey, _domain(address(dist), block.chainid), payer, address(router), 1e18, keccak256("n")),
            ERC3009.ERC3009InvalidSignature.selector
        );
        // signed to pay another payee: the router always settles with to = itself
        _expectSkipped(
            _exactSigned(payerKey, _domain(address(token), block.chainid), payer, other, 1e18, keccak256("n")),
            ERC3009.ERC3009InvalidSignature.selector
        );
    }

    function test_exactReplay_skippedWhen_expiredOrNotYetValid() public {
        IPaymentRouter.ExactPayment memory p = _exact(1e18, keccak256("n1"));
        vm.warp(p.validBefore);
        _expectSkipped(p, ERC3009.ERC3009InvalidAuthorizationTime.selector);
        vm.warp(p.validAfter);
        _expectSkipped(p, ERC3009.ERC3009InvalidAuthorizationTime.selector);
    }

    function test_exactReplay_skippedWhen_highS() public {
        IPaymentRouter.ExactPayment memory p = _exact(1e18, keccak256("n1"));
        p.s = bytes32(SECP256K1_N - uint256(p.s));
        p.v = p.v == 27 ? 28 : 27;
        _expectSkipped(p, ERC3009.ERC3009InvalidSignature.selector);
    }

    function test_exactReplay_skippedWhen_wrongSigner() public {
        _expectSkipped(
            _exactSigned(otherKey, _domain(address(token), block.chainid), payer, address(router), 1e18, keccak256("n")),
            ERC3009.ERC3009InvalidSignature.selector
        );
    }

    // --- front-running: the signed authorization submitted straight to the token ---
    function _frontRun(IPaymentRouter.ExactPayment memory p) internal {
        vm.prank(other);
        token.transferWithAuthorization(
            p.from, address(router), p.value, p.validAfter, p.validBefore, p.nonce, p.v, p.r, p.s
        );
    }

    /// The funds reach the router with no settlement event; the settler's row for it is then attributed to its
    /// payer and model from the unattributed surplus, exactly once.
    function test_exactFrontRun_attributedOnceFromSurplus() public {
        IPaymentRouter.ExactPayment memory p = _exact(10e18, keccak256("fr"));
        _frontRun(p);
        assertEq(token.balanceOf(address(router)), 10e18);
        IPaymentRouter.ExactPayment[] memory ps = new IPaymentRouter.ExactPayment[](2);
        ps[0] = p;
        ps[1] = _exact(20e18, keccak256("next"));
        vm.expectEmit(true, true, true, true, address(router));
        emit IPaymentRouter.PaymentSettled(payer, MODEL, 0, 10e18, 5e17, p.nonce, 1);
        vm.prank(gateway);
        router.settleExactBatch(ps, MODEL);
        assertEq(token.balanceOf(address(router)), 0);
        assertEq(token.balanceOf(address(dist)) + token.balanceOf(feeRecipient), 30e18);
        // the same row again finds no surplus: skipped, nothing attributed twice
        _expectSkipped(p, ERC3009.ERC3009UsedAuthorization.selector);
        assertEq(token.balanceOf(address(dist)) + token.balanceOf(feeRecipient), 30e18);
    }

    /// Channel escrow is never taken as surplus: a front-run row only uses funds above the escrow.
    function test_exactFrontRun_neverTakesChannelEscrow() public {
        _deposit(_config(payer, address(0)), 100e18);
        IPaymentRouter.ExactPayment memory p = _exact(10e18, keccak256("fr"));
        _frontRun(p);
        IPaymentRouter.ExactPayment memory twice = p;
        IPaymentRouter.ExactPayment[] memory ps = new IPaymentRouter.ExactPayment[](2);
        ps[0] = p;
        ps[1] = twice; // repeated in one batch: the second finds the surplus spent
        vm.prank(gateway);
        router.settleExactBatch(ps, MODEL);
        assertEq(token.balanceOf(address(router)), 100e18);
        assertEq(router.escrowed(), 100e18);
        assertEq(token.balanceOf(address(dist)) + token.balanceOf(feeRecipient), 10e18);
    }

    /// A cancelled nonce is not a front-run: the signature check passes but no surplus is there to take.
    function test_exactFrontRun_cancelledRowWithoutSurplusSkipped() public {
        IPaymentRouter.ExactPayment memory p = _exact(10e18, keccak256("c"));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(
            payerKey,
            keccak256(
                abi.encodePacked(
                    "\x19\x01", _domain(address(token), block.chainid), keccak256(abi.encode(CANCEL_TYPEHASH, payer, p.nonce))
                )
            )
        );
        token.cancelAuthorization(payer, p.nonce, v, r, s);
        _expectSkipped(p, ERC3009.ERC3009UsedAuthorization.selector);
    }

    /// A cancelled authorization does not take another payment's front-run funds: the token records which
    /// authorization used each nonce, and a cancellation is not this row's transfer.
    function test_exactFrontRun_cancelledRowNeverTakesOthersSurplus() public {
        IPaymentRouter.ExactPayment memory honest = _exact(10e18, keccak256("honest"));
        IPaymentRouter.ExactPayment memory cheat =
            _exactSigned(otherKey, _domain(address(token), block.chainid), other, address(router), 10e18, keccak256("c"));
        _frontRun(honest);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(
            otherKey,
            keccak256(
                abi.encodePacked(
                    "\x19\x01", _domain(address(token), block.chainid), keccak256(abi.encode(CANCEL_TYPEHASH, other, cheat.nonce))
                )
            )
        );
        token.cancelAuthorization(other, cheat.nonce, v, r, s);
        assertEq(token.authorizationDigest(other, cheat.nonce), bytes32(uint256(1)));
        IPaymentRouter.ExactPayment[] memory ps = new IPaymentRouter.ExactPayment[](2);
        ps[0] = cheat; // first in the batch, while the honest payment's funds sit in the router
        ps[1] = honest;
        vm.expectEmit(true, true, false, true, address(router));
        emit IPaymentRouter.PaymentSkipped(other, cheat.nonce, ERC3009.ERC3009UsedAuthorization.selector);
        vm.expectEmit(true, true, true, true, address(router));
        emit IPaymentRouter.PaymentSettled(payer, MODEL, 0, 10e18, 5e17, honest.nonce, 1);
        vm.prank(gateway);
        router.settleExactBatch(ps, MODEL);
        assertEq(token.balanceOf(address(router)), 0);
    }

    /// A payer who uses the nonce of a served payment for another authorization (to itself) does not get the
    /// served row attributed from someone else's surplus either.
    function test_exactFrontRun_nonceReusedByOtherAuthorizationNotAttributed() public {
        IPaymentRouter.ExactPayment memory honest = _exact(10e18, keccak256("honest"));
        _frontRun(honest);
        bytes32 n = keccak256("reused");
        IPaymentRouter.ExactPayment memory served =
            _exactSigned(otherKey, _domain(address(token), block.chainid), other, address(router), 10e18, n);
        IPaymentRouter.ExactPayment memory elsewhere =
            _exactSigned(otherKey, _domain(address(token), block.chainid), other, other, 1, n);
        vm.prank(other);
        token.transferWithAuthorization(
            other, other, 1, elsewhere.validAfter, elsewhere.validBefore, n, elsewhere.v, elsewhere.r, elsewhere.s
        );
        _expectSkipped(served, ERC3009.ERC3009UsedAuthorization.selector);
        assertEq(token.balanceOf(address(router)), 10e18); // the honest payment's funds wait for its own row
    }

    /// Fix: a channel deposit's ReceiveWithAuthorization cannot be settled as an exact payment (turning a
    /// refundable deposit into revenue), neither before nor after the deposit is made.
    function test_exact_cannotSettleChannelDepositAuthorization() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = router.channelId(c);
        bytes32 salt = keccak256("s");
        uint256 vb = block.timestamp + 1 hours;
        bytes32 nonce = keccak256(abi.encode(id, salt));
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(payerKey, _domain(address(token), block.chainid), payer, address(router), 50e18, 0, vb, nonce);
        IPaymentRouter.ExactPayment memory p = IPaymentRouter.ExactPayment(payer, 50e18, 0, vb, nonce, v, r, s);
        _expectSkipped(p, ERC3009.ERC3009InvalidSignature.selector);
        router.depositWithAuthorization(c, 50e18, 0, vb, salt, v, r, s);
        // after the deposit the nonce is used and the funds are escrow: still not an exact payment (the token
        // checks the TransferWithAuthorization signature first)
        _expectSkipped(p, ERC3009.ERC3009InvalidSignature.selector);
        assertEq(router.channels(id).balance, 50e18);
        assertEq(token.balanceOf(address(router)), 50e18);
        assertEq(token.balanceOf(address(dist)) + token.balanceOf(feeRecipient), 0);
    }

    /// Fuzz: whatever is front-run, donated and re-submitted, attribution never exceeds what reached the router
    /// above the escrow, and the escrow stays untouched.
    function testFuzz_exactFrontRun_attributionBoundedBySurplus(uint96 a, uint96 b, uint96 donation, bool dup) public {
        a = uint96(bound(a, 1, 1000e18));
        b = uint96(bound(b, 1, 1000e18));
        donation = uint96(bound(donation, 0, 1000e18));
        _deposit(_config(other, address(0)), 50e18);
        IPaymentRouter.ExactPayment memory pa = _exact(a, keccak256(abi.encode("a", a)));
        IPaymentRouter.ExactPayment memory pb = _exact(b, keccak256(abi.encode("b", b)));
        _frontRun(pa);
        vm.prank(payer);
        token.transfer(address(router), donation);
        IPaymentRouter.ExactPayment[] memory ps = new IPaymentRouter.ExactPayment[](dup ? 3 : 2);
        ps[0] = pa;
        ps[1] = pb;
        if (dup) ps[2] = pa;
        vm.prank(gateway);
        router.settleExactBatch(ps, MODEL);
        uint256 paidOut = token.balanceOf(address(dist)) + token.balanceOf(feeRecipient);
        assertLe(paidOut, uint256(a) + b + donation);
        assertGe(paidOut, uint256(a) + b); // both real payments attributed
        assertEq(token.balanceOf(address(router)) + paidOut, 50e18 + uint256(a) + b + donation);
        assertGe(token.balanceOf(address(router)), router.escrowed());
        assertEq(router.escrowed(), 50e18);
    }

    // --- channels: deposits ---
    function test_deposit_creditsChannel() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = router.channelId(c);
        vm.startPrank(payer);
        token.approve(address(router), 100e18);
        vm.expectEmit(true, true, false, true, address(router));
        emit IPaymentRouter.ChannelDeposited(id, payer, 100e18);
        router.deposit(c, 100e18);
        vm.stopPrank();
        assertEq(router.channels(id).balance, 100e18);
        assertEq(token.balanceOf(address(router)), 100e18);
    }

    function test_deposit_revertsWhen_invalidConfig() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        c.receiver = other;
        vm.expectRevert(IPaymentRouter.PaymentRouterInvalidChannel.selector);
        router.deposit(c, 1);
        c = _config(payer, address(0));
        c.token = address(dist);
        vm.expectRevert(IPaymentRouter.PaymentRouterInvalidChannel.selector);
        router.deposit(c, 1);
        c = _config(payer, address(0));
        c.withdrawDelay = 15 minutes - 1;
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterInvalidWithdrawDelay.selector, c.withdrawDelay));
        router.deposit(c, 1);
        c.withdrawDelay = 30 days + 1;
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterInvalidWithdrawDelay.selector, c.withdrawDelay));
        router.deposit(c, 1);
        c = _config(payer, address(0));
        vm.expectRevert(IPaymentRouter.PaymentRouterZeroValue.selector);
        router.deposit(c, 0);
        c.receiverAuthorizer = address(0);
        vm.expectRevert(IPaymentRouter.PaymentRouterZeroValue.selector);
        router.deposit(c, 1);
    }

    function test_deposit_revertsWhen_paused() public {
        vm.prank(pauser);
        router.pause();
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        vm.expectRevert(Pausable.EnforcedPause.selector);
        router.deposit(c, 1);
    }

    function test_depositWithAuthorization_bindsNonceToChannel() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = router.channelId(c);
        bytes32 salt = keccak256("s");
        uint256 vb = block.timestamp + 1 hours;
        bytes32 nonce = keccak256(abi.encode(id, salt));
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(payerKey, _domain(address(token), block.chainid), payer, address(router), 50e18, 0, vb, nonce);
        // redirecting the authorization to another channel (other salt => other id => other nonce) fails
        IPaymentRouter.ChannelConfig memory c2 = _config(payer, address(0));
        c2.receiverAuthorizer = other;
        vm.expectRevert();
        router.depositWithAuthorization(c2, 50e18, 0, vb, salt, v, r, s);
        vm.prank(other);
        router.depositWithAuthorization(c, 50e18, 0, vb, salt, v, r, s);
        assertEq(router.channels(id).balance, 50e18);
        vm.expectRevert();
        router.depositWithAuthorization(c, 50e18, 0, vb, salt, v, r, s);
    }

    // --- channels: claims ---
    function test_claim_settlesVoucherToPool() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = _deposit(c, 100e18);
        IPaymentRouter.ChannelClaim memory row = _claimRow(c, payerKey, 40e18, 40e18);
        vm.expectEmit(true, true, true, true, address(router));
        emit IPaymentRouter.PaymentSettled(payer, MODEL, 0, 40e18, 2e18, id, 1000);
        vm.prank(gateway);
        router.claim(_one(row));
        assertEq(router.channels(id).totalClaimed, 40e18);
        assertEq(token.balanceOf(address(dist)), 38e18);
        assertEq(token.balanceOf(feeRecipient), 2e18);
        assertEq(token.balanceOf(address(router)), 60e18);
        // a later voucher pays only the increment
        row = _claimRow(c, payerKey, 70e18, 65e18);
        vm.prank(gateway);
        router.claim(_one(row));
        assertEq(router.channels(id).totalClaimed, 65e18);
        assertEq(token.balanceOf(address(router)), 35e18);
    }

    function test_claim_manyChannelsOneTx() public {
        IPaymentRouter.ChannelConfig memory c1 = _config(payer, address(0));
        IPaymentRouter.ChannelConfig memory c2 = _config(other, address(0));
        _deposit(c1, 10e18);
        _deposit(c2, 10e18);
        IPaymentRouter.ChannelClaim[] memory rows = new IPaymentRouter.ChannelClaim[](2);
        rows[0] = _claimRow(c1, payerKey, 5e18, 5e18);
        rows[1] = _claimRow(c2, otherKey, 6e18, 6e18);
        vm.prank(gateway);
        router.claim(rows);
        assertEq(token.balanceOf(address(dist)) + token.balanceOf(feeRecipient), 11e18);
    }

    function test_claim_withPayerAuthorizer() public {
        (address agentKeyAddr, uint256 agentKey) = makeAddrAndKey("agent-session-key");
        IPaymentRouter.ChannelConfig memory c = _config(payer, agentKeyAddr);
        _deposit(c, 10e18);
        // the payer's own signature is not accepted when an authorizer is committed
        IPaymentRouter.ChannelClaim memory bad = _claimRow(c, payerKey, 5e18, 5e18);
        vm.expectRevert(
            abi.encodeWithSelector(IPaymentRouter.PaymentRouterInvalidVoucherSignature.selector, router.channelId(c))
        );
        vm.prank(gateway);
        router.claim(_one(bad));
        IPaymentRouter.ChannelClaim memory good = _claimRow(c, agentKey, 5e18, 5e18);
        vm.prank(gateway);
        router.claim(_one(good));
    }

    function test_claim_revertsWhen_notSettler() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        _deposit(c, 10e18);
        IPaymentRouter.ChannelClaim memory row = _claimRow(c, payerKey, 5e18, 5e18);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, other, router.SETTLER_ROLE())
        );
        vm.prank(other);
        router.claim(_one(row));
    }

    function test_claim_revertsWhen_notReceiverAuthorizer() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = _deposit(c, 10e18);
        IPaymentRouter.ChannelClaim memory row = _claimRow(c, payerKey, 5e18, 5e18);
        address gateway2 = makeAddr("gateway2");
        bytes32 settler = router.SETTLER_ROLE();
        vm.prank(admin);
        router.grantRole(settler, gateway2);
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterNotReceiverAuthorizer.selector, id));
        vm.prank(gateway2);
        router.claim(_one(row));
    }

    function test_claim_revertsWhen_aboveVoucherOrBalance() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = _deposit(c, 10e18);
        IPaymentRouter.ChannelClaim memory row = _claimRow(c, payerKey, 5e18, 5e18 + 1);
        vm.startPrank(gateway);
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterInvalidClaimAmount.selector, id, 5e18 + 1));
        router.claim(_one(row));
        row = _claimRow(c, payerKey, 20e18, 10e18 + 1);
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterInvalidClaimAmount.selector, id, 10e18 + 1));
        router.claim(_one(row));
        vm.stopPrank();
    }

    function test_claim_revertsWhen_paused() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        _deposit(c, 10e18);
        IPaymentRouter.ChannelClaim memory row = _claimRow(c, payerKey, 5e18, 5e18);
        vm.prank(pauser);
        router.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        vm.prank(gateway);
        router.claim(_one(row));
    }

    // --- replay matrix: vouchers ---
    function test_voucherReplay_revertsWhen_reused() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = _deposit(c, 10e18);
        IPaymentRouter.ChannelClaim memory row = _claimRow(c, payerKey, 5e18, 5e18);
        vm.startPrank(gateway);
        router.claim(_one(row));
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterInvalidClaimAmount.selector, id, 5e18));
        router.claim(_one(row));
        vm.stopPrank();
    }

    function test_voucherReplay_revertsWhen_duplicateRowInBatch() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = _deposit(c, 10e18);
        IPaymentRouter.ChannelClaim[] memory rows = new IPaymentRouter.ChannelClaim[](2);
        rows[0] = _claimRow(c, payerKey, 5e18, 5e18);
        rows[1] = rows[0];
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterInvalidClaimAmount.selector, id, 5e18));
        vm.prank(gateway);
        router.claim(rows);
    }

    function test_voucherReplay_revertsWhen_otherChainId() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        _deposit(c, 10e18);
        IPaymentRouter.ChannelClaim memory row = _claimRow(c, payerKey, 5e18, 5e18);
        vm.chainId(999); // a fork: the domain separator is rebuilt, so is the channel id
        bytes32 idOnFork = router.channelId(c);
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterInvalidClaimAmount.selector, idOnFork, 5e18));
        vm.prank(gateway);
        router.claim(_one(row));
    }

    function test_voucherReplay_revertsWhen_otherContract() public {
        PaymentRouter router2 =
            new PaymentRouter(address(token), GENESIS, LENGTH, admin, address(dist), MAX_FEE, FEE, feeRecipient);
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = _deposit(c, 10e18);
        // a voucher signed for the same channel id under router2's domain
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(payerKey, router2.voucherDigest(id, 5e18));
        IPaymentRouter.ChannelClaim memory row =
            IPaymentRouter.ChannelClaim(c, 5e18, 5e18, abi.encodePacked(r, s, v), MODEL, bytes32(0), 1);
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterInvalidVoucherSignature.selector, id));
        vm.prank(gateway);
        router.claim(_one(row));
    }

    function test_voucherReplay_revertsWhen_highS() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = _deposit(c, 10e18);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(payerKey, router.voucherDigest(id, 5e18));
        bytes memory sig = abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        IPaymentRouter.ChannelClaim memory row = IPaymentRouter.ChannelClaim(c, 5e18, 5e18, sig, MODEL, bytes32(0), 1);
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterInvalidVoucherSignature.selector, id));
        vm.prank(gateway);
        router.claim(_one(row));
        // with a committed payer authorizer (ECDSA path) too
        c = _config(payer, payer);
        id = _deposit(c, 10e18);
        (v, r, s) = vm.sign(payerKey, router.voucherDigest(id, 5e18));
        sig = abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        row = IPaymentRouter.ChannelClaim(c, 5e18, 5e18, sig, MODEL, bytes32(0), 1);
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterInvalidVoucherSignature.selector, id));
        vm.prank(gateway);
        router.claim(_one(row));
    }

    function test_voucherReplay_revertsWhen_wrongSigner() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = _deposit(c, 10e18);
        IPaymentRouter.ChannelClaim memory row = _claimRow(c, otherKey, 5e18, 5e18);
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterInvalidVoucherSignature.selector, id));
        vm.prank(gateway);
        router.claim(_one(row));
    }

    function test_voucherReplay_revertsWhen_expiredByWithdrawal() public {
        // Vouchers carry no expiry (x402): the payer's finalized withdrawal closes the window.
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = _deposit(c, 10e18);
        IPaymentRouter.ChannelClaim memory row = _claimRow(c, payerKey, 5e18, 5e18);
        vm.prank(payer);
        router.initiateWithdraw(c, 10e18);
        vm.warp(block.timestamp + 1 hours);
        vm.prank(payer);
        router.finalizeWithdraw(c);
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterInvalidClaimAmount.selector, id, 5e18));
        vm.prank(gateway);
        router.claim(_one(row));
    }

    // --- withdrawals and refunds ---
    function test_withdraw_afterDelay_cappedByGraceClaims() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = _deposit(c, 10e18);
        vm.expectEmit(true, true, false, true, address(router));
        emit IPaymentRouter.ChannelWithdrawalRequested(id, payer, uint64(block.timestamp + 1 hours));
        vm.prank(payer);
        router.initiateWithdraw(c, 10e18);
        // the gateway claims during the grace period
        IPaymentRouter.ChannelClaim memory row = _claimRow(c, payerKey, 4e18, 4e18);
        vm.prank(gateway);
        router.claim(_one(row));
        vm.warp(block.timestamp + 1 hours - 1);
        vm.prank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(IPaymentRouter.PaymentRouterWithdrawNotReady.selector, id, block.timestamp + 1)
        );
        router.finalizeWithdraw(c);
        vm.warp(block.timestamp + 1);
        uint256 before = token.balanceOf(payer);
        vm.expectEmit(true, true, false, true, address(router));
        emit IPaymentRouter.ChannelWithdrawn(id, payer, 6e18);
        vm.prank(payer);
        router.finalizeWithdraw(c);
        assertEq(token.balanceOf(payer) - before, 6e18);
        assertEq(token.balanceOf(address(router)), 0);
        (, uint64 requestedAt) = router.pendingWithdrawal(id);
        assertEq(requestedAt, 0);
    }

    function test_withdraw_worksWhilePaused() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        _deposit(c, 10e18);
        vm.prank(pauser);
        router.pause();
        vm.prank(payer);
        router.initiateWithdraw(c, 10e18);
        vm.warp(block.timestamp + 1 hours);
        vm.prank(payer);
        router.finalizeWithdraw(c);
        assertEq(token.balanceOf(address(router)), 0);
    }

    function test_initiateWithdraw_revertsWhen_notPayerZeroOrTooLarge() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = _deposit(c, 10e18);
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterNotPayer.selector, id));
        vm.prank(gateway);
        router.initiateWithdraw(c, 1);
        vm.startPrank(payer);
        vm.expectRevert(IPaymentRouter.PaymentRouterZeroValue.selector);
        router.initiateWithdraw(c, 0);
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterWithdrawTooLarge.selector, id, 10e18 + 1, 10e18));
        router.initiateWithdraw(c, 10e18 + 1);
        vm.stopPrank();
    }

    function test_withdraw_byPayerAuthorizer() public {
        (address agent,) = makeAddrAndKey("agent");
        IPaymentRouter.ChannelConfig memory c = _config(payer, agent);
        _deposit(c, 10e18);
        vm.prank(agent);
        router.initiateWithdraw(c, 3e18);
        vm.warp(block.timestamp + 1 hours);
        vm.prank(agent);
        router.finalizeWithdraw(c);
        assertEq(router.channels(router.channelId(c)).balance, 7e18);
    }

    function test_finalizeWithdraw_revertsWhen_noneOrNotPayer() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = _deposit(c, 10e18);
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterNoWithdrawal.selector, id));
        vm.prank(payer);
        router.finalizeWithdraw(c);
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterNotPayer.selector, id));
        vm.prank(other);
        router.finalizeWithdraw(c);
    }

    function test_refund_reducesThenCancelsPendingWithdrawal() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = _deposit(c, 10e18);
        vm.prank(payer);
        router.initiateWithdraw(c, 6e18);
        vm.expectEmit(true, true, false, true, address(router));
        emit IPaymentRouter.ChannelRefunded(id, payer, 2e18);
        vm.prank(gateway);
        router.refund(c, 2e18);
        (uint128 amount,) = router.pendingWithdrawal(id);
        assertEq(amount, 4e18);
        vm.prank(gateway);
        router.refund(c, 100e18); // capped to the 8e18 left, cancels the withdrawal
        (, uint64 requestedAt) = router.pendingWithdrawal(id);
        assertEq(requestedAt, 0);
        assertEq(router.channels(id).balance, 0);
        assertEq(token.balanceOf(address(router)), 0);
    }

    function test_refund_revertsWhen_notReceiverAuthorizerOrZero() public {
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = _deposit(c, 10e18);
        vm.expectRevert(abi.encodeWithSelector(IPaymentRouter.PaymentRouterNotReceiverAuthorizer.selector, id));
        vm.prank(payer);
        router.refund(c, 1);
        vm.expectRevert(IPaymentRouter.PaymentRouterZeroValue.selector);
        vm.prank(gateway);
        router.refund(c, 0);
    }

    function test_pause_revertsWhen_notPauser() public {
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, admin, router.PAUSER_ROLE())
        );
        vm.prank(admin);
        router.pause();
    }

    /// Finding 7: a dust-sized payment (here 1 wei) cannot round the protocol fee to zero: it rounds up.
    function test_settleExact_dustPaymentPaysFeeRoundedUp() public {
        IPaymentRouter.ExactPayment[] memory ps = new IPaymentRouter.ExactPayment[](10);
        for (uint256 i; i < 10; i++) ps[i] = _exact(1, keccak256(abi.encode("dust", i)));
        vm.prank(gateway);
        router.settleExactBatch(ps, MODEL);
        assertEq(token.balanceOf(feeRecipient), 10); // 10 rows of 1 wei: 10 wei of fee, not 0
        assertEq(dist.totalFunded(), 0);
    }

    // --- fuzz ---
    function testFuzz_settleExact_feeNeverAboveCap(uint96 value, uint16 feeBps) public {
        value = uint96(bound(value, 1, 1_000_000e18));
        feeBps = uint16(bound(feeBps, 0, MAX_FEE));
        vm.prank(feeManager);
        router.setFeeBps(feeBps);
        IPaymentRouter.ExactPayment memory p = _exact(value, keccak256(abi.encode(value, feeBps)));
        vm.prank(gateway);
        router.settleExact(p, MODEL);
        uint256 fee = token.balanceOf(feeRecipient);
        // Rounded up: at most the cap's share, plus less than one wei.
        assertLe(fee * 10_000, uint256(value) * MAX_FEE + 9_999);
        assertEq(fee, (uint256(value) * feeBps + 9_999) / 10_000);
        assertEq(fee + token.balanceOf(address(dist)), value);
        assertEq(dist.totalFunded(), value - fee);
    }

    function testFuzz_claim_conservesValue(uint128 deposit, uint128 first, uint128 second) public {
        deposit = uint128(bound(deposit, 2, 1_000_000e18));
        first = uint128(bound(first, 1, deposit - 1));
        second = uint128(bound(second, first + 1, deposit));
        IPaymentRouter.ChannelConfig memory c = _config(payer, address(0));
        bytes32 id = _deposit(c, deposit);
        IPaymentRouter.ChannelClaim memory r1 = _claimRow(c, payerKey, first, first);
        IPaymentRouter.ChannelClaim memory r2 = _claimRow(c, payerKey, second, second);
        vm.startPrank(gateway);
        router.claim(_one(r1));
        router.claim(_one(r2));
        vm.stopPrank();
        assertEq(router.channels(id).totalClaimed, second);
        assertEq(token.balanceOf(address(router)), deposit - second);
        assertEq(token.balanceOf(address(dist)) + token.balanceOf(feeRecipient), second);
    }

    function test_pause_unpauseRestoresAndKeepsFee() public {
        vm.startPrank(pauser);
        router.pause();
        assertTrue(router.paused());
        vm.expectRevert(Pausable.EnforcedPause.selector);
        router.pause();
        router.unpause();
        vm.expectRevert(Pausable.ExpectedPause.selector);
        router.unpause();
        vm.stopPrank();
        assertFalse(router.paused());
        assertEq(router.feeBps(), FEE);
        assertEq(router.feeRecipient(), feeRecipient);
        IPaymentRouter.ExactPayment memory p = _exact(1e18, keccak256("after-unpause"));
        vm.prank(gateway);
        router.settleExact(p, MODEL);
        assertEq(token.balanceOf(feeRecipient), 5e16);
    }
}
