// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {RegistryCommits} from "./utils/RegistryCommits.sol";
import {ContributionRegistry} from "../src/ContributionRegistry.sol";
import {ModelRegistry} from "../src/ModelRegistry.sol";
import {IModelRegistry} from "../src/interfaces/IModelRegistry.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

contract ModelRegistryTest is RegistryCommits {
    ContributionRegistry internal reg;
    ModelRegistry internal models;
    address internal admin = makeAddr("admin");
    address internal trainer = makeAddr("trainer");
    address internal trainer2 = makeAddr("trainer2");
    address internal alice = makeAddr("alice");
    bytes32 internal constant MODEL = keccak256("model-1");
    bytes32 internal d1;
    bytes32 internal d2;
    bytes32 internal d3;

    function _registry() internal view override returns (ContributionRegistry) {
        return reg;
    }

    function setUp() public {
        vm.warp(1_000_000);
        reg = new ContributionRegistry(admin, 1_000_000, 3600);
        models = new ModelRegistry(admin, reg, 1_000_000, 3600);
        vm.startPrank(admin);
        models.grantRole(models.TRAINER_ROLE(), trainer);
        models.grantRole(models.TRAINER_ROLE(), trainer2);
        vm.stopPrank();
        // three datasets with ascending ids
        bytes32[3] memory hs = [keccak256("a"), keccak256("b"), keccak256("c")];
        for (uint256 i; i < 3; i++) {
            for (uint256 j = i + 1; j < 3; j++) {
                if (hs[j] < hs[i]) (hs[i], hs[j]) = (hs[j], hs[i]);
            }
        }
        (d1, d2, d3) = (hs[0], hs[1], hs[2]);
        vm.startPrank(alice);
        _commitOne(alice, d1);
        reg.registerDataset(d1, 1, 0, 0, "", SALT);
        _commitOne(alice, d2);
        reg.registerDataset(d2, 1, 0, 0, "", SALT);
        _commitOne(alice, d3);
        reg.registerDataset(d3, 1, 0, 0, "", SALT);
        vm.stopPrank();
    }

    function _two() internal view returns (bytes32[] memory ids, uint32[] memory ws) {
        ids = new bytes32[](2);
        ws = new uint32[](2);
        (ids[0], ids[1]) = (d1, d3);
        (ws[0], ws[1]) = (70, 30);
    }

    function test_registerManifest_versionsAndEmits() public {
        (bytes32[] memory ids, uint32[] memory ws) = _two();
        vm.expectEmit(true, true, true, true, address(models));
        emit IModelRegistry.ModelManifestRegistered(MODEL, 1, trainer, ids, ws);
        vm.prank(trainer);
        assertEq(models.registerManifest(MODEL, ids, ws), 1);
        vm.prank(trainer);
        assertEq(models.registerManifest(MODEL, ids, ws), 2);
        assertEq(models.latestVersion(MODEL), 2);
        assertEq(models.trainerOf(MODEL), trainer);
        assertTrue(models.modelExists(MODEL));
        assertFalse(models.modelExists(keccak256("nope")));
        assertEq(models.manifestHash(MODEL, 1), keccak256(abi.encode(ids, ws)));
        assertEq(address(models.REGISTRY()), address(reg));
    }

    function test_registerManifest_revertsWhen_notTrainer() public {
        (bytes32[] memory ids, uint32[] memory ws) = _two();
        bytes32 role = models.TRAINER_ROLE();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, alice, role));
        models.registerManifest(MODEL, ids, ws);
    }

    function test_registerManifest_revertsWhen_otherTrainersModel() public {
        (bytes32[] memory ids, uint32[] memory ws) = _two();
        vm.prank(trainer);
        models.registerManifest(MODEL, ids, ws);
        vm.prank(trainer2);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.ModelRegistryNotModelTrainer.selector, MODEL, trainer2));
        models.registerManifest(MODEL, ids, ws);
    }

    function test_registerManifest_revertsWhen_lengthMismatch() public {
        vm.prank(trainer);
        vm.expectRevert(IModelRegistry.ModelRegistryLengthMismatch.selector);
        models.registerManifest(MODEL, new bytes32[](2), new uint32[](1));
    }

    function test_registerManifest_revertsWhen_empty() public {
        vm.prank(trainer);
        vm.expectRevert(IModelRegistry.ModelRegistryInvalidManifest.selector);
        models.registerManifest(MODEL, new bytes32[](0), new uint32[](0));
    }

    function test_registerManifest_revertsWhen_zeroModelId() public {
        (bytes32[] memory ids, uint32[] memory ws) = _two();
        vm.prank(trainer);
        vm.expectRevert(IModelRegistry.ModelRegistryInvalidManifest.selector);
        models.registerManifest(bytes32(0), ids, ws);
    }

    function test_registerManifest_revertsWhen_zeroWeight() public {
        (bytes32[] memory ids, uint32[] memory ws) = _two();
        ws[1] = 0;
        vm.prank(trainer);
        vm.expectRevert(IModelRegistry.ModelRegistryInvalidManifest.selector);
        models.registerManifest(MODEL, ids, ws);
    }

    function test_registerManifest_revertsWhen_duplicateOrUnsorted() public {
        (bytes32[] memory ids, uint32[] memory ws) = _two();
        ids[1] = ids[0];
        vm.prank(trainer);
        vm.expectRevert(IModelRegistry.ModelRegistryInvalidManifest.selector);
        models.registerManifest(MODEL, ids, ws);
        (ids[0], ids[1]) = (d3, d1);
        vm.prank(trainer);
        vm.expectRevert(IModelRegistry.ModelRegistryInvalidManifest.selector);
        models.registerManifest(MODEL, ids, ws);
    }

    function test_registerManifest_revertsWhen_unknownDataset() public {
        (bytes32[] memory ids, uint32[] memory ws) = _two();
        ids[1] = bytes32(type(uint256).max);
        vm.prank(trainer);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.ModelRegistryUnknownDataset.selector, ids[1]));
        models.registerManifest(MODEL, ids, ws);
    }

    function test_registerManifest_revertsWhen_computeNotDataset() public {
        vm.prank(alice);
        bytes32 cid = reg.registerCompute(bytes32("job"), 1, 0, 0);
        bytes32[] memory ids = new bytes32[](1);
        uint32[] memory ws = new uint32[](1);
        (ids[0], ws[0]) = (cid, 1);
        vm.prank(trainer);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.ModelRegistryUnknownDataset.selector, cid));
        models.registerManifest(MODEL, ids, ws);
    }

    function test_registerManifest_revertsWhen_datasetWithdrawn() public {
        vm.prank(alice);
        reg.withdraw(d2);
        bytes32[] memory ids = new bytes32[](1);
        uint32[] memory ws = new uint32[](1);
        (ids[0], ws[0]) = (d2, 1);
        vm.prank(trainer);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.ModelRegistryUnknownDataset.selector, d2));
        models.registerManifest(MODEL, ids, ws);
    }

    function testFuzz_registerManifest_weightsRoundTrip(uint32 w1, uint32 w2, bytes32 modelId) public {
        vm.assume(w1 != 0 && w2 != 0 && modelId != bytes32(0));
        (bytes32[] memory ids, uint32[] memory ws) = _two();
        (ws[0], ws[1]) = (w1, w2);
        vm.prank(trainer);
        uint32 v = models.registerManifest(modelId, ids, ws);
        assertEq(models.manifestHash(modelId, v), keccak256(abi.encode(ids, ws)));
    }
}
