// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {Vm} from "./utils/Vm.sol";
import {MockRewardToken} from "./mocks/MockRewardToken.sol";
import {MerkleHelper} from "./mocks/MerkleHelper.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";

/// @notice Invariant handler: funds, publishes growing cumulative roots and claims, keeping ghost totals.
contract DistributorHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    MockRewardToken public token;
    RewardDistributor public dist;
    address public publisher;

    uint256 internal constant N = 4;
    address[N] public accounts;
    uint256[N] public entitlement; // cumulative amounts in the accepted root
    bytes32[] internal leaves;

    uint256 public funded;
    uint64 public rootEpoch;
    uint256 public rootTotal;
    uint256 public claimedSum;
    uint256[N] public lastClaimed;
    bool public claimedDecreased;
    uint256 public calls;

    constructor(MockRewardToken token_, RewardDistributor dist_, address publisher_) {
        token = token_;
        dist = dist_;
        publisher = publisher_;
        for (uint256 i; i < N; ++i) accounts[i] = address(uint160(0xA000 + i));
        token.approve(address(dist_), type(uint256).max);
    }

    function fundRevenue(uint256 amount) external {
        amount = bound(amount, 1, 1e24);
        token.mint(address(this), amount);
        dist.fundRevenue(amount);
        funded += amount;
        _after();
    }

    function fundEmission() external {
        uint64 e = dist.currentEpoch();
        if (token.mintedInEpoch(e) == token.CAP_PER_EPOCH()) return;
        funded += dist.fundEmission(e);
        _after();
    }

    function publish(uint256 seed) external {
        uint256 total;
        for (uint256 i; i < N; ++i) total += entitlement[i];
        uint64 epoch = dist.nextEpoch();
        if (block.timestamp < dist.epochEnd(epoch)) vm.warp(dist.epochEnd(epoch));
        // a root may promise only what was funded up to its epoch's end (not later epochs' funding)
        uint256 through = dist.fundedThrough(epoch);
        if (through < total) return;
        uint256 spare = through - total;
        uint256[N] memory next;
        bytes32[] memory l = new bytes32[](N);
        for (uint256 i; i < N; ++i) {
            uint256 add = spare == 0 ? 0 : uint256(keccak256(abi.encode(seed, i))) % (spare / N + 1);
            next[i] = entitlement[i] + add;
            total += add;
            l[i] = MerkleHelper.leaf(accounts[i], next[i]);
        }
        vm.prank(publisher);
        dist.proposeRoot(MerkleHelper.root(l), epoch, bytes32(seed), total, "");
        rootEpoch = epoch;
        rootTotal = total;
        vm.warp(block.timestamp + dist.challengeDelay());
        dist.acceptRoot();
        leaves = l;
        entitlement = next;
        _after();
    }

    function claim(uint256 who) external {
        uint256 i = bound(who, 0, N - 1);
        if (leaves.length == 0 || entitlement[i] <= dist.claimed(accounts[i])) return;
        uint256 paid = dist.claimFor(accounts[i], entitlement[i], MerkleHelper.proof(leaves, i));
        claimedSum += paid;
        _after();
    }

    function claimAll() external {
        if (leaves.length == 0) return;
        uint256 n;
        for (uint256 i; i < N; ++i) if (entitlement[i] > dist.claimed(accounts[i])) ++n;
        address[] memory a = new address[](n);
        uint256[] memory c = new uint256[](n);
        bytes32[][] memory p = new bytes32[][](n);
        uint256 k;
        for (uint256 i; i < N; ++i) {
            if (entitlement[i] <= dist.claimed(accounts[i])) continue;
            (a[k], c[k], p[k]) = (accounts[i], entitlement[i], MerkleHelper.proof(leaves, i));
            ++k;
        }
        claimedSum += dist.claimForBatch(a, c, p);
        _after();
    }

    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }

    function _after() private {
        ++calls;
        for (uint256 i; i < N; ++i) {
            uint256 c = dist.claimed(accounts[i]);
            if (c < lastClaimed[i]) claimedDecreased = true;
            lastClaimed[i] = c;
        }
    }
}
contract RewardDistributorInvariantTest is Test {
    MockRewardToken internal token;
    RewardDistributor internal dist;
    DistributorHandler internal handler;

    function setUp() public {
        vm.warp(1_000_010);
        token = new MockRewardToken(1_000_000e18, predictCreate(1));
        dist = new RewardDistributor(address(token), 1_000_000, 1 days, address(this), 1 hours);
        address publisher = address(0xB0B);
        dist.grantRole(dist.PUBLISHER_ROLE(), publisher);
        handler = new DistributorHandler(token, dist, publisher);
        targetContract(address(handler));
    }

    /// distributor balance = funded - claimed (the handler is the only funder; nobody donates).
    function invariant_balanceEqualsFundedMinusClaimed() public view {
        assertEq(token.balanceOf(address(dist)), handler.funded() - handler.claimedSum());
        assertEq(dist.totalFunded(), handler.funded());
        assertLe(handler.claimedSum(), dist.totalFunded());
    }

    /// An account's claimed total never decreases, and never exceeds its entitlement.
    function invariant_claimedNeverDecreases() public view {
        assertFalse(handler.claimedDecreased());
        for (uint256 i; i < 4; ++i) {
            assertLe(dist.claimed(handler.accounts(i)), handler.entitlement(i));
        }
    }

    /// Accepted roots never promise more than was funded.
    function invariant_entitlementsWithinFunding() public view {
        uint256 total;
        for (uint256 i; i < 4; ++i) total += handler.entitlement(i);
        assertLe(total, dist.totalFunded());
    }

    /// Finding 5: the last root promises at most what was funded up to its epoch's end; `fundedThrough` never
    /// exceeds the all-time total and never decreases with the epoch.
    function invariant_rootWithinFundedThroughItsEpoch() public view {
        assertLe(handler.rootTotal(), dist.fundedThrough(handler.rootEpoch()));
        uint64 e = handler.rootEpoch();
        assertLe(dist.fundedThrough(e), dist.fundedThrough(e + 1));
        assertLe(dist.fundedThrough(e + 1), dist.totalFunded());
    }
}
