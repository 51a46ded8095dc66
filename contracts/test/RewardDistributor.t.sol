// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {MockRewardToken} from "./mocks/MockRewardToken.sol";
import {MerkleHelper} from "./mocks/MerkleHelper.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {IRewardDistributor} from "../src/interfaces/IRewardDistributor.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @notice Shared fixture: clock (genesis 1,000,000, 1-day epochs), mock token, distributor with roles granted.
abstract contract RewardDistributorFixture is Test {
    uint64 internal constant GENESIS = 1_000_000;
    uint64 internal constant LENGTH = 1 days;
    uint64 internal constant DELAY = 1 hours;
    uint256 internal constant CAP = 1_000_000e18;

    MockRewardToken internal token;
    RewardDistributor internal dist;
    address internal admin = makeAddr("admin");
    address internal publisher = makeAddr("publisher");
    address internal guardian = makeAddr("guardian");
    address internal pauser = makeAddr("pauser");
    address internal funder = makeAddr("funder");

    function setUp() public virtual {
        vm.warp(GENESIS + 10);
        token = new MockRewardToken(CAP, predictCreate(1));
        dist = new RewardDistributor(address(token), GENESIS, LENGTH, admin, DELAY);
        vm.startPrank(admin);
        dist.grantRole(dist.PUBLISHER_ROLE(), publisher);
        dist.grantRole(dist.GUARDIAN_ROLE(), guardian);
        dist.grantRole(dist.PAUSER_ROLE(), pauser);
        vm.stopPrank();
        token.mint(funder, 10_000_000e18);
        vm.prank(funder);
        token.approve(address(dist), type(uint256).max);
    }

    function _fund(uint256 amount) internal {
        vm.prank(funder);
        dist.fundRevenue(amount);
    }

    /// @dev Sorted accounts 1..n (as addresses) with amounts `base * (i + 1)`.
    function _accounts(uint256 n) internal pure returns (address[] memory a) {
        a = new address[](n);
        for (uint256 i; i < n; ++i) a[i] = address(uint160(0x1000 + i));
    }

    function _leaves(address[] memory a, uint256[] memory amounts) internal pure returns (bytes32[] memory l) {
        l = new bytes32[](a.length);
        for (uint256 i; i < a.length; ++i) l[i] = MerkleHelper.leaf(a[i], amounts[i]);
    }

    /// @dev Propose + wait + accept a root for the next epoch (warping past its end if needed).
    function _publish(bytes32 r, uint256 total) internal returns (uint64 epoch) {
        epoch = dist.nextEpoch();
        if (block.timestamp < dist.epochEnd(epoch)) vm.warp(dist.epochEnd(epoch));
        vm.prank(publisher);
        dist.proposeRoot(r, epoch, keccak256("policy"), total, "ipfs://alloc");
        vm.warp(block.timestamp + DELAY);
        dist.acceptRoot();
    }
}

contract RewardDistributorTest is RewardDistributorFixture {
    address[] internal accts;
    uint256[] internal amts;
    bytes32[] internal leaves;
    bytes32 internal root1;

    function setUp() public override {
        super.setUp();
        accts = _accounts(5);
        amts = new uint256[](5);
        for (uint256 i; i < 5; ++i) amts[i] = (i + 1) * 100e18;
        leaves = _leaves(accts, amts);
        root1 = MerkleHelper.root(leaves);
        _fund(1_500e18);
    }

    // --- constructor ---
    function test_constructor_revertsWhen_zeroToken() public {
        vm.expectRevert(IRewardDistributor.RewardDistributorZeroValue.selector);
        new RewardDistributor(address(0), GENESIS, LENGTH, admin, DELAY);
    }

    function test_constructor_revertsWhen_zeroAdmin() public {
        vm.expectRevert(IRewardDistributor.RewardDistributorZeroValue.selector);
        new RewardDistributor(address(token), GENESIS, LENGTH, address(0), DELAY);
    }

    function test_constructor_revertsWhen_invalidDelay() public {
        vm.expectRevert(IRewardDistributor.RewardDistributorInvalidDelay.selector);
        new RewardDistributor(address(token), GENESIS, LENGTH, admin, 0);
        vm.expectRevert(IRewardDistributor.RewardDistributorInvalidDelay.selector);
        new RewardDistributor(address(token), GENESIS, LENGTH, admin, 30 days + 1);
    }

    function test_constructor_adminHasOnlyAdminRole() public view {
        assertTrue(dist.hasRole(dist.DEFAULT_ADMIN_ROLE(), admin));
        assertFalse(dist.hasRole(dist.PUBLISHER_ROLE(), admin));
        assertFalse(dist.hasRole(dist.GUARDIAN_ROLE(), admin));
        assertEq(dist.challengeDelay(), DELAY);
        assertEq(dist.FIRST_EPOCH(), 0);
    }

    // --- funding ---
    function test_fundRevenue_emitsAndCounts() public {
        vm.expectEmit(true, true, false, true, address(dist));
        emit IRewardDistributor.EpochFunded(0, funder, 7, 1);
        _fund(7);
        assertEq(dist.totalFunded(), 1_500e18 + 7);
        assertEq(token.balanceOf(address(dist)), 1_500e18 + 7);
    }

    function test_fundRevenue_revertsWhen_zero() public {
        vm.expectRevert(IRewardDistributor.RewardDistributorZeroValue.selector);
        dist.fundRevenue(0);
    }

    function test_fundEmission_mintsOncePerEpoch() public {
        vm.expectEmit(true, true, false, true, address(dist));
        emit IRewardDistributor.EpochFunded(0, address(0), CAP, 0);
        assertEq(dist.fundEmission(0), CAP);
        assertEq(dist.totalFunded(), 1_500e18 + CAP);
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.RewardDistributorEmissionUnavailable.selector, 0));
        dist.fundEmission(0);
    }

    function test_fundEmission_revertsWhen_epochEnded() public {
        vm.warp(GENESIS + LENGTH); // epoch 0 has ended: its pool is closed
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.RewardDistributorEmissionUnavailable.selector, 0));
        dist.fundEmission(0);
        assertEq(dist.fundEmission(1), CAP); // the running epoch can be funded
    }

    function test_fundEmission_revertsWhen_epochNotStarted() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.RewardDistributorEmissionUnavailable.selector, 1));
        dist.fundEmission(1);
    }

    // --- proposals ---
    function test_proposeRoot_revertsWhen_notPublisher() public {
        vm.warp(GENESIS + LENGTH);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, address(this), dist.PUBLISHER_ROLE()
            )
        );
        dist.proposeRoot(root1, 0, bytes32(0), 0, "");
    }

    function test_proposeRoot_revertsWhen_zeroRoot() public {
        vm.warp(GENESIS + LENGTH);
        vm.prank(publisher);
        vm.expectRevert(IRewardDistributor.RewardDistributorZeroRoot.selector);
        dist.proposeRoot(bytes32(0), 0, bytes32(0), 0, "");
    }

    function test_proposeRoot_revertsWhen_epochNotEnded() public {
        vm.warp(GENESIS + LENGTH - 1);
        vm.prank(publisher);
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.RewardDistributorEpochNotEnded.selector, 0));
        dist.proposeRoot(root1, 0, bytes32(0), 0, "");
    }

    function test_proposeRoot_revertsWhen_notNextEpoch() public {
        vm.warp(GENESIS + 5 * LENGTH);
        vm.prank(publisher);
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.RewardDistributorNotNextEpoch.selector, 1, 0));
        dist.proposeRoot(root1, 1, bytes32(0), 0, "");
        _publish(root1, 1_500e18);
        vm.prank(publisher);
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.RewardDistributorNotNextEpoch.selector, 0, 1));
        dist.proposeRoot(root1, 0, bytes32(0), 0, "");
        vm.prank(publisher);
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.RewardDistributorNotNextEpoch.selector, 2, 1));
        dist.proposeRoot(root1, 2, bytes32(0), 0, "");
    }

    function test_proposeRoot_revertsWhen_exceedsFunded() public {
        vm.warp(GENESIS + LENGTH);
        vm.prank(publisher);
        vm.expectRevert(
            abi.encodeWithSelector(IRewardDistributor.RewardDistributorExceedsFunded.selector, 1_500e18 + 1, 1_500e18)
        );
        dist.proposeRoot(root1, 0, bytes32(0), 1_500e18 + 1, "");
    }

    function test_proposeRoot_emitsAndStoresValidAt() public {
        vm.warp(GENESIS + LENGTH);
        vm.expectEmit(true, true, false, true, address(dist));
        emit IRewardDistributor.RootProposed(
            0, root1, keccak256("p"), 1_500e18, uint64(block.timestamp) + DELAY, "ipfs://x"
        );
        vm.prank(publisher);
        dist.proposeRoot(root1, 0, keccak256("p"), 1_500e18, "ipfs://x");
        (bytes32 r, uint64 e, uint64 validAt) = dist.pendingRoot();
        assertEq(r, root1);
        assertEq(e, 0);
        assertEq(validAt, uint64(block.timestamp) + DELAY);
    }

    /// Cantina (Morpho URD): the publisher must not be able to restart a pending root's timer.
    function test_proposeRoot_revertsWhen_pendingRootWaiting() public {
        vm.warp(GENESIS + LENGTH);
        vm.prank(publisher);
        dist.proposeRoot(root1, 0, bytes32(0), 0, "");
        uint64 validAt = uint64(block.timestamp) + DELAY;
        vm.warp(block.timestamp + DELAY - 1);
        vm.prank(publisher);
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.RewardDistributorRootPending.selector, 0, validAt));
        dist.proposeRoot(keccak256("other"), 0, bytes32(0), 0, "");
        // and the original timer still runs out on schedule
        vm.warp(validAt);
        dist.acceptRoot();
        (bytes32 r,,) = dist.root();
        assertEq(r, root1);
    }

    function test_proposeRoot_acceptsDuePendingFirst() public {
        vm.warp(GENESIS + 2 * LENGTH);
        vm.prank(publisher);
        dist.proposeRoot(root1, 0, bytes32(0), 0, "");
        vm.warp(block.timestamp + DELAY);
        bytes32 root2 = keccak256("r2");
        vm.expectEmit(true, true, false, false, address(dist));
        emit IRewardDistributor.RootAccepted(0, root1);
        vm.prank(publisher);
        dist.proposeRoot(root2, 1, bytes32(0), 0, "");
        (bytes32 r, uint64 e,) = dist.root();
        assertEq(r, root1);
        assertEq(e, 0);
        (bytes32 p, uint64 pe,) = dist.pendingRoot();
        assertEq(p, root2);
        assertEq(pe, 1);
    }

    // --- revoke / accept and their races ---
    function test_revokeRoot_revertsWhen_notGuardian() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, publisher, dist.GUARDIAN_ROLE()
            )
        );
        vm.prank(publisher);
        dist.revokeRoot();
    }

    function test_revokeRoot_revertsWhen_nothingPending() public {
        vm.prank(guardian);
        vm.expectRevert(IRewardDistributor.RewardDistributorNoPendingRoot.selector);
        dist.revokeRoot();
    }

    function test_revokeRoot_thenReproposeSameEpoch() public {
        vm.warp(GENESIS + LENGTH);
        vm.prank(publisher);
        dist.proposeRoot(root1, 0, bytes32(0), 0, "");
        vm.expectEmit(true, true, true, false, address(dist));
        emit IRewardDistributor.RootRevoked(0, root1, guardian);
        vm.prank(guardian);
        dist.revokeRoot();
        (,, uint64 validAt) = dist.pendingRoot();
        assertEq(validAt, 0);
        vm.expectRevert(IRewardDistributor.RewardDistributorNoPendingRoot.selector);
        dist.acceptRoot();
        assertEq(dist.nextEpoch(), 0);
        vm.prank(publisher);
        dist.proposeRoot(keccak256("fixed"), 0, bytes32(0), 0, "");
    }

    function test_race_revokeLastSecondWins_acceptAtValidAtWins() public {
        vm.warp(GENESIS + LENGTH);
        vm.prank(publisher);
        dist.proposeRoot(root1, 0, bytes32(0), 0, "");
        uint64 validAt = uint64(block.timestamp) + DELAY;
        uint256 snap = vm.snapshotState();
        // one second before validAt: accept fails, revoke succeeds
        vm.warp(validAt - 1);
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.RewardDistributorRootNotDue.selector, validAt));
        dist.acceptRoot();
        vm.prank(guardian);
        dist.revokeRoot();
        vm.revertToState(snap);
        // at validAt: revoke fails, accept succeeds
        vm.warp(validAt);
        vm.prank(guardian);
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.RewardDistributorRevokeTooLate.selector, validAt));
        dist.revokeRoot();
        dist.acceptRoot();
        (bytes32 r,, uint64 rv) = dist.root();
        assertEq(r, root1);
        assertEq(rv, validAt);
    }

    function test_previousRootUsableWhileNewOneWaits() public {
        _publish(root1, 1_500e18);
        // new root for epoch 1 with everyone's cumulative doubled; still pending
        uint256[] memory amts2 = new uint256[](5);
        for (uint256 i; i < 5; ++i) amts2[i] = amts[i] * 2;
        bytes32 root2 = MerkleHelper.root(_leaves(accts, amts2));
        _fund(1_500e18);
        vm.warp(dist.epochEnd(1));
        vm.prank(publisher);
        dist.proposeRoot(root2, 1, bytes32(0), 3_000e18, "");
        // old root still pays
        dist.claimFor(accts[0], amts[0], MerkleHelper.proof(leaves, 0));
        assertEq(token.balanceOf(accts[0]), amts[0]);
        // new root not yet claimable
        bytes32[] memory p2 = MerkleHelper.proof(_leaves(accts, amts2), 0);
        vm.expectRevert(IRewardDistributor.RewardDistributorInvalidProof.selector);
        dist.claimFor(accts[0], amts2[0], p2);
        vm.warp(block.timestamp + DELAY);
        dist.acceptRoot();
        dist.claimFor(accts[0], amts2[0], p2);
        assertEq(token.balanceOf(accts[0]), amts2[0]);
    }

    function test_acceptRoot_revertsWhen_notDueOrNone() public {
        vm.expectRevert(IRewardDistributor.RewardDistributorNoPendingRoot.selector);
        dist.acceptRoot();
        vm.warp(GENESIS + LENGTH);
        vm.prank(publisher);
        dist.proposeRoot(root1, 0, bytes32(0), 0, "");
        vm.expectRevert(
            abi.encodeWithSelector(IRewardDistributor.RewardDistributorRootNotDue.selector, block.timestamp + DELAY)
        );
        dist.acceptRoot();
    }

    // --- claims ---
    function test_claim_revertsWhen_noRoot() public {
        bytes32[] memory p = MerkleHelper.proof(leaves, 0);
        vm.expectRevert(IRewardDistributor.RewardDistributorNoRoot.selector);
        dist.claimFor(accts[0], amts[0], p);
    }

    function test_claim_paysCallerAndEmits() public {
        _publish(root1, 1_500e18);
        bytes32[] memory p = MerkleHelper.proof(leaves, 2);
        vm.expectEmit(true, true, false, true, address(dist));
        emit IRewardDistributor.Claimed(accts[2], accts[2], amts[2], amts[2]);
        vm.prank(accts[2]);
        assertEq(dist.claim(amts[2], p), amts[2]);
        assertEq(token.balanceOf(accts[2]), amts[2]);
        assertEq(dist.claimed(accts[2]), amts[2]);
    }

    function test_claim_revertsWhen_invalidProof() public {
        _publish(root1, 1_500e18);
        bytes32[] memory p = MerkleHelper.proof(leaves, 1);
        vm.expectRevert(IRewardDistributor.RewardDistributorInvalidProof.selector);
        dist.claimFor(accts[1], amts[1] + 1, p); // wrong amount
        vm.expectRevert(IRewardDistributor.RewardDistributorInvalidProof.selector);
        dist.claimFor(accts[0], amts[1], p); // wrong account
        vm.prank(accts[0]);
        vm.expectRevert(IRewardDistributor.RewardDistributorInvalidProof.selector);
        dist.claim(amts[1], p); // caller is not the leaf's account
    }

    function test_claim_revertsWhen_internalNodeAsLeaf() public {
        _publish(root1, 1_500e18);
        // A 64-byte "leaf" made of two children of an internal node must not verify (double-hashed leaves).
        bytes32[] memory p = MerkleHelper.proof(leaves, 0);
        bytes32[] memory shorter = new bytes32[](p.length - 1);
        for (uint256 i = 1; i < p.length; ++i) shorter[i - 1] = p[i];
        (address a, uint256 amt) = (address(uint160(uint256(leaves[0]))), uint256(leaves[1]));
        vm.expectRevert(IRewardDistributor.RewardDistributorInvalidProof.selector);
        dist.claimFor(a, amt, shorter);
    }

    function test_claimFor_paysAccountNotCaller() public {
        _publish(root1, 1_500e18);
        address relayer = makeAddr("relayer");
        vm.expectEmit(true, true, false, true, address(dist));
        emit IRewardDistributor.Claimed(accts[3], relayer, amts[3], amts[3]);
        vm.prank(relayer);
        dist.claimFor(accts[3], amts[3], MerkleHelper.proof(leaves, 3));
        assertEq(token.balanceOf(accts[3]), amts[3]);
        assertEq(token.balanceOf(relayer), 0);
    }

    function test_claim_revertsWhen_nothingToClaim() public {
        _publish(root1, 1_500e18);
        bytes32[] memory p = MerkleHelper.proof(leaves, 0);
        dist.claimFor(accts[0], amts[0], p);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRewardDistributor.RewardDistributorNothingToClaim.selector, accts[0], amts[0], amts[0]
            )
        );
        dist.claimFor(accts[0], amts[0], p);
    }

    function test_claim_cumulativePaysOnlyDelta() public {
        _publish(root1, 1_500e18);
        dist.claimFor(accts[1], amts[1], MerkleHelper.proof(leaves, 1));
        uint256[] memory amts2 = new uint256[](5);
        for (uint256 i; i < 5; ++i) amts2[i] = amts[i] + 10e18;
        bytes32[] memory l2 = _leaves(accts, amts2);
        _fund(50e18);
        _publish(MerkleHelper.root(l2), 1_550e18);
        uint256 paid = dist.claimFor(accts[1], amts2[1], MerkleHelper.proof(l2, 1));
        assertEq(paid, 10e18);
        assertEq(token.balanceOf(accts[1]), amts2[1]);
    }

    // --- batch ---
    function test_claimForBatch_paysAll() public {
        _publish(root1, 1_500e18);
        bytes32[][] memory proofs = new bytes32[][](5);
        for (uint256 i; i < 5; ++i) proofs[i] = MerkleHelper.proof(leaves, i);
        uint256 total = dist.claimForBatch(accts, amts, proofs);
        assertEq(total, 1_500e18);
        for (uint256 i; i < 5; ++i) assertEq(token.balanceOf(accts[i]), amts[i]);
        assertEq(token.balanceOf(address(dist)), 0);
    }

    /// Finding 3: a front-run `claimFor` on the last account no longer reverts the batch; it is skipped.
    function test_claimForBatch_skipsAccountThatAlreadyClaimed() public {
        _publish(root1, 1_500e18);
        bytes32[][] memory proofs = new bytes32[][](5);
        for (uint256 i; i < 5; ++i) proofs[i] = MerkleHelper.proof(leaves, i);
        dist.claimFor(accts[4], amts[4], proofs[4]); // the griefer's front-run
        vm.expectEmit(true, false, false, true, address(dist));
        emit IRewardDistributor.ClaimSkipped(accts[4], amts[4], amts[4]);
        uint256 total = dist.claimForBatch(accts, amts, proofs);
        assertEq(total, 1_500e18 - amts[4]);
        for (uint256 i; i < 5; ++i) assertEq(token.balanceOf(accts[i]), amts[i]);
        assertEq(token.balanceOf(address(dist)), 0);
    }

    /// Nobody else can make a proof invalid, so an invalid one still reverts the whole batch.
    function test_claimForBatch_revertsWhen_invalidProof() public {
        _publish(root1, 1_500e18);
        bytes32[][] memory proofs = new bytes32[][](5);
        for (uint256 i; i < 5; ++i) proofs[i] = MerkleHelper.proof(leaves, i);
        proofs[2] = proofs[1];
        vm.expectRevert(IRewardDistributor.RewardDistributorInvalidProof.selector);
        dist.claimForBatch(accts, amts, proofs);
    }

    /// Whatever subset claimed before, the batch pays exactly the rest and skips (never pays twice) the others.
    function testFuzz_claimForBatch_paysRestSkipsClaimed(uint8 claimedMask) public {
        _publish(root1, 1_500e18);
        bytes32[][] memory proofs = new bytes32[][](5);
        uint256 expected;
        for (uint256 i; i < 5; ++i) {
            proofs[i] = MerkleHelper.proof(leaves, i);
            if (claimedMask & (1 << i) != 0) dist.claimFor(accts[i], amts[i], proofs[i]);
            else expected += amts[i];
        }
        assertEq(dist.claimForBatch(accts, amts, proofs), expected);
        for (uint256 i; i < 5; ++i) assertEq(token.balanceOf(accts[i]), amts[i]);
    }

    /// Finding 5: a root of epoch 0 may not promise emission funded in epoch 1 (which `totalFunded` includes).
    function test_proposeRoot_revertsWhen_exceedsFundedThroughItsEpoch() public {
        vm.warp(GENESIS + LENGTH); // epoch 1 runs; epoch 0 funded 1,500
        dist.fundEmission(1);
        assertEq(dist.totalFunded(), 1_500e18 + CAP);
        assertEq(dist.fundedThrough(0), 1_500e18);
        assertEq(dist.fundedThrough(1), 1_500e18 + CAP);
        vm.prank(publisher);
        vm.expectRevert(
            abi.encodeWithSelector(IRewardDistributor.RewardDistributorExceedsFunded.selector, 1_500e18 + 1, 1_500e18)
        );
        dist.proposeRoot(root1, 0, bytes32(0), 1_500e18 + 1, "");
        vm.prank(publisher);
        dist.proposeRoot(root1, 0, bytes32(0), 1_500e18, "");
    }

    /// `fundedThrough(e)` is the sum of what was funded during epochs 0..e, whatever epochs were skipped.
    function testFuzz_fundedThrough_sumsFundingUpToEachEpoch(uint8[6] memory gaps, uint96[6] memory amounts) public {
        uint256[] memory through = new uint256[](64);
        uint256 total = 1_500e18; // funded in epoch 0 by setUp
        uint64 epoch;
        for (uint256 k; k < 6; ++k) {
            uint64 next = epoch + uint64(gaps[k] % 8);
            for (uint64 e = epoch; e < next; ++e) through[e] = total;
            epoch = next;
            vm.warp(GENESIS + uint256(epoch) * LENGTH + 1);
            uint256 amount = bound(amounts[k], 1, 1e24);
            _fund(amount);
            total += amount;
        }
        for (uint64 e; e <= epoch; ++e) {
            uint256 want = e == epoch ? total : through[e];
            assertEq(dist.fundedThrough(e), want);
        }
        assertEq(dist.fundedThrough(epoch + 5), total);
    }

    /// Level Finance (2023): the same account twice in one batch must not be paid twice.
    function test_claimForBatch_revertsWhen_duplicateAccount() public {
        _publish(root1, 1_500e18);
        address[] memory a = new address[](2);
        uint256[] memory c = new uint256[](2);
        bytes32[][] memory p = new bytes32[][](2);
        a[0] = accts[1];
        a[1] = accts[1];
        c[0] = amts[1];
        c[1] = amts[1];
        p[0] = MerkleHelper.proof(leaves, 1);
        p[1] = p[0];
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.RewardDistributorUnsortedAccounts.selector, 1));
        dist.claimForBatch(a, c, p);
    }

    function test_claimForBatch_revertsWhen_unsorted() public {
        _publish(root1, 1_500e18);
        address[] memory a = new address[](2);
        uint256[] memory c = new uint256[](2);
        bytes32[][] memory p = new bytes32[][](2);
        (a[0], a[1]) = (accts[2], accts[1]);
        (c[0], c[1]) = (amts[2], amts[1]);
        (p[0], p[1]) = (MerkleHelper.proof(leaves, 2), MerkleHelper.proof(leaves, 1));
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.RewardDistributorUnsortedAccounts.selector, 1));
        dist.claimForBatch(a, c, p);
    }

    function test_claimForBatch_revertsWhen_zeroAddressFirst() public {
        _publish(root1, 1_500e18);
        address[] memory a = new address[](1);
        uint256[] memory c = new uint256[](1);
        bytes32[][] memory p = new bytes32[][](1);
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.RewardDistributorUnsortedAccounts.selector, 0));
        dist.claimForBatch(a, c, p);
    }

    function test_claimForBatch_revertsWhen_lengthMismatch() public {
        _publish(root1, 1_500e18);
        vm.expectRevert(IRewardDistributor.RewardDistributorLengthMismatch.selector);
        dist.claimForBatch(accts, new uint256[](4), new bytes32[][](5));
        vm.expectRevert(IRewardDistributor.RewardDistributorLengthMismatch.selector);
        dist.claimForBatch(accts, amts, new bytes32[][](4));
    }

    // --- pause ---
    function test_pause_blocksClaimsAndUnpauseRestores() public {
        _publish(root1, 1_500e18);
        bytes32[] memory p = MerkleHelper.proof(leaves, 0);
        vm.prank(pauser);
        dist.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        dist.claimFor(accts[0], amts[0], p);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        dist.claimForBatch(new address[](0), new uint256[](0), new bytes32[][](0));
        vm.prank(pauser);
        dist.unpause();
        dist.claimFor(accts[0], amts[0], p);
        assertEq(token.balanceOf(accts[0]), amts[0]);
    }

    function test_pause_acceptWhilePausedStaysPaused() public {
        vm.prank(pauser);
        dist.pause();
        _publish(root1, 1_500e18);
        bytes32[] memory p = MerkleHelper.proof(leaves, 0);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        dist.claimFor(accts[0], amts[0], p);
        vm.prank(pauser);
        dist.unpause();
        dist.claimFor(accts[0], amts[0], p);
    }

    function test_pause_revertsWhen_notPauser() public {
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, admin, dist.PAUSER_ROLE())
        );
        vm.prank(admin);
        dist.pause();
    }

    // --- fuzz ---
    function testFuzz_claim_twoRootsPayExactlyCumulative(uint96 first, uint96 extra, uint8 who) public {
        uint256 i = bound(who, 0, 4);
        uint256[] memory a1 = new uint256[](5);
        uint256[] memory a2 = new uint256[](5);
        a1[i] = bound(first, 1, type(uint96).max);
        a2[i] = a1[i] + uint256(extra);
        token.mint(funder, a2[i]);
        _fund(a2[i]);
        bytes32[] memory l1 = _leaves(accts, a1);
        bytes32[] memory l2 = _leaves(accts, a2);
        _publish(MerkleHelper.root(l1), a1[i]);
        dist.claimFor(accts[i], a1[i], MerkleHelper.proof(l1, i));
        _publish(MerkleHelper.root(l2), a2[i]);
        if (extra == 0) {
            bytes32[] memory p = MerkleHelper.proof(l2, i);
            vm.expectRevert(
                abi.encodeWithSelector(
                    IRewardDistributor.RewardDistributorNothingToClaim.selector, accts[i], a2[i], a1[i]
                )
            );
            dist.claimFor(accts[i], a2[i], p);
        } else {
            assertEq(dist.claimFor(accts[i], a2[i], MerkleHelper.proof(l2, i)), extra);
        }
        assertEq(token.balanceOf(accts[i]), a2[i]);
        assertEq(dist.claimed(accts[i]), a2[i]);
    }

    function testFuzz_claimForBatch_rejectsAnyNonIncreasingPair(uint8 x, uint8 y) public {
        _publish(root1, 1_500e18);
        uint256 i = bound(x, 0, 4);
        uint256 j = bound(y, 0, 4);
        vm.assume(j <= i);
        address[] memory a = new address[](2);
        uint256[] memory c = new uint256[](2);
        bytes32[][] memory p = new bytes32[][](2);
        (a[0], a[1]) = (accts[i], accts[j]);
        (c[0], c[1]) = (amts[i], amts[j]);
        (p[0], p[1]) = (MerkleHelper.proof(leaves, i), MerkleHelper.proof(leaves, j));
        vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.RewardDistributorUnsortedAccounts.selector, 1));
        dist.claimForBatch(a, c, p);
    }

    function testFuzz_proposeRoot_onlyConsecutiveEndedEpochs(uint64 epoch, uint32 elapsed) public {
        vm.warp(GENESIS + uint256(elapsed));
        epoch = uint64(bound(epoch, 0, 1000));
        vm.prank(publisher);
        if (epoch != 0) {
            vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.RewardDistributorNotNextEpoch.selector, epoch, 0));
        } else if (block.timestamp < GENESIS + LENGTH) {
            vm.expectRevert(abi.encodeWithSelector(IRewardDistributor.RewardDistributorEpochNotEnded.selector, 0));
        }
        dist.proposeRoot(root1, epoch, bytes32(0), 0, "");
    }

    /// The distributor's assembly proof check accepts exactly what OpenZeppelin's MerkleProof accepts.
    function testFuzz_claim_proofCheckMatchesOpenZeppelin(uint256 seed, uint8 size, uint8 pick, uint8 flip) public {
        uint256 n = bound(size, 1, 40);
        address[] memory a = new address[](n);
        uint256[] memory c = new uint256[](n);
        for (uint256 k; k < n; ++k) {
            a[k] = address(uint160(uint256(keccak256(abi.encode(seed, k)))));
            c[k] = uint256(keccak256(abi.encode(seed, k, "amt"))) % 1e18 + 1;
        }
        bytes32[] memory l = _leaves(a, c);
        bytes32 r = MerkleHelper.root(l);
        uint256 i = bound(pick, 0, n - 1);
        _fund(1e18 * n);
        _publish(r, 0);
        bytes32[] memory p = MerkleHelper.proof(l, i);
        if (p.length > 0 && flip % 2 == 1) p[flip % p.length] ^= bytes32(uint256(1) << (flip % 256));
        bool oz = MerkleProof.verify(p, r, MerkleHelper.leaf(a[i], c[i]));
        if (!oz) vm.expectRevert(IRewardDistributor.RewardDistributorInvalidProof.selector);
        dist.claimFor(a[i], c[i], p);
        assertEq(token.balanceOf(a[i]), oz ? c[i] : 0);
    }

    function test_constructor_revertsWhen_tokenNamesAnotherDistributor() public {
        // `token` names `dist`; a second distributor over it would have no claim ledger to write to.
        vm.expectRevert(
            abi.encodeWithSelector(IRewardDistributor.RewardDistributorNotTokenDistributor.selector, address(token))
        );
        new RewardDistributor(address(token), GENESIS, LENGTH, admin, DELAY);
    }

    function test_claim_ledgerLivesInTheToken() public {
        _fund(1_500e18);
        _publish(root1, 1_500e18);
        dist.claimFor(accts[0], amts[0], MerkleHelper.proof(leaves, 0));
        assertEq(token.claimedOf(accts[0]), amts[0]);
        assertEq(dist.claimed(accts[0]), amts[0]);
    }
}
