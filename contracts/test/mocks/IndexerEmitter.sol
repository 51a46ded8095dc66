// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @notice Test-only contract for the indexer: emits events with the exact signatures of docs/ARCHITECTURE.md
/// so the indexer machinery can be exercised before (and independently of) the real Cairn contracts.
contract IndexerEmitter {
    event DatasetRegistered(
        bytes32 indexed contentHash, address indexed owner, uint64 size, uint32 licenseId, bytes32 metadataHash, string uri
    );
    event ComputeRegistered(
        bytes32 indexed contributionId,
        address indexed provider,
        bytes32 indexed modelId,
        bytes32 jobId,
        uint64 workUnits,
        bytes32 resultHash
    );
    event Attested(bytes32 indexed contributionId, address indexed validator, uint16 score);
    event ContributionWithdrawn(bytes32 indexed contributionId, address indexed owner);
    event ModelManifestRegistered(
        bytes32 indexed modelId, uint32 indexed version, address indexed trainer, bytes32[] datasetIds, uint32[] weights
    );
    event PaymentSettled(
        address indexed payer,
        bytes32 indexed modelId,
        uint64 indexed epoch,
        uint256 amount,
        uint256 fee,
        bytes32 requestHash,
        uint32 requestCount
    );
    event Transfer(address indexed from, address indexed to, uint256 value);

    uint256 private _nonce;

    /// @notice Emits `count` Attested events (many events per transaction for fast generation).
    function attestMany(bytes32 seed, uint256 count) external {
        for (uint256 i = 0; i < count; ++i) {
            emit Attested(keccak256(abi.encode(seed, i)), msg.sender, uint16(i % 10001));
        }
    }

    /// @notice Emits one event of every kind, with values derived from `seed`.
    function emitAll(bytes32 seed) external {
        uint256 n = ++_nonce;
        emit DatasetRegistered(seed, msg.sender, uint64(n), uint32(n % 7), keccak256(abi.encode(seed)), "ipfs://x");
        emit ComputeRegistered(keccak256(abi.encode(msg.sender, seed)), msg.sender, bytes32(n), seed, uint64(n * 3), seed);
        emit Attested(seed, msg.sender, uint16(n % 10001));
        bytes32[] memory ids = new bytes32[](2);
        ids[0] = seed;
        ids[1] = bytes32(n);
        uint32[] memory weights = new uint32[](2);
        weights[0] = 3;
        weights[1] = 7;
        emit ModelManifestRegistered(bytes32(n % 3), uint32(n), msg.sender, ids, weights);
        emit PaymentSettled(msg.sender, bytes32(n % 3), uint64(n % 5), type(uint256).max - n, n, seed, uint32(n));
        emit Transfer(address(0), msg.sender, type(uint256).max / (n + 1));
        if (n % 4 == 0) emit ContributionWithdrawn(seed, msg.sender);
    }
}
