// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {Vm} from "./utils/Vm.sol";
import {RewardToken} from "../src/RewardToken.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {PaymentRouter} from "../src/PaymentRouter.sol";
import {IPaymentRouter} from "../src/interfaces/IPaymentRouter.sol";

/// @notice Invariant handler: deposits, voucher claims, timed withdrawals and refunds over a few channels. The
/// handler is the gateway (SETTLER and every channel's receiver authorizer); payers are keys it signs with.
contract ChannelHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant N = 3;

    RewardToken public immutable token;
    PaymentRouter public immutable router;
    uint256[N] internal keys;
    IPaymentRouter.ChannelConfig[N] internal configs;
    bytes32[N] public ids;

    uint256 public deposited;
    uint256 public settled;
    uint256 public refunded; // refunds + finalized withdrawals
    uint256 public calls;

    constructor(RewardToken token_, PaymentRouter router_) {
        token = token_;
        router = router_;
        token.approve(address(router_), type(uint256).max);
        for (uint256 i; i < N; ++i) {
            keys[i] = uint256(keccak256(abi.encode("payer", i)));
            configs[i] = IPaymentRouter.ChannelConfig(
                vm.addr(keys[i]), address(0), address(router_), address(this), address(token_), 1 hours, bytes32(i)
            );
            ids[i] = router_.channelId(configs[i]);
        }
    }

    function _bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }

    function deposit(uint256 who, uint256 amount) external {
        uint256 i = who % N;
        amount = _bound(amount, 1, 1e24);
        router.deposit(configs[i], uint128(amount)); // the handler holds the tokens and tops the channel up
        deposited += amount;
        ++calls;
    }

    function claim(uint256 who, uint256 amount) external {
        uint256 i = who % N;
        IPaymentRouter.Channel memory ch = router.channels(ids[i]);
        if (ch.balance <= ch.totalClaimed) return;
        uint128 next = ch.totalClaimed + uint128(_bound(amount, 1, ch.balance - ch.totalClaimed));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[i], router.voucherDigest(ids[i], next));
        IPaymentRouter.ChannelClaim[] memory rows = new IPaymentRouter.ChannelClaim[](1);
        rows[0] = IPaymentRouter.ChannelClaim(configs[i], next, next, abi.encodePacked(r, s, v), bytes32(0), 0, 1);
        router.claim(rows);
        settled += next - ch.totalClaimed;
        ++calls;
    }

    function initiateWithdraw(uint256 who, uint256 amount) external {
        uint256 i = who % N;
        IPaymentRouter.Channel memory ch = router.channels(ids[i]);
        if (ch.balance <= ch.totalClaimed) return;
        vm.prank(configs[i].payer);
        router.initiateWithdraw(configs[i], uint128(_bound(amount, 1, ch.balance - ch.totalClaimed)));
        ++calls;
    }

    function finalizeWithdraw(uint256 who) external {
        uint256 i = who % N;
        (, uint64 requestedAt) = router.pendingWithdrawal(ids[i]);
        if (requestedAt == 0) return;
        if (block.timestamp < requestedAt + 1 hours) vm.warp(requestedAt + 1 hours);
        address payer = configs[i].payer;
        uint256 before = token.balanceOf(payer);
        vm.prank(payer);
        router.finalizeWithdraw(configs[i]);
        refunded += token.balanceOf(payer) - before;
        ++calls;
    }

    function refund(uint256 who, uint256 amount) external {
        uint256 i = who % N;
        address payer = configs[i].payer;
        uint256 before = token.balanceOf(payer);
        router.refund(configs[i], uint128(_bound(amount, 1, 1e24)));
        refunded += token.balanceOf(payer) - before;
        ++calls;
    }

    function unclaimedTotal() external view returns (uint256 total) {
        for (uint256 i; i < N; ++i) {
            IPaymentRouter.Channel memory ch = router.channels(ids[i]);
            total += ch.balance - ch.totalClaimed;
        }
    }
}

contract PaymentRouterInvariantTest is Test {
    RewardToken internal token;
    RewardDistributor internal dist;
    PaymentRouter internal router;
    ChannelHandler internal handler;
    address internal feeRecipient = address(0xFEE);

    function setUp() public {
        vm.warp(1_000_010);
        token = new RewardToken(
            "Cairn", "CAIRN", address(this), 1_000_000, 1 days, type(uint128).max, 0, predictCreate(1)
        );
        dist = new RewardDistributor(address(token), 1_000_000, 1 days, address(this), 1 hours);
        router = new PaymentRouter(address(token), 1_000_000, 1 days, address(this), address(dist), 1000, 300, feeRecipient);
        handler = new ChannelHandler(token, router);
        router.grantRole(router.SETTLER_ROLE(), address(handler));
        vm.prank(address(dist)); // only the distributor mints
        token.mintEmission(0, address(handler), 1e30);
        targetContract(address(handler));
    }

    /// channel deposits = settled + refunded + balance (unclaimed escrow), and the router holds exactly the escrow.
    function invariant_channelConservation() public view {
        uint256 unclaimed = handler.unclaimedTotal();
        assertEq(handler.deposited(), handler.settled() + handler.refunded() + unclaimed);
        assertEq(token.balanceOf(address(router)), unclaimed);
        // the escrow the router tracks (what a front-run exact row can never take) is exactly the unclaimed sum
        assertEq(router.escrowed(), unclaimed);
    }

    /// Everything settled reached the pool or the fee recipient; the fee never exceeds the cap.
    function invariant_settledReachesPoolAndFee() public view {
        assertEq(token.balanceOf(address(dist)) + token.balanceOf(feeRecipient), handler.settled());
        assertEq(dist.totalFunded(), token.balanceOf(address(dist)));
        // Fees round up per settled row: at most the cap's share plus one wei per settlement call.
        assertLe(token.balanceOf(feeRecipient) * 10_000, handler.settled() * 1000 + handler.calls() * 10_000);
    }
}
