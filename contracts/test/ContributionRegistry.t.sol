// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {ContributionRegistry} from "../src/ContributionRegistry.sol";
import {IContributionRegistry} from "../src/interfaces/IContributionRegistry.sol";
import {EpochClock} from "../src/EpochClock.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {Wallet1271} from "./handlers/Wallet1271.sol";
import {RegistryHandler} from "./handlers/RegistryHandler.sol";
import {RegistryCommits} from "./utils/RegistryCommits.sol";

/// @notice Shared fixture and EIP-712 helpers for the registry tests.
abstract contract RegistryFixture is RegistryCommits {
    uint256 internal constant N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    uint64 internal constant GENESIS = 1_000_000;
    uint64 internal constant LENGTH = 3600;

    ContributionRegistry internal reg;
    address internal admin = makeAddr("admin");
    address internal validator = makeAddr("validator");
    address internal alice;
    uint256 internal aliceKey;
    address internal bob;
    uint256 internal bobKey;
    address internal relayer = makeAddr("relayer");

    function setUp() public virtual {
        vm.warp(GENESIS + 10);
        (alice, aliceKey) = makeAddrAndKey("alice");
        (bob, bobKey) = makeAddrAndKey("bob");
        reg = new ContributionRegistry(admin, GENESIS, LENGTH);
        bytes32 role = reg.VALIDATOR_ROLE();
        vm.prank(admin);
        reg.grantRole(role, validator);
    }

    function _registry() internal view override returns (ContributionRegistry) {
        return reg;
    }

    function _ds(bytes32 h) internal pure returns (IContributionRegistry.DatasetInput memory) {
        return IContributionRegistry.DatasetInput(h, 1234, 7, keccak256("meta"), "ipfs://bafy");
    }

    function _job(bytes32 j) internal pure returns (IContributionRegistry.ComputeInput memory) {
        return IContributionRegistry.ComputeInput(j, 3600, keccak256("model"), keccak256("result"));
    }

    function _dsHash(ContributionRegistry r, IContributionRegistry.DatasetInput memory d) internal view returns (bytes32) {
        return keccak256(
            abi.encode(r.DATASET_TYPEHASH(), d.contentHash, d.size, d.licenseId, d.metadataHash, keccak256(bytes(d.uri)))
        );
    }

    function _digest(ContributionRegistry r, bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", r.DOMAIN_SEPARATOR(), structHash));
    }

    /// @dev Domain separator computed from scratch for `chainId` (independent of the contract's own cache).
    function _domain(address verifying, uint256 chainId) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("Cairn ContributionRegistry"),
                keccak256("1"),
                chainId,
                verifying
            )
        );
    }

    function _signDataset(
        ContributionRegistry r,
        uint256 key,
        address owner,
        IContributionRegistry.DatasetInput memory d,
        uint256 nonce,
        uint256 deadline
    ) internal view returns (bytes memory) {
        bytes32 sh = keccak256(abi.encode(r.REGISTER_DATASET_TYPEHASH(), owner, _dsHash(r, d), nonce, deadline));
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(key, _digest(r, sh));
        return abi.encodePacked(rr, s, v);
    }

    function _signBatch(
        uint256 key,
        address owner,
        IContributionRegistry.DatasetInput[] memory ds,
        uint256 nonce,
        uint256 deadline
    ) internal view returns (bytes memory) {
        bytes32[] memory hs = new bytes32[](ds.length);
        for (uint256 i; i < ds.length; i++) {
            hs[i] = _dsHash(reg, ds[i]);
        }
        bytes32 sh = keccak256(
            abi.encode(reg.REGISTER_DATASETS_TYPEHASH(), owner, keccak256(abi.encodePacked(hs)), nonce, deadline)
        );
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(key, _digest(reg, sh));
        return abi.encodePacked(rr, s, v);
    }

    function _signCompute(
        uint256 key,
        address provider,
        IContributionRegistry.ComputeInput memory j,
        uint256 nonce,
        uint256 deadline
    ) internal view returns (bytes memory) {
        bytes32 jh = keccak256(abi.encode(reg.COMPUTE_TYPEHASH(), j.jobId, j.workUnits, j.modelId, j.resultHash));
        bytes32 sh = keccak256(abi.encode(reg.REGISTER_COMPUTE_TYPEHASH(), provider, jh, nonce, deadline));
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(key, _digest(reg, sh));
        return abi.encodePacked(rr, s, v);
    }

    function _signComputes(
        uint256 key,
        address provider,
        IContributionRegistry.ComputeInput[] memory js,
        uint256 nonce,
        uint256 deadline
    ) internal view returns (bytes memory) {
        bytes32[] memory hs = new bytes32[](js.length);
        for (uint256 i; i < js.length; i++) {
            hs[i] = keccak256(abi.encode(reg.COMPUTE_TYPEHASH(), js[i].jobId, js[i].workUnits, js[i].modelId, js[i].resultHash));
        }
        bytes32 sh = keccak256(
            abi.encode(reg.REGISTER_COMPUTES_TYPEHASH(), provider, keccak256(abi.encodePacked(hs)), nonce, deadline)
        );
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(key, _digest(reg, sh));
        return abi.encodePacked(rr, s, v);
    }

    function _signWithdraw(uint256 key, address owner, bytes32 id, uint256 nonce, uint256 deadline)
        internal
        view
        returns (bytes memory)
    {
        bytes32 sh = keccak256(abi.encode(reg.WITHDRAW_TYPEHASH(), owner, id, nonce, deadline));
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(key, _digest(reg, sh));
        return abi.encodePacked(rr, s, v);
    }

    function _jobs(uint256 n) internal pure returns (IContributionRegistry.ComputeInput[] memory js) {
        js = new IContributionRegistry.ComputeInput[](n);
        for (uint256 i; i < n; i++) {
            js[i] = IContributionRegistry.ComputeInput(bytes32(i + 100), uint64(i + 1), keccak256("model"), bytes32(i));
        }
    }

    function _batch(uint256 n, uint256 salt) internal pure returns (IContributionRegistry.DatasetInput[] memory ds) {
        ds = new IContributionRegistry.DatasetInput[](n);
        for (uint256 i; i < n; i++) {
            ds[i] = IContributionRegistry.DatasetInput(
                keccak256(abi.encode(salt, i)), uint64(i + 1), uint32(i), bytes32(i), "ipfs://bafy-batch"
            );
        }
    }
}

contract ContributionRegistryTest is RegistryFixture {
    // --- happy paths ---

    function test_registerDataset_storesOneSlotAndEmits() public {
        IContributionRegistry.DatasetInput memory d = _ds(keccak256("data"));
        _commitOne(alice, d.contentHash);
        vm.expectEmit(true, true, false, true, address(reg));
        emit IContributionRegistry.DatasetRegistered(d.contentHash, alice, d.size, d.licenseId, d.metadataHash, d.uri);
        vm.prank(alice);
        reg.registerDataset(d.contentHash, d.size, d.licenseId, d.metadataHash, d.uri, SALT);
        IContributionRegistry.Contribution memory c = reg.contributionOf(d.contentHash);
        assertEq(c.owner, alice);
        assertTrue(c.kind == IContributionRegistry.Kind.Dataset);
        assertFalse(c.withdrawn);
        assertEq(c.registeredAt, block.timestamp);
    }

    function test_registerDatasetFor_relayerCannotChangeOwner() public {
        IContributionRegistry.DatasetInput memory d = _ds(keccak256("data"));
        bytes memory sig = _signDataset(reg, aliceKey, alice, d, 0, block.timestamp + 1 hours);
        // A front-runner copying the signature can only register it for alice.
        _commitOne(bob, (d).contentHash);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, bob));
        reg.registerDatasetFor(d, bob, SALT, block.timestamp + 1 hours, sig);
        _commitOne(alice, (d).contentHash);
        vm.prank(relayer);
        reg.registerDatasetFor(d, alice, SALT, block.timestamp + 1 hours, sig);
        assertEq(reg.contributionOf(d.contentHash).owner, alice);
        assertEq(reg.nonces(alice), 1);
    }

    function test_registerDatasetFor_acceptsEip1271Wallet() public {
        Wallet1271 wallet = new Wallet1271(alice);
        IContributionRegistry.DatasetInput memory d = _ds(keccak256("wallet-data"));
        bytes memory sig = _signDataset(reg, aliceKey, address(wallet), d, 0, block.timestamp);
        _commitOne(address(wallet), (d).contentHash);
        vm.prank(relayer);
        reg.registerDatasetFor(d, address(wallet), SALT, block.timestamp, sig);
        assertEq(reg.contributionOf(d.contentHash).owner, address(wallet));
        // bob's key does not speak for the wallet
        IContributionRegistry.DatasetInput memory d2 = _ds(keccak256("wallet-data-2"));
        bytes memory bad = _signDataset(reg, bobKey, address(wallet), d2, 1, block.timestamp);
        _commitOne(address(wallet), (d2).contentHash);
        vm.expectRevert(
            abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, address(wallet))
        );
        reg.registerDatasetFor(d2, address(wallet), SALT, block.timestamp, bad);
    }

    function test_registerDatasets_batchDirect() public {
        IContributionRegistry.DatasetInput[] memory ds = _batch(20, 1);
        _commitList(alice, ds);
        vm.prank(alice);
        reg.registerDatasets(ds, SALT);
        for (uint256 i; i < ds.length; i++) {
            assertEq(reg.contributionOf(ds[i].contentHash).owner, alice);
        }
    }

    function test_registerDatasetsFor_batchRelayedOneSignature() public {
        IContributionRegistry.DatasetInput[] memory ds = _batch(10, 2);
        bytes memory sig = _signBatch(aliceKey, alice, ds, 0, block.timestamp);
        _commitList(alice, ds);
        vm.prank(relayer);
        reg.registerDatasetsFor(ds, alice, SALT, block.timestamp, sig);
        for (uint256 i; i < ds.length; i++) {
            assertEq(reg.contributionOf(ds[i].contentHash).owner, alice);
        }
        assertEq(reg.nonces(alice), 1);
    }

    function test_registerCompute_directAndRelayed() public {
        IContributionRegistry.ComputeInput memory j = _job(keccak256("job-1"));
        bytes32 expectedId = keccak256(abi.encode(keccak256("Cairn.ComputeContribution"), alice, j.jobId));
        vm.expectEmit(true, true, true, true, address(reg));
        emit IContributionRegistry.ComputeRegistered(expectedId, alice, j.modelId, j.jobId, j.workUnits, j.resultHash);
        vm.prank(alice);
        bytes32 id = reg.registerCompute(j.jobId, j.workUnits, j.modelId, j.resultHash);
        assertEq(id, expectedId);
        assertEq(reg.computeId(alice, j.jobId), id);
        assertTrue(reg.contributionOf(id).kind == IContributionRegistry.Kind.Compute);
        // same job id by another provider is a different contribution
        vm.prank(bob);
        bytes32 id2 = reg.registerCompute(j.jobId, j.workUnits, j.modelId, j.resultHash);
        assertTrue(id2 != id);
        // relayed
        IContributionRegistry.ComputeInput memory j2 = _job(keccak256("job-2"));
        bytes memory sig = _signCompute(aliceKey, alice, j2, 0, block.timestamp);
        vm.prank(relayer);
        bytes32 id3 = reg.registerComputeFor(j2, alice, block.timestamp, sig);
        assertEq(reg.contributionOf(id3).owner, alice);
    }

    function test_registerComputes_batch() public {
        IContributionRegistry.ComputeInput[] memory js = new IContributionRegistry.ComputeInput[](3);
        for (uint256 i; i < 3; i++) {
            js[i] = _job(bytes32(i + 1));
        }
        vm.prank(alice);
        reg.registerComputes(js);
        assertEq(reg.contributionOf(reg.computeId(alice, bytes32(uint256(3)))).owner, alice);
    }

    function test_registerComputesFor_batchRelayedOneSignature() public {
        IContributionRegistry.ComputeInput[] memory js = _jobs(4);
        bytes memory sig = _signComputes(aliceKey, alice, js, 0, block.timestamp);
        vm.prank(relayer);
        reg.registerComputesFor(js, alice, block.timestamp, sig);
        for (uint256 i; i < js.length; i++) {
            assertEq(reg.contributionOf(reg.computeId(alice, js[i].jobId)).owner, alice);
        }
        assertEq(reg.nonces(alice), 1);
    }

    function test_registerComputesFor_revertsWhen_empty() public {
        vm.expectRevert(IContributionRegistry.ContributionRegistryInvalidInput.selector);
        reg.registerComputesFor(new IContributionRegistry.ComputeInput[](0), alice, block.timestamp, "");
    }

    function test_registerComputesFor_revertsWhen_paused() public {
        IContributionRegistry.ComputeInput[] memory js = _jobs(1);
        bytes memory sig = _signComputes(aliceKey, alice, js, 0, block.timestamp);
        vm.prank(admin);
        reg.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        reg.registerComputesFor(js, alice, block.timestamp, sig);
    }

    function test_registerComputesFor_revertsWhen_batchTampered() public {
        IContributionRegistry.ComputeInput[] memory js = _jobs(3);
        bytes memory sig = _signComputes(aliceKey, alice, js, 0, block.timestamp);
        js[2].workUnits = 1e9;
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, alice));
        reg.registerComputesFor(js, alice, block.timestamp, sig);
    }

    function test_registerComputesFor_revertsWhen_reusedNonce() public {
        IContributionRegistry.ComputeInput[] memory js = _jobs(2);
        bytes memory sig = _signComputes(aliceKey, alice, js, 0, block.timestamp);
        reg.registerComputesFor(js, alice, block.timestamp, sig);
        IContributionRegistry.ComputeInput[] memory js2 = _jobs(3);
        bytes memory sig2 = _signComputes(aliceKey, alice, js2, 0, block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, alice));
        reg.registerComputesFor(js2, alice, block.timestamp, sig2);
    }

    function test_registerComputesFor_revertsWhen_expired() public {
        IContributionRegistry.ComputeInput[] memory js = _jobs(1);
        uint256 deadline = block.timestamp - 1;
        bytes memory sig = _signComputes(aliceKey, alice, js, 0, deadline);
        vm.expectRevert(
            abi.encodeWithSelector(IContributionRegistry.ContributionRegistryExpiredSignature.selector, deadline)
        );
        reg.registerComputesFor(js, alice, deadline, sig);
    }

    function test_registerComputesFor_revertsWhen_alreadyRegistered() public {
        IContributionRegistry.ComputeInput[] memory js = _jobs(2);
        vm.prank(alice);
        reg.registerCompute(js[1].jobId, 1, 0, 0);
        bytes memory sig = _signComputes(aliceKey, alice, js, 0, block.timestamp);
        bytes32 id = reg.computeId(alice, js[1].jobId);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryAlreadyRegistered.selector, id));
        reg.registerComputesFor(js, alice, block.timestamp, sig);
    }

    function test_attest_emitsAndLaterReplaces() public {
        bytes32 h = keccak256("data");
        _commitOne(alice, h);
        vm.prank(alice);
        reg.registerDataset(h, 1, 0, 0, "", SALT);
        vm.expectEmit(true, true, false, true, address(reg));
        emit IContributionRegistry.Attested(h, validator, 9000);
        vm.prank(validator);
        reg.attest(h, 9000);
        vm.prank(validator);
        reg.attest(h, 10000);
        bytes32[] memory ids = new bytes32[](2);
        uint16[] memory scores = new uint16[](2);
        ids[0] = h;
        ids[1] = h;
        scores[1] = 5;
        vm.prank(validator);
        reg.attestBatch(ids, scores);
    }

    function test_withdraw_marksAndKeepsHashTaken() public {
        bytes32 h = keccak256("data");
        _commitOne(alice, h);
        vm.prank(alice);
        reg.registerDataset(h, 1, 0, 0, "", SALT);
        vm.expectEmit(true, true, false, false, address(reg));
        emit IContributionRegistry.ContributionWithdrawn(h, alice);
        vm.prank(alice);
        reg.withdraw(h);
        IContributionRegistry.Contribution memory c = reg.contributionOf(h);
        assertTrue(c.withdrawn);
        assertEq(c.owner, alice);
        _commitOne(bob, h);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryAlreadyRegistered.selector, h));
        reg.registerDataset(h, 1, 0, 0, "", SALT);
    }

    function test_pause_stopsRegistrationOnly() public {
        bytes32 h = keccak256("data");
        _commitOne(alice, h);
        vm.prank(alice);
        reg.registerDataset(h, 1, 0, 0, "", SALT);
        vm.prank(admin);
        reg.pause();
        vm.prank(validator);
        reg.attest(h, 1);
        vm.prank(alice);
        reg.withdraw(h);
        vm.prank(admin);
        reg.unpause();
        _commitOne(alice, keccak256("other"));
        vm.prank(alice);
        reg.registerDataset(keccak256("other"), 1, 0, 0, "", SALT);
    }

    function test_epochClock_boundaries() public {
        assertEq(reg.genesis(), GENESIS);
        assertEq(reg.epochLength(), LENGTH);
        assertEq(reg.epochStart(3), GENESIS + 3 * LENGTH);
        assertEq(reg.epochEnd(3), GENESIS + 4 * LENGTH);
        vm.warp(GENESIS - 1);
        assertEq(reg.currentEpoch(), 0);
        assertFalse(reg.hasStarted(0));
        vm.warp(GENESIS + 4 * LENGTH - 1);
        assertEq(reg.currentEpoch(), 3);
        assertFalse(reg.hasEnded(3));
        vm.warp(GENESIS + 4 * LENGTH);
        assertEq(reg.currentEpoch(), 4);
        assertTrue(reg.hasEnded(3));
        assertTrue(reg.hasStarted(4));
    }

    // --- revert paths ---

    function test_constructor_revertsWhen_zeroEpochLength() public {
        vm.expectRevert(EpochClock.EpochClockZeroLength.selector);
        new ContributionRegistry(admin, GENESIS, 0);
    }

    function test_registerDataset_revertsWhen_alreadyRegistered() public {
        bytes32 h = keccak256("data");
        _commitOne(alice, h);
        vm.prank(alice);
        reg.registerDataset(h, 1, 0, 0, "", SALT);
        _commitOne(alice, h);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryAlreadyRegistered.selector, h));
        reg.registerDataset(h, 2, 0, 0, "other-uri", SALT);
    }

    function test_registerDataset_revertsWhen_zeroHash() public {
        _commitOne(alice, bytes32(0));
        vm.prank(alice);
        vm.expectRevert(IContributionRegistry.ContributionRegistryInvalidInput.selector);
        reg.registerDataset(bytes32(0), 1, 0, 0, "", SALT);
    }

    function test_registerDataset_revertsWhen_paused() public {
        vm.prank(admin);
        reg.pause();
        _commitOne(alice, keccak256("x"));
        vm.prank(alice);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        reg.registerDataset(keccak256("x"), 1, 0, 0, "", SALT);
    }

    function test_registerDatasetFor_revertsWhen_paused() public {
        IContributionRegistry.DatasetInput memory d = _ds(keccak256("data"));
        bytes memory sig = _signDataset(reg, aliceKey, alice, d, 0, block.timestamp);
        vm.prank(admin);
        reg.pause();
        _commitOne(alice, (d).contentHash);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        reg.registerDatasetFor(d, alice, SALT, block.timestamp, sig);
    }

    function test_registerDatasetFor_revertsWhen_zeroOwner() public {
        IContributionRegistry.DatasetInput memory d = _ds(keccak256("data"));
        _commitOne(address(0), (d).contentHash);
        vm.expectRevert(IContributionRegistry.ContributionRegistryInvalidInput.selector);
        reg.registerDatasetFor(d, address(0), SALT, block.timestamp, new bytes(65));
    }

    function test_registerDatasetFor_revertsWhen_alreadyRegistered() public {
        IContributionRegistry.DatasetInput memory d = _ds(keccak256("data"));
        _commitOne(bob, d.contentHash);
        vm.prank(bob);
        reg.registerDataset(d.contentHash, 1, 0, 0, "", SALT);
        bytes memory sig = _signDataset(reg, aliceKey, alice, d, 0, block.timestamp);
        _commitOne(alice, (d).contentHash);
        vm.expectRevert(
            abi.encodeWithSelector(IContributionRegistry.ContributionRegistryAlreadyRegistered.selector, d.contentHash)
        );
        reg.registerDatasetFor(d, alice, SALT, block.timestamp, sig);
    }

    function test_registerDatasets_revertsWhen_empty() public {
        _commitList(address(this), new IContributionRegistry.DatasetInput[](0));
        vm.expectRevert(IContributionRegistry.ContributionRegistryInvalidInput.selector);
        reg.registerDatasets(new IContributionRegistry.DatasetInput[](0), SALT);
    }

    function test_registerDatasets_revertsWhen_duplicateInBatch() public {
        IContributionRegistry.DatasetInput[] memory ds = _batch(3, 9);
        ds[2].contentHash = ds[0].contentHash;
        _commitList(alice, ds);
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(IContributionRegistry.ContributionRegistryAlreadyRegistered.selector, ds[0].contentHash)
        );
        reg.registerDatasets(ds, SALT);
        // all or nothing
        assertEq(reg.contributionOf(ds[1].contentHash).owner, address(0));
    }

    function test_registerDatasets_revertsWhen_paused() public {
        vm.prank(admin);
        reg.pause();
        _commitList(address(this), _batch(1, 1));
        vm.expectRevert(Pausable.EnforcedPause.selector);
        reg.registerDatasets(_batch(1, 1), SALT);
    }

    function test_registerDatasetsFor_revertsWhen_empty() public {
        _commitList(alice, new IContributionRegistry.DatasetInput[](0));
        vm.expectRevert(IContributionRegistry.ContributionRegistryInvalidInput.selector);
        reg.registerDatasetsFor(new IContributionRegistry.DatasetInput[](0), alice, SALT, block.timestamp, "");
    }

    function test_registerDatasetsFor_revertsWhen_batchTampered() public {
        IContributionRegistry.DatasetInput[] memory ds = _batch(3, 3);
        bytes memory sig = _signBatch(aliceKey, alice, ds, 0, block.timestamp);
        ds[1].uri = "ipfs://swapped";
        _commitList(alice, ds);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, alice));
        reg.registerDatasetsFor(ds, alice, SALT, block.timestamp, sig);
    }

    function test_registerDatasetsFor_revertsWhen_reusedNonce() public {
        IContributionRegistry.DatasetInput[] memory ds = _batch(2, 4);
        bytes memory sig = _signBatch(aliceKey, alice, ds, 0, block.timestamp);
        _commitList(alice, ds);
        reg.registerDatasetsFor(ds, alice, SALT, block.timestamp, sig);
        IContributionRegistry.DatasetInput[] memory ds2 = _batch(2, 5);
        bytes memory sig2 = _signBatch(aliceKey, alice, ds2, 0, block.timestamp);
        _commitList(alice, ds2);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, alice));
        reg.registerDatasetsFor(ds2, alice, SALT, block.timestamp, sig2);
    }

    function test_registerDatasetsFor_revertsWhen_expired() public {
        IContributionRegistry.DatasetInput[] memory ds = _batch(2, 6);
        uint256 deadline = block.timestamp;
        bytes memory sig = _signBatch(aliceKey, alice, ds, 0, deadline);
        vm.warp(deadline + 1);
        _commitList(alice, ds);
        vm.expectRevert(
            abi.encodeWithSelector(IContributionRegistry.ContributionRegistryExpiredSignature.selector, deadline)
        );
        reg.registerDatasetsFor(ds, alice, SALT, deadline, sig);
    }

    function test_registerCompute_revertsWhen_alreadyRegistered() public {
        vm.startPrank(alice);
        bytes32 id = reg.registerCompute(bytes32("job"), 1, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryAlreadyRegistered.selector, id));
        reg.registerCompute(bytes32("job"), 2, 0, 0);
        vm.stopPrank();
    }

    function test_registerCompute_revertsWhen_paused() public {
        vm.prank(admin);
        reg.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        reg.registerCompute(bytes32("job"), 1, 0, 0);
    }

    function test_registerComputeFor_revertsWhen_wrongSigner() public {
        IContributionRegistry.ComputeInput memory j = _job(bytes32("job"));
        bytes memory sig = _signCompute(bobKey, alice, j, 0, block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, alice));
        reg.registerComputeFor(j, alice, block.timestamp, sig);
    }

    function test_registerComputeFor_revertsWhen_expired() public {
        IContributionRegistry.ComputeInput memory j = _job(bytes32("job"));
        uint256 deadline = block.timestamp - 1;
        bytes memory sig = _signCompute(aliceKey, alice, j, 0, deadline);
        vm.expectRevert(
            abi.encodeWithSelector(IContributionRegistry.ContributionRegistryExpiredSignature.selector, deadline)
        );
        reg.registerComputeFor(j, alice, deadline, sig);
    }

    function test_registerComputeFor_revertsWhen_reusedNonce() public {
        IContributionRegistry.ComputeInput memory j = _job(bytes32("job"));
        bytes memory sig = _signCompute(aliceKey, alice, j, 0, block.timestamp);
        reg.registerComputeFor(j, alice, block.timestamp, sig);
        IContributionRegistry.ComputeInput memory j2 = _job(bytes32("job2"));
        bytes memory sig2 = _signCompute(aliceKey, alice, j2, 0, block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, alice));
        reg.registerComputeFor(j2, alice, block.timestamp, sig2);
    }

    function test_registerComputeFor_revertsWhen_paused() public {
        IContributionRegistry.ComputeInput memory j = _job(bytes32("job"));
        bytes memory sig = _signCompute(aliceKey, alice, j, 0, block.timestamp);
        vm.prank(admin);
        reg.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        reg.registerComputeFor(j, alice, block.timestamp, sig);
    }

    function test_registerComputeFor_revertsWhen_zeroProvider() public {
        vm.expectRevert(IContributionRegistry.ContributionRegistryInvalidInput.selector);
        reg.registerComputeFor(_job(bytes32("job")), address(0), block.timestamp, new bytes(65));
    }

    function test_registerComputeFor_revertsWhen_alreadyRegistered() public {
        IContributionRegistry.ComputeInput memory j = _job(bytes32("job"));
        vm.prank(alice);
        bytes32 id = reg.registerCompute(j.jobId, 1, 0, 0);
        bytes memory sig = _signCompute(aliceKey, alice, j, 0, block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryAlreadyRegistered.selector, id));
        reg.registerComputeFor(j, alice, block.timestamp, sig);
    }

    function test_registerComputes_revertsWhen_paused() public {
        vm.prank(admin);
        reg.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        reg.registerComputes(_jobs(1));
    }

    function test_registerComputes_revertsWhen_duplicateInBatch() public {
        IContributionRegistry.ComputeInput[] memory js = _jobs(3);
        js[2].jobId = js[0].jobId;
        bytes32 id = reg.computeId(alice, js[0].jobId);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryAlreadyRegistered.selector, id));
        reg.registerComputes(js);
    }

    function test_registerDatasetsFor_revertsWhen_paused() public {
        IContributionRegistry.DatasetInput[] memory ds = _batch(1, 8);
        bytes memory sig = _signBatch(aliceKey, alice, ds, 0, block.timestamp);
        vm.prank(admin);
        reg.pause();
        _commitList(alice, ds);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        reg.registerDatasetsFor(ds, alice, SALT, block.timestamp, sig);
    }

    function test_registerDatasetsFor_revertsWhen_wrongSigner() public {
        IContributionRegistry.DatasetInput[] memory ds = _batch(2, 7);
        bytes memory sig = _signBatch(bobKey, alice, ds, 0, block.timestamp);
        _commitList(alice, ds);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, alice));
        reg.registerDatasetsFor(ds, alice, SALT, block.timestamp, sig);
    }

    function test_registerComputes_revertsWhen_empty() public {
        vm.expectRevert(IContributionRegistry.ContributionRegistryInvalidInput.selector);
        reg.registerComputes(new IContributionRegistry.ComputeInput[](0));
    }

    function test_attest_revertsWhen_notValidator() public {
        bytes32 h = keccak256("data");
        _commitOne(alice, h);
        vm.prank(alice);
        reg.registerDataset(h, 1, 0, 0, "", SALT);
        bytes32 role = reg.VALIDATOR_ROLE();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, alice, role));
        reg.attest(h, 1);
    }

    function test_attest_revertsWhen_scoreAbove10000() public {
        bytes32 h = keccak256("data");
        _commitOne(alice, h);
        vm.prank(alice);
        reg.registerDataset(h, 1, 0, 0, "", SALT);
        vm.prank(validator);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidScore.selector, 10001));
        reg.attest(h, 10001);
    }

    function test_attest_revertsWhen_unknownContribution() public {
        vm.prank(validator);
        vm.expectRevert(
            abi.encodeWithSelector(IContributionRegistry.ContributionRegistryUnknownContribution.selector, bytes32("nope"))
        );
        reg.attest(bytes32("nope"), 1);
    }

    function test_attest_revertsWhen_withdrawn() public {
        bytes32 h = keccak256("data");
        vm.startPrank(alice);
        _commitOne(alice, h);
        reg.registerDataset(h, 1, 0, 0, "", SALT);
        reg.withdraw(h);
        vm.stopPrank();
        vm.prank(validator);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryAlreadyWithdrawn.selector, h));
        reg.attest(h, 1);
    }

    function test_attestBatch_revertsWhen_lengthMismatch() public {
        vm.prank(validator);
        vm.expectRevert(IContributionRegistry.ContributionRegistryLengthMismatch.selector);
        reg.attestBatch(new bytes32[](2), new uint16[](1));
    }

    function test_attestBatch_revertsWhen_notValidator() public {
        bytes32 role = reg.VALIDATOR_ROLE();
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, bob, role));
        reg.attestBatch(new bytes32[](0), new uint16[](0));
    }

    function test_withdraw_revertsWhen_unknown() public {
        vm.expectRevert(
            abi.encodeWithSelector(IContributionRegistry.ContributionRegistryUnknownContribution.selector, bytes32("x"))
        );
        reg.withdraw(bytes32("x"));
    }

    function test_withdraw_revertsWhen_notOwner() public {
        bytes32 h = keccak256("data");
        _commitOne(alice, h);
        vm.prank(alice);
        reg.registerDataset(h, 1, 0, 0, "", SALT);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryNotOwner.selector, h, bob));
        reg.withdraw(h);
    }

    function test_withdraw_revertsWhen_alreadyWithdrawn() public {
        bytes32 h = keccak256("data");
        vm.startPrank(alice);
        _commitOne(alice, h);
        reg.registerDataset(h, 1, 0, 0, "", SALT);
        reg.withdraw(h);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryAlreadyWithdrawn.selector, h));
        reg.withdraw(h);
        vm.stopPrank();
    }

    function test_withdrawFor_relayedBySignature() public {
        bytes32 h = keccak256("data");
        _commitOne(alice, h);
        vm.prank(alice);
        reg.registerDataset(h, 1, 0, 0, "", SALT);
        bytes memory sig = _signWithdraw(aliceKey, alice, h, 0, block.timestamp);
        vm.expectEmit(true, true, false, false, address(reg));
        emit IContributionRegistry.ContributionWithdrawn(h, alice);
        vm.prank(relayer);
        reg.withdrawFor(h, alice, block.timestamp, sig);
        assertTrue(reg.contributionOf(h).withdrawn);
        assertEq(reg.nonces(alice), 1);
    }

    function test_withdrawFor_revertsWhen_wrongSigner() public {
        bytes32 h = keccak256("data");
        _commitOne(alice, h);
        vm.prank(alice);
        reg.registerDataset(h, 1, 0, 0, "", SALT);
        bytes memory sig = _signWithdraw(bobKey, alice, h, 0, block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, alice));
        reg.withdrawFor(h, alice, block.timestamp, sig);
    }

    function test_withdrawFor_revertsWhen_notOwner() public {
        bytes32 h = keccak256("data");
        _commitOne(alice, h);
        vm.prank(alice);
        reg.registerDataset(h, 1, 0, 0, "", SALT);
        // bob signs a valid withdrawal for himself, but he does not own the dataset
        bytes memory sig = _signWithdraw(bobKey, bob, h, 0, block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryNotOwner.selector, h, bob));
        reg.withdrawFor(h, bob, block.timestamp, sig);
    }

    function test_withdrawFor_revertsWhen_expired() public {
        bytes32 h = keccak256("data");
        _commitOne(alice, h);
        vm.prank(alice);
        reg.registerDataset(h, 1, 0, 0, "", SALT);
        uint256 deadline = block.timestamp - 1;
        bytes memory sig = _signWithdraw(aliceKey, alice, h, 0, deadline);
        vm.expectRevert(
            abi.encodeWithSelector(IContributionRegistry.ContributionRegistryExpiredSignature.selector, deadline)
        );
        reg.withdrawFor(h, alice, deadline, sig);
    }

    function test_withdrawFor_revertsWhen_reusedNonce() public {
        bytes32 h = keccak256("data");
        bytes32 h2 = keccak256("data2");
        vm.startPrank(alice);
        _commitOne(alice, h);
        reg.registerDataset(h, 1, 0, 0, "", SALT);
        _commitOne(alice, h2);
        reg.registerDataset(h2, 1, 0, 0, "", SALT);
        vm.stopPrank();
        reg.withdrawFor(h, alice, block.timestamp, _signWithdraw(aliceKey, alice, h, 0, block.timestamp));
        bytes memory sig = _signWithdraw(aliceKey, alice, h2, 0, block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, alice));
        reg.withdrawFor(h2, alice, block.timestamp, sig);
    }

    function test_withdrawFor_revertsWhen_unknown() public {
        bytes memory sig = _signWithdraw(aliceKey, alice, bytes32("x"), 0, block.timestamp);
        vm.expectRevert(
            abi.encodeWithSelector(IContributionRegistry.ContributionRegistryUnknownContribution.selector, bytes32("x"))
        );
        reg.withdrawFor(bytes32("x"), alice, block.timestamp, sig);
    }

    function test_pause_revertsWhen_notPauser() public {
        bytes32 role = reg.PAUSER_ROLE();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, alice, role));
        reg.pause();
    }

    function test_unpause_revertsWhen_notPauser() public {
        vm.prank(admin);
        reg.pause();
        bytes32 role = reg.PAUSER_ROLE();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, alice, role));
        reg.unpause();
    }

    // --- fuzz ---

    function testFuzz_registerDataset_oneOwnerEver(bytes32 h, address first, address second, uint64 size) public {
        vm.assume(h != bytes32(0) && first != address(0) && second != address(0));
        _commitOne(first, h);
        vm.prank(first);
        reg.registerDataset(h, size, 0, 0, "u", SALT);
        _commitOne(second, h);
        vm.prank(second);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryAlreadyRegistered.selector, h));
        reg.registerDataset(h, size, 1, 0, "v", SALT);
        if (second == first) {
            vm.prank(first);
            reg.withdraw(h);
        }
        assertEq(reg.contributionOf(h).owner, first);
    }

    function testFuzz_registerDatasetFor_bindsOwner(uint256 keySeed, bytes32 h, address claimed, uint64 deadlineDelta)
        public
    {
        uint256 key = bound(keySeed, 1, N - 1);
        address owner = vm.addr(key);
        vm.assume(h != bytes32(0) && claimed != owner && claimed != address(0));
        IContributionRegistry.DatasetInput memory d = _ds(h);
        uint256 deadline = block.timestamp + deadlineDelta;
        bytes memory sig = _signDataset(reg, key, owner, d, 0, deadline);
        _commitOne(claimed, (d).contentHash);
        vm.expectRevert(
            abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, claimed)
        );
        reg.registerDatasetFor(d, claimed, SALT, deadline, sig);
        _commitOne(owner, (d).contentHash);
        reg.registerDatasetFor(d, owner, SALT, deadline, sig);
        assertEq(reg.contributionOf(h).owner, owner);
    }

    function testFuzz_attest_scoreRange(uint16 score) public {
        bytes32 h = keccak256("data");
        _commitOne(alice, h);
        vm.prank(alice);
        reg.registerDataset(h, 1, 0, 0, "", SALT);
        vm.prank(validator);
        if (score > 10000) {
            vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidScore.selector, score));
        }
        reg.attest(h, score);
    }

    function testFuzz_epochClock_consistent(uint64 t) public {
        vm.warp(t);
        uint64 e = reg.currentEpoch();
        if (t < GENESIS) {
            assertEq(e, 0);
        } else {
            assertLe(reg.epochStart(e), t);
            assertGt(reg.epochEnd(e), t);
        }
    }
}

/// @notice Replay matrix for relayed registration: every case must be rejected.
contract ContributionRegistryReplayTest is RegistryFixture {
    IContributionRegistry.DatasetInput internal d;
    uint256 internal deadline;

    function setUp() public override {
        super.setUp();
        d = _ds(keccak256("replay"));
        deadline = block.timestamp + 1 hours;
    }

    function _expectInvalid(address owner) internal {
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, owner));
    }

    function test_registerDatasetFor_revertsWhen_reusedNonce() public {
        bytes memory sig = _signDataset(reg, aliceKey, alice, d, 0, deadline);
        _commitOne(alice, (d).contentHash);
        reg.registerDatasetFor(d, alice, SALT, deadline, sig);
        // same nonce, other dataset: nonce 0 is spent
        IContributionRegistry.DatasetInput memory d2 = _ds(keccak256("replay-2"));
        bytes memory sig2 = _signDataset(reg, aliceKey, alice, d2, 0, deadline);
        _commitOne(alice, (d2).contentHash);
        _expectInvalid(alice);
        reg.registerDatasetFor(d2, alice, SALT, deadline, sig2);
        // the identical call again
        _commitOne(alice, (d).contentHash);
        vm.expectRevert();
        reg.registerDatasetFor(d, alice, SALT, deadline, sig);
    }

    function test_registerDatasetFor_revertsWhen_otherChainId() public {
        bytes memory sig = _signDataset(reg, aliceKey, alice, d, 0, deadline);
        vm.chainId(block.chainid + 1);
        _commitOne(alice, (d).contentHash);
        _expectInvalid(alice);
        reg.registerDatasetFor(d, alice, SALT, deadline, sig);
        // and the domain really was rebuilt for the new chain id
        assertEq(reg.DOMAIN_SEPARATOR(), _domain(address(reg), block.chainid));
    }

    function test_registerDatasetFor_revertsWhen_otherContract() public {
        ContributionRegistry other = new ContributionRegistry(admin, GENESIS, LENGTH);
        bytes memory sig = _signDataset(other, aliceKey, alice, d, 0, deadline);
        _commitOne(alice, (d).contentHash);
        _expectInvalid(alice);
        reg.registerDatasetFor(d, alice, SALT, deadline, sig);
    }

    function test_registerDatasetFor_revertsWhen_expiredDeadline() public {
        bytes memory sig = _signDataset(reg, aliceKey, alice, d, 0, deadline);
        vm.warp(deadline + 1);
        _commitOne(alice, (d).contentHash);
        vm.expectRevert(
            abi.encodeWithSelector(IContributionRegistry.ContributionRegistryExpiredSignature.selector, deadline)
        );
        reg.registerDatasetFor(d, alice, SALT, deadline, sig);
    }

    function test_registerDatasetFor_revertsWhen_highS() public {
        bytes32 sh = keccak256(abi.encode(reg.REGISTER_DATASET_TYPEHASH(), alice, _dsHash(reg, d), 0, deadline));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(aliceKey, _digest(reg, sh));
        bytes32 highS = bytes32(N - uint256(s));
        uint8 flippedV = v == 27 ? 28 : 27;
        // ecrecover itself accepts the malleable twin; the contract must not.
        assertEq(ecrecover(_digest(reg, sh), flippedV, r, highS), alice);
        _commitOne(alice, (d).contentHash);
        _expectInvalid(alice);
        reg.registerDatasetFor(d, alice, SALT, deadline, abi.encodePacked(r, highS, flippedV));
    }

    function test_registerDatasetFor_revertsWhen_wrongSigner() public {
        bytes memory sig = _signDataset(reg, bobKey, alice, d, 0, deadline);
        _commitOne(alice, (d).contentHash);
        _expectInvalid(alice);
        reg.registerDatasetFor(d, alice, SALT, deadline, sig);
    }

    function test_registerDatasetFor_revertsWhen_tamperedField() public {
        bytes memory sig = _signDataset(reg, aliceKey, alice, d, 0, deadline);
        d.size += 1;
        _commitOne(alice, (d).contentHash);
        _expectInvalid(alice);
        reg.registerDatasetFor(d, alice, SALT, deadline, sig);
    }

    function test_registerDatasetFor_revertsWhen_deadlineChanged() public {
        bytes memory sig = _signDataset(reg, aliceKey, alice, d, 0, deadline);
        _commitOne(alice, (d).contentHash);
        _expectInvalid(alice);
        reg.registerDatasetFor(d, alice, SALT, deadline + 1, sig);
    }
}

/// @notice Invariant: a content hash never gets a second owner.
contract ContributionRegistryInvariantTest is Test {
    ContributionRegistry internal reg;
    RegistryHandler internal handler;

    function setUp() public {
        vm.warp(2_000_000);
        reg = new ContributionRegistry(address(this), 1_000_000, 3600);
        handler = new RegistryHandler(reg);
        targetContract(address(handler));
    }

    /// The owner of every hash is whoever revealed the earliest commitment (takeovers included).
    function invariant_contentHashNeverGetsSecondOwner() public view {
        for (uint256 i; i < handler.POOL(); i++) {
            bytes32 h = handler.hashAt(i);
            address ghost = handler.ghostOwner(h);
            assertTrue(ghost != address(0xdead), "a hash was registered twice");
            assertEq(reg.contributionOf(h).owner, ghost, "owner differs from the first registrant");
        }
    }
}
