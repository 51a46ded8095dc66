// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {RegistryFixture} from "./ContributionRegistry.t.sol";
import {IContributionRegistry} from "../src/interfaces/IContributionRegistry.sol";
import {IContributionRegistry as ICR} from "../src/interfaces/IContributionRegistry.sol";

/// @notice Finding 2: a mempool watcher who copies a pending reveal (direct, relayed or one hash of a batch) and
/// commits to it himself can never keep the dataset; commitments that are unknown, too recent or expired revert.
contract ContributionRegistryFrontRunTest is RegistryFixture {
    bytes32 internal constant H = keccak256("victim-data");
    bytes32 internal constant THIEF_SALT = keccak256("thief");

    /// The thief sees the reveal, commits (a later block), and even gets his reveal mined first: alice's older
    /// commitment takes the dataset over.
    function _thiefRegistersFirst(bytes32 h) internal {
        _commitValueAs(bob, reg.commitmentOf(bob, h, THIEF_SALT));
        vm.prank(bob);
        reg.registerDataset(h, 1, 0, 0, "ipfs://stolen", THIEF_SALT);
        assertEq(reg.contributionOf(h).owner, bob);
    }

    /// @dev `who` reveals `h` with `salt` and expects the revert `err`.
    function _revealReverts(address who, bytes32 h, bytes32 salt, bytes memory err) internal {
        vm.prank(who);
        vm.expectRevert(err);
        reg.registerDataset(h, 1, 0, 0, "", salt);
    }

    function _commitValueAs(address who, bytes32 c) internal {
        bytes32[] memory cs = new bytes32[](1);
        cs[0] = c;
        vm.prank(who);
        reg.commit(cs);
        vm.roll(block.number + 1);
    }

    function test_frontRun_directCopyNeverKeepsTheDataset() public {
        _commitOne(alice, H); // alice's commitment hides H
        uint256 aliceBlock = block.number - 1;
        _thiefRegistersFirst(H); // ... H is public only once alice's reveal is pending
        vm.expectEmit(true, true, true, true, address(reg));
        emit IContributionRegistry.DatasetReclaimed(H, bob, alice, aliceBlock + 1, aliceBlock);
        vm.prank(alice);
        reg.registerDataset(H, 1234, 7, keccak256("meta"), "ipfs://bafy", SALT);
        IContributionRegistry.Contribution memory c = reg.contributionOf(H);
        assertEq(c.owner, alice);
        assertEq(c.commitBlock, aliceBlock);
        // and the thief cannot take it back: his commitment is younger
        _commitValueAs(bob, reg.commitmentOf(bob, H, THIEF_SALT));
        _revealReverts(
            bob, H, THIEF_SALT, abi.encodeWithSelector(ICR.ContributionRegistryAlreadyRegistered.selector, H)
        );
    }

    function test_frontRun_relayedCopyNeverKeepsTheDataset() public {
        IContributionRegistry.DatasetInput memory d = _ds(H);
        bytes memory sig = _signDataset(reg, aliceKey, alice, d, 0, block.timestamp + 1 hours);
        _commitOne(alice, H);
        _thiefRegistersFirst(H);
        vm.prank(relayer);
        reg.registerDatasetFor(d, alice, SALT, block.timestamp + 1 hours, sig);
        assertEq(reg.contributionOf(H).owner, alice);
    }

    /// One copied hash of a 100-item batch no longer reverts the batch: the batch's older commitment wins it.
    function test_frontRun_batchCopyOfOneHashNeverKeepsIt() public {
        IContributionRegistry.DatasetBatch memory b;
        b.contentHashes = new bytes32[](100);
        b.sizes = new uint64[](100);
        for (uint256 i; i < 100; i++) b.contentHashes[i] = keccak256(abi.encode("batch", i));
        b.uri = "ipfs://batch";
        _commitBatch(alice, b.contentHashes);
        _thiefRegistersFirst(b.contentHashes[99]);
        vm.prank(alice);
        reg.registerDatasetBatch(b, SALT);
        for (uint256 i; i < 100; i++) assertEq(reg.contributionOf(b.contentHashes[i]).owner, alice);
    }

    function test_frontRun_copiedCommitmentDoesNotMoveItsBlock() public {
        bytes32 c = reg.commitmentOf(alice, H, SALT);
        _commitValueAs(alice, c);
        uint256 first = reg.commitmentBlock(c);
        _commitValueAs(bob, c); // a copy (it names alice: it can only help her)
        assertEq(reg.commitmentBlock(c), first);
        vm.roll(first + reg.MAX_COMMITMENT_AGE() + 1); // expired: renewed by a new commit
        _commitValueAs(alice, c);
        assertEq(reg.commitmentBlock(c), block.number - 1);
    }

    function test_registerDataset_revertsWhen_commitmentUnknown() public {
        bytes32 c = reg.commitmentOf(alice, H, SALT);
        _revealReverts(alice, H, SALT, abi.encodeWithSelector(ICR.ContributionRegistryUnknownCommitment.selector, c));
    }

    function test_registerDataset_revertsWhen_commitmentTooRecent() public {
        bytes32 c = reg.commitmentOf(alice, H, SALT);
        bytes32[] memory cs = new bytes32[](1);
        cs[0] = c;
        reg.commit(cs);
        _revealReverts(
            alice, H, SALT, abi.encodeWithSelector(ICR.ContributionRegistryCommitmentTooRecent.selector, c, block.number)
        );
    }

    function test_registerDataset_revertsWhen_commitmentExpired() public {
        _commitOne(alice, H);
        uint256 at = block.number - 1;
        vm.roll(at + reg.MAX_COMMITMENT_AGE() + 1);
        bytes32 c = reg.commitmentOf(alice, H, SALT);
        _revealReverts(
            alice, H, SALT, abi.encodeWithSelector(ICR.ContributionRegistryCommitmentExpired.selector, c, at)
        );
    }

    function test_registerDataset_revertsWhen_commitmentReused() public {
        _commitOne(alice, H);
        vm.prank(alice);
        reg.registerDataset(H, 1, 0, 0, "", SALT);
        assertEq(reg.commitmentBlock(reg.commitmentOf(alice, H, SALT)), 0); // cleared (gas refund)
        bytes32 c = reg.commitmentOf(alice, H, SALT);
        _revealReverts(alice, H, SALT, abi.encodeWithSelector(ICR.ContributionRegistryUnknownCommitment.selector, c));
    }

    function test_registerDataset_revertsWhen_commitmentOfAnotherOwner() public {
        _commitOne(alice, H);
        bytes32 c = reg.commitmentOf(bob, H, SALT);
        // bob reveals with alice's salt: the commitment names alice, not him
        _revealReverts(bob, H, SALT, abi.encodeWithSelector(ICR.ContributionRegistryUnknownCommitment.selector, c));
    }

    function test_commit_revertsWhen_emptyOrZero() public {
        vm.expectRevert(IContributionRegistry.ContributionRegistryInvalidInput.selector);
        reg.commit(new bytes32[](0));
        vm.expectRevert(IContributionRegistry.ContributionRegistryInvalidInput.selector);
        reg.commit(new bytes32[](1));
    }

    /// Ties keep the first revealer: only a strictly older commitment takes over.
    function test_takeover_revertsWhen_sameCommitBlock() public {
        bytes32[] memory cs = new bytes32[](2);
        cs[0] = reg.commitmentOf(alice, H, SALT);
        cs[1] = reg.commitmentOf(bob, H, SALT);
        reg.commit(cs);
        vm.roll(block.number + 1);
        vm.prank(bob);
        reg.registerDataset(H, 1, 0, 0, "", SALT);
        _revealReverts(alice, H, SALT, abi.encodeWithSelector(ICR.ContributionRegistryAlreadyRegistered.selector, H));
    }

    /// The takeover window is bounded: once the holder's commitment is MAX_COMMITMENT_AGE old, every older
    /// commitment has expired, so ownership is final.
    function test_takeover_revertsWhen_olderCommitmentExpired() public {
        _commitOne(alice, H);
        uint256 aliceAt = block.number - 1;
        _thiefRegistersFirst(H);
        vm.roll(aliceAt + reg.MAX_COMMITMENT_AGE() + 1);
        bytes32 c = reg.commitmentOf(alice, H, SALT);
        _revealReverts(
            alice, H, SALT, abi.encodeWithSelector(ICR.ContributionRegistryCommitmentExpired.selector, c, aliceAt)
        );
        assertEq(reg.contributionOf(H).owner, bob);
    }

    /// Namespaces: a dataset can never be registered over a compute id ...
    function test_registerDataset_revertsWhen_contentHashIsAnExistingComputeId() public {
        vm.prank(alice);
        bytes32 id = reg.registerCompute(keccak256("job"), 1, 0, 0);
        _commitOne(bob, id);
        _revealReverts(bob, id, SALT, abi.encodeWithSelector(ICR.ContributionRegistryAlreadyRegistered.selector, id));
    }

    /// ... and a dataset squatting on a victim's future compute id never blocks the job: it is evicted.
    function test_registerCompute_evictsDatasetSquattingOnItsId() public {
        bytes32 job = keccak256("job");
        bytes32 id = reg.computeId(alice, job);
        assertTrue(id != keccak256(abi.encode(alice, job))); // domain-separated from the old scheme
        _commitOne(bob, id);
        vm.prank(bob);
        reg.registerDataset(id, 1, 0, 0, "", SALT);
        vm.expectEmit(true, true, false, false, address(reg));
        emit IContributionRegistry.DatasetEvicted(id, bob);
        vm.prank(alice);
        assertEq(reg.registerCompute(job, 1, 0, 0), id);
        IContributionRegistry.Contribution memory c = reg.contributionOf(id);
        assertEq(c.owner, alice);
        assertTrue(c.kind == IContributionRegistry.Kind.Compute);
    }

    /// Whatever the blocks of two commitments to the same hash and the order of their reveals, the owner is the
    /// earliest committer (the first revealer on a tie).
    function testFuzz_earliestCommitmentWins(uint8 aliceLead, uint8 bobLead, bool bobRevealsFirst) public {
        bytes32 ca = reg.commitmentOf(alice, H, SALT);
        bytes32 cb = reg.commitmentOf(bob, H, THIEF_SALT);
        uint256 start = block.number;
        uint256 aAt = start + (aliceLead % 50);
        uint256 bAt = start + (bobLead % 50);
        for (uint256 b = start; b <= (aAt > bAt ? aAt : bAt); b++) {
            vm.roll(b);
            if (b == aAt) _commitRaw(ca);
            if (b == bAt) _commitRaw(cb);
        }
        vm.roll(block.number + 1);
        address first = bobRevealsFirst ? bob : alice;
        address second = bobRevealsFirst ? alice : bob;
        _reveal(first);
        try this.revealExternal(second) {} catch {}
        address want = aAt < bAt ? alice : bAt < aAt ? bob : first;
        assertEq(reg.contributionOf(H).owner, want);
    }

    function revealExternal(address who) external {
        _reveal(who);
    }

    function _reveal(address who) internal {
        vm.prank(who);
        reg.registerDataset(H, 1, 0, 0, "", who == alice ? SALT : THIEF_SALT);
    }

    function _commitRaw(bytes32 c) internal {
        bytes32[] memory cs = new bytes32[](1);
        cs[0] = c;
        reg.commit(cs);
    }
}
