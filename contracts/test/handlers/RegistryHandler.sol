// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Vm} from "../utils/Vm.sol";
import {ContributionRegistry} from "../../src/ContributionRegistry.sol";
import {IContributionRegistry} from "../../src/interfaces/IContributionRegistry.sol";

/// @notice Invariant handler: random actors register, batch-register, relay and withdraw over a small pool of
/// content hashes, so collisions are frequent. Ghost state records the first owner of every hash.
contract RegistryHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    ContributionRegistry public immutable REGISTRY;
    uint256 public constant POOL = 8;
    uint256 public constant ACTORS = 4;

    mapping(bytes32 contentHash => address firstOwner) public ghostOwner;
    uint256 public registrations;

    constructor(ContributionRegistry registry) {
        REGISTRY = registry;
    }

    function hashAt(uint256 i) public pure returns (bytes32) {
        return keccak256(abi.encode("pool", i % POOL));
    }

    function actorKey(uint256 i) public pure returns (uint256) {
        return uint256(keccak256(abi.encode("actor", i % ACTORS)));
    }

    function register(uint256 actorSeed, uint256 hashSeed) external {
        address actor = vm.addr(actorKey(actorSeed));
        bytes32 h = hashAt(hashSeed);
        vm.prank(actor);
        try REGISTRY.registerDataset(h, 1, 0, bytes32(0), "ipfs://x") {
            _record(h, actor);
        } catch {}
    }

    function registerBatch(uint256 actorSeed, uint256 hashSeedA, uint256 hashSeedB) external {
        address actor = vm.addr(actorKey(actorSeed));
        IContributionRegistry.DatasetInput[] memory ds = new IContributionRegistry.DatasetInput[](2);
        ds[0] = IContributionRegistry.DatasetInput(hashAt(hashSeedA), 1, 0, bytes32(0), "a");
        ds[1] = IContributionRegistry.DatasetInput(hashAt(hashSeedB), 1, 0, bytes32(0), "b");
        vm.prank(actor);
        try REGISTRY.registerDatasets(ds) {
            _record(ds[0].contentHash, actor);
            _record(ds[1].contentHash, actor);
        } catch {}
    }

    /// @dev The shared-fields batch (`registerDatasetBatch`), possibly with a hash twice.
    function registerDatasetBatch(uint256 actorSeed, uint256 hashSeedA, uint256 hashSeedB) external {
        address actor = vm.addr(actorKey(actorSeed));
        IContributionRegistry.DatasetBatch memory b;
        b.contentHashes = new bytes32[](2);
        b.contentHashes[0] = hashAt(hashSeedA);
        b.contentHashes[1] = hashAt(hashSeedB);
        b.sizes = new uint64[](2);
        b.uri = "ipfs://batch";
        vm.prank(actor);
        try REGISTRY.registerDatasetBatch(b) {
            _record(b.contentHashes[0], actor);
            _record(b.contentHashes[1], actor);
        } catch {}
    }

    /// @dev A relayed registration signed by `owner` but submitted by `relayer` (possibly another actor).
    function registerRelayed(uint256 ownerSeed, uint256 relayerSeed, uint256 hashSeed) external {
        uint256 key = actorKey(ownerSeed);
        address owner = vm.addr(key);
        IContributionRegistry.DatasetInput memory d =
            IContributionRegistry.DatasetInput(hashAt(hashSeed), 2, 1, bytes32(uint256(1)), "r");
        bytes32 digest = _digest(owner, d, REGISTRY.nonces(owner), block.timestamp);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        vm.prank(vm.addr(actorKey(relayerSeed)));
        try REGISTRY.registerDatasetFor(d, owner, block.timestamp, abi.encodePacked(r, s, v)) {
            _record(d.contentHash, owner);
        } catch {}
    }

    function withdraw(uint256 actorSeed, uint256 hashSeed) external {
        vm.prank(vm.addr(actorKey(actorSeed)));
        try REGISTRY.withdraw(hashAt(hashSeed)) {} catch {}
    }

    function warp(uint256 dt) external {
        vm.warp(block.timestamp + (dt % 1 days));
    }

    function _record(bytes32 h, address owner) private {
        // A successful registration of an already-owned hash would be the bug the invariant looks for:
        // keep the first owner so the invariant sees the mismatch.
        if (ghostOwner[h] == address(0)) ghostOwner[h] = owner;
        else ghostOwner[h] = address(0xdead);
        registrations++;
    }

    function _digest(address owner, IContributionRegistry.DatasetInput memory d, uint256 nonce, uint256 deadline)
        private
        view
        returns (bytes32)
    {
        bytes32 dh = keccak256(
            abi.encode(REGISTRY.DATASET_TYPEHASH(), d.contentHash, d.size, d.licenseId, d.metadataHash, keccak256(bytes(d.uri)))
        );
        bytes32 sh = keccak256(abi.encode(REGISTRY.REGISTER_DATASET_TYPEHASH(), owner, dh, nonce, deadline));
        return keccak256(abi.encodePacked("\x19\x01", REGISTRY.DOMAIN_SEPARATOR(), sh));
    }
}
