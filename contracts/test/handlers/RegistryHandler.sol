// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Vm} from "../utils/Vm.sol";
import {ContributionRegistry} from "../../src/ContributionRegistry.sol";
import {IContributionRegistry} from "../../src/interfaces/IContributionRegistry.sol";

/// @notice Invariant handler: random actors register, batch-register, relay and withdraw over a small pool of
/// content hashes, so collisions are frequent. Commitments are made and revealed in separate steps (blocks roll
/// in between), so older commitments do take datasets over. Ghost state records, per hash, the owner whose
/// successful reveal had the earliest commitment.
contract RegistryHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    ContributionRegistry public immutable REGISTRY;
    uint256 public constant POOL = 8;
    uint256 public constant ACTORS = 4;

    bytes32 public constant SALT = keccak256("handler-salt");

    mapping(bytes32 contentHash => address firstOwner) public ghostOwner;
    mapping(bytes32 contentHash => uint256 commitBlock) public ghostCommitBlock;
    uint256 public registrations;
    uint256 public takeovers;

    constructor(ContributionRegistry registry) {
        REGISTRY = registry;
    }

    function hashAt(uint256 i) public pure returns (bytes32) {
        return keccak256(abi.encode("pool", i % POOL));
    }

    function actorKey(uint256 i) public pure returns (uint256) {
        return uint256(keccak256(abi.encode("actor", i % ACTORS)));
    }

    /// @dev Commit `actor`'s single registration of a pool hash (revealed later by `register`).
    function commitOne(uint256 actorSeed, uint256 hashSeed) external {
        _commit(REGISTRY.commitmentOf(vm.addr(actorKey(actorSeed)), hashAt(hashSeed), SALT));
    }

    function roll(uint256 n) external {
        vm.roll(block.number + 1 + (n % 5));
    }

    function register(uint256 actorSeed, uint256 hashSeed) external {
        address actor = vm.addr(actorKey(actorSeed));
        bytes32 h = hashAt(hashSeed);
        uint256 committedAt = REGISTRY.commitmentBlock(REGISTRY.commitmentOf(actor, h, SALT));
        vm.prank(actor);
        try REGISTRY.registerDataset(h, 1, 0, bytes32(0), "ipfs://x", SALT) {
            _record(h, actor, committedAt);
        } catch {}
    }

    function registerBatch(uint256 actorSeed, uint256 hashSeedA, uint256 hashSeedB) external {
        address actor = vm.addr(actorKey(actorSeed));
        IContributionRegistry.DatasetInput[] memory ds = new IContributionRegistry.DatasetInput[](2);
        ds[0] = IContributionRegistry.DatasetInput(hashAt(hashSeedA), 1, 0, bytes32(0), "a");
        ds[1] = IContributionRegistry.DatasetInput(hashAt(hashSeedB), 1, 0, bytes32(0), "b");
        bytes32[] memory hs = new bytes32[](2);
        (hs[0], hs[1]) = (ds[0].contentHash, ds[1].contentHash);
        uint256 committedAt = _commitAndRoll(REGISTRY.commitmentOf(actor, REGISTRY.batchDigest(hs), SALT));
        vm.prank(actor);
        try REGISTRY.registerDatasets(ds, SALT) {
            _record(ds[0].contentHash, actor, committedAt);
            _record(ds[1].contentHash, actor, committedAt);
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
        uint256 committedAt = _commitAndRoll(REGISTRY.commitmentOf(actor, REGISTRY.batchDigest(b.contentHashes), SALT));
        vm.prank(actor);
        try REGISTRY.registerDatasetBatch(b, SALT) {
            _record(b.contentHashes[0], actor, committedAt);
            _record(b.contentHashes[1], actor, committedAt);
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
        uint256 committedAt = _commitAndRoll(REGISTRY.commitmentOf(owner, d.contentHash, SALT));
        vm.prank(vm.addr(actorKey(relayerSeed)));
        try REGISTRY.registerDatasetFor(d, owner, SALT, block.timestamp, abi.encodePacked(r, s, v)) {
            _record(d.contentHash, owner, committedAt);
        } catch {}
    }

    function withdraw(uint256 actorSeed, uint256 hashSeed) external {
        vm.prank(vm.addr(actorKey(actorSeed)));
        try REGISTRY.withdraw(hashAt(hashSeed)) {} catch {}
    }

    function warp(uint256 dt) external {
        vm.warp(block.timestamp + (dt % 1 days));
    }

    function _commit(bytes32 c) private {
        bytes32[] memory cs = new bytes32[](1);
        cs[0] = c;
        REGISTRY.commit(cs);
    }

    /// @dev Commit, roll a block, and return the commitment's block (an earlier live one is kept by `commit`).
    function _commitAndRoll(bytes32 c) private returns (uint256 committedAt) {
        _commit(c);
        vm.roll(block.number + 1);
        committedAt = REGISTRY.commitmentBlock(c);
    }

    function _record(bytes32 h, address owner, uint256 committedAt) private {
        // A successful registration of an already-owned hash is legitimate only with a strictly older
        // commitment (a takeover); anything else is the bug the invariant looks for: mark it.
        if (ghostOwner[h] == address(0)) {
            ghostOwner[h] = owner;
        } else if (committedAt < ghostCommitBlock[h]) {
            ghostOwner[h] = owner;
            takeovers++;
        } else {
            ghostOwner[h] = address(0xdead);
        }
        ghostCommitBlock[h] = committedAt;
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
