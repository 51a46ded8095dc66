// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {RegistryFixture} from "./ContributionRegistry.t.sol";
import {ContributionRegistry} from "../src/ContributionRegistry.sol";
import {IContributionRegistry} from "../src/interfaces/IContributionRegistry.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

/// @notice `registerDatasetBatch` / `registerDatasetBatchFor`: datasets sharing licence, metadata and location,
/// one fresh slot per content hash and one event per batch.
contract ContributionRegistryBatchTest is RegistryFixture {
    function _dsBatch(uint256 n, uint256 salt) internal pure returns (IContributionRegistry.DatasetBatch memory b) {
        b.contentHashes = new bytes32[](n);
        b.sizes = new uint64[](n);
        for (uint256 i; i < n; ++i) {
            b.contentHashes[i] = keccak256(abi.encode("batch", salt, i));
            b.sizes[i] = uint64(1_000 + i);
        }
        b.licenseId = 3;
        b.metadataHash = keccak256(abi.encode("manifest", salt));
        b.uri = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
    }

    function _batchStructHash(IContributionRegistry.DatasetBatch memory b) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                reg.DATASET_BATCH_TYPEHASH(),
                keccak256(abi.encodePacked(b.contentHashes)),
                keccak256(abi.encodePacked(b.sizes)),
                b.licenseId,
                b.metadataHash,
                keccak256(bytes(b.uri))
            )
        );
    }

    function _signDsBatch(
        uint256 key,
        address owner,
        IContributionRegistry.DatasetBatch memory b,
        uint256 nonce,
        uint256 deadline
    ) internal view returns (bytes memory) {
        bytes32 sh = keccak256(
            abi.encode(reg.REGISTER_DATASET_BATCH_TYPEHASH(), owner, _batchStructHash(b), nonce, deadline)
        );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, _digest(reg, sh));
        return abi.encodePacked(r, s, v);
    }

    function test_typehashes_matchTheirStrings() public view {
        assertEq(
            reg.DATASET_BATCH_TYPEHASH(),
            keccak256("DatasetBatch(bytes32[] contentHashes,uint64[] sizes,uint32 licenseId,bytes32 metadataHash,string uri)")
        );
        assertEq(
            reg.REGISTER_DATASET_BATCH_TYPEHASH(),
            keccak256(
                "RegisterDatasetBatch(address owner,DatasetBatch batch,uint256 nonce,uint256 deadline)"
                "DatasetBatch(bytes32[] contentHashes,uint64[] sizes,uint32 licenseId,bytes32 metadataHash,string uri)"
            )
        );
    }

    function test_registerDatasetBatch_registersEveryHashAndEmitsOnce() public {
        IContributionRegistry.DatasetBatch memory b = _dsBatch(20, 1);
        _commitBatch(alice, (b).contentHashes);
        vm.expectEmit(true, false, false, true, address(reg));
        emit IContributionRegistry.DatasetBatchRegistered(
            alice, b.licenseId, b.metadataHash, b.uri, b.contentHashes, b.sizes
        );
        vm.prank(alice);
        reg.registerDatasetBatch(b, SALT);
        for (uint256 i; i < 20; ++i) {
            IContributionRegistry.Contribution memory c = reg.contributionOf(b.contentHashes[i]);
            assertEq(c.owner, alice);
            assertEq(uint8(c.kind), uint8(IContributionRegistry.Kind.Dataset));
            assertEq(c.registeredAt, block.timestamp);
        }
    }

    function test_registerDatasetBatch_gasPerItemBelow25k() public {
        IContributionRegistry.DatasetBatch memory b = _dsBatch(100, 2);
        vm.prank(alice);
        uint256 before = gasleft();
        _commitBatch(address(this), (b).contentHashes);
        reg.registerDatasetBatch(b, SALT);
        uint256 used = before - gasleft();
        // Execution only (no intrinsic or calldata gas here); bench/gas.py measures whole transactions.
        assertLt(used / 100, 25_000);
    }

    function test_registerDatasetBatch_revertsWhen_empty() public {
        IContributionRegistry.DatasetBatch memory b = _dsBatch(0, 3);
        _commitBatch(address(this), (b).contentHashes);
        vm.expectRevert(IContributionRegistry.ContributionRegistryInvalidInput.selector);
        reg.registerDatasetBatch(b, SALT);
    }

    function test_registerDatasetBatch_revertsWhen_lengthMismatch() public {
        IContributionRegistry.DatasetBatch memory b = _dsBatch(3, 4);
        b.sizes = new uint64[](2);
        _commitBatch(address(this), (b).contentHashes);
        vm.expectRevert(IContributionRegistry.ContributionRegistryLengthMismatch.selector);
        reg.registerDatasetBatch(b, SALT);
    }

    function test_registerDatasetBatch_revertsWhen_zeroHash() public {
        IContributionRegistry.DatasetBatch memory b = _dsBatch(3, 5);
        b.contentHashes[1] = bytes32(0);
        _commitBatch(address(this), (b).contentHashes);
        vm.expectRevert(IContributionRegistry.ContributionRegistryInvalidInput.selector);
        reg.registerDatasetBatch(b, SALT);
    }

    function test_registerDatasetBatch_revertsWhen_duplicateInBatch() public {
        IContributionRegistry.DatasetBatch memory b = _dsBatch(3, 6);
        b.contentHashes[2] = b.contentHashes[0];
        _commitBatch(alice, (b).contentHashes);
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(
                IContributionRegistry.ContributionRegistryAlreadyRegistered.selector, b.contentHashes[0]
            )
        );
        reg.registerDatasetBatch(b, SALT);
        assertEq(reg.contributionOf(b.contentHashes[1]).owner, address(0)); // all or nothing
    }

    function test_registerDatasetBatch_revertsWhen_hashOwnedBySomeoneElse() public {
        IContributionRegistry.DatasetBatch memory b = _dsBatch(3, 7);
        _commitOne(bob, b.contentHashes[2]);
        vm.prank(bob);
        reg.registerDataset(b.contentHashes[2], 1, 1, bytes32(0), "ipfs://bob", SALT);
        _commitBatch(alice, (b).contentHashes);
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(
                IContributionRegistry.ContributionRegistryAlreadyRegistered.selector, b.contentHashes[2]
            )
        );
        reg.registerDatasetBatch(b, SALT);
        assertEq(reg.contributionOf(b.contentHashes[2]).owner, bob);
    }

    function test_registerDatasetBatch_revertsWhen_paused() public {
        vm.prank(admin);
        reg.pause();
        IContributionRegistry.DatasetBatch memory b = _dsBatch(1, 8);
        _commitBatch(address(this), (b).contentHashes);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        reg.registerDatasetBatch(b, SALT);
    }

    function test_registerDatasetBatchFor_relayedOneSignature() public {
        IContributionRegistry.DatasetBatch memory b = _dsBatch(10, 9);
        bytes memory sig = _signDsBatch(aliceKey, alice, b, 0, block.timestamp);
        _commitBatch(alice, (b).contentHashes);
        vm.prank(relayer);
        reg.registerDatasetBatchFor(b, alice, SALT, block.timestamp, sig);
        for (uint256 i; i < 10; ++i) {
            assertEq(reg.contributionOf(b.contentHashes[i]).owner, alice);
        }
        assertEq(reg.nonces(alice), 1);
    }

    /// A front-runner who copies the relayed call but names itself as owner gets an invalid signature.
    function test_registerDatasetBatchFor_revertsWhen_ownerSwapped() public {
        IContributionRegistry.DatasetBatch memory b = _dsBatch(2, 10);
        bytes memory sig = _signDsBatch(aliceKey, alice, b, 0, block.timestamp);
        _commitBatch(bob, (b).contentHashes);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, bob));
        reg.registerDatasetBatchFor(b, bob, SALT, block.timestamp, sig);
    }

    function test_registerDatasetBatchFor_revertsWhen_tampered() public {
        IContributionRegistry.DatasetBatch memory b = _dsBatch(3, 11);
        bytes memory sig = _signDsBatch(aliceKey, alice, b, 0, block.timestamp);
        b.sizes[1] = 1;
        _commitBatch(alice, (b).contentHashes);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, alice));
        reg.registerDatasetBatchFor(b, alice, SALT, block.timestamp, sig);
        b.sizes[1] = 1_001;
        b.uri = "ipfs://swapped";
        _commitBatch(alice, (b).contentHashes);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, alice));
        reg.registerDatasetBatchFor(b, alice, SALT, block.timestamp, sig);
    }

    function test_registerDatasetBatchFor_revertsWhen_reusedNonce() public {
        IContributionRegistry.DatasetBatch memory b = _dsBatch(2, 12);
        bytes memory sig = _signDsBatch(aliceKey, alice, b, 0, block.timestamp);
        _commitBatch(alice, (b).contentHashes);
        reg.registerDatasetBatchFor(b, alice, SALT, block.timestamp, sig);
        IContributionRegistry.DatasetBatch memory b2 = _dsBatch(2, 13);
        bytes memory sig2 = _signDsBatch(aliceKey, alice, b2, 0, block.timestamp);
        _commitBatch(alice, (b2).contentHashes);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, alice));
        reg.registerDatasetBatchFor(b2, alice, SALT, block.timestamp, sig2);
    }

    function test_registerDatasetBatchFor_revertsWhen_expired() public {
        IContributionRegistry.DatasetBatch memory b = _dsBatch(2, 14);
        uint256 deadline = block.timestamp;
        bytes memory sig = _signDsBatch(aliceKey, alice, b, 0, deadline);
        vm.warp(deadline + 1);
        _commitBatch(alice, (b).contentHashes);
        vm.expectRevert(
            abi.encodeWithSelector(IContributionRegistry.ContributionRegistryExpiredSignature.selector, deadline)
        );
        reg.registerDatasetBatchFor(b, alice, SALT, deadline, sig);
    }

    function test_registerDatasetBatchFor_revertsWhen_wrongSigner() public {
        IContributionRegistry.DatasetBatch memory b = _dsBatch(2, 15);
        bytes memory sig = _signDsBatch(bobKey, alice, b, 0, block.timestamp);
        _commitBatch(alice, (b).contentHashes);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, alice));
        reg.registerDatasetBatchFor(b, alice, SALT, block.timestamp, sig);
    }

    function test_registerDatasetBatchFor_revertsWhen_otherChain() public {
        IContributionRegistry.DatasetBatch memory b = _dsBatch(2, 16);
        bytes memory sig = _signDsBatch(aliceKey, alice, b, 0, block.timestamp);
        vm.chainId(block.chainid + 1);
        _commitBatch(alice, (b).contentHashes);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, alice));
        reg.registerDatasetBatchFor(b, alice, SALT, block.timestamp, sig);
    }

    function test_registerDatasetBatchFor_revertsWhen_otherContract() public {
        IContributionRegistry.DatasetBatch memory b = _dsBatch(2, 17);
        ContributionRegistry other = new ContributionRegistry(admin, GENESIS, LENGTH);
        bytes32 sh = keccak256(
            abi.encode(other.REGISTER_DATASET_BATCH_TYPEHASH(), alice, _batchStructHash(b), 0, block.timestamp)
        );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(aliceKey, _digest(other, sh));
        _commitBatch(alice, (b).contentHashes);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, alice));
        reg.registerDatasetBatchFor(b, alice, SALT, block.timestamp, abi.encodePacked(r, s, v));
    }

    function test_registerDatasetBatchFor_revertsWhen_highS() public {
        IContributionRegistry.DatasetBatch memory b = _dsBatch(2, 18);
        bytes32 sh = keccak256(
            abi.encode(reg.REGISTER_DATASET_BATCH_TYPEHASH(), alice, _batchStructHash(b), 0, block.timestamp)
        );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(aliceKey, _digest(reg, sh));
        bytes32 highS = bytes32(N - uint256(s));
        uint8 flippedV = v == 27 ? 28 : 27;
        assertEq(ecrecover(_digest(reg, sh), flippedV, r, highS), alice); // the malleable twin recovers
        _commitBatch(alice, (b).contentHashes);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, alice));
        reg.registerDatasetBatchFor(b, alice, SALT, block.timestamp, abi.encodePacked(r, highS, flippedV));
    }

    /// Whatever the batch and whoever registers first, a content hash keeps its first owner.
    function testFuzz_registerDatasetBatch_oneOwnerEver(uint8 n, uint8 overlap, uint256 salt) public {
        uint256 size = bound(n, 1, 20);
        IContributionRegistry.DatasetBatch memory first = _dsBatch(size, salt);
        _commitBatch(alice, (first).contentHashes);
        vm.prank(alice);
        reg.registerDatasetBatch(first, SALT);
        IContributionRegistry.DatasetBatch memory second = _dsBatch(size, salt ^ 1);
        uint256 k = bound(overlap, 0, size - 1);
        second.contentHashes[k] = first.contentHashes[k];
        _commitBatch(bob, (second).contentHashes);
        vm.prank(bob);
        vm.expectRevert(
            abi.encodeWithSelector(
                IContributionRegistry.ContributionRegistryAlreadyRegistered.selector, first.contentHashes[k]
            )
        );
        reg.registerDatasetBatch(second, SALT);
        for (uint256 i; i < size; ++i) {
            assertEq(reg.contributionOf(first.contentHashes[i]).owner, alice);
        }
    }
}
