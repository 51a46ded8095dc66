// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IContributionRegistry
/// @notice Registry of contributions to open AI: datasets (identified by content hash, one owner: the earliest
/// commitment) and compute jobs (identified by `keccak256(abi.encode(COMPUTE_DOMAIN, provider, jobId))`). Validators attest scores; owners
/// may withdraw a contribution from future epochs. Only owner, kind, withdrawn flag and registration time are
/// stored (one slot); everything else lives in the events, which the indexer mirrors.
/// @dev Relayed registration: the contributor signs EIP-712 typed data (domain name "Cairn ContributionRegistry",
/// version "1", chain id, this contract) binding the owner, a sequential per-owner nonce (`nonces(owner)`) and a
/// deadline. EOAs sign with ECDSA (low-s only), contract wallets via EIP-1271.
/// Front-running: every dataset registration is a reveal of a commitment
/// `commitmentOf(owner, contentHash, salt)` (single) or `commitmentOf(owner, batchDigest(contentHashes), salt)`
/// (one per batch) made with `commit` at least one block earlier and at most `MAX_COMMITMENT_AGE` blocks earlier.
/// The commitment hides the content hash and names the owner, so a watcher learns the hash only from the reveal,
/// and any commitment he makes then is younger than the victim's: a reveal whose commitment is strictly older
/// than the holder's takes the dataset over (`DatasetReclaimed`).
interface IContributionRegistry {
    /// @notice Kind of a contribution. `None` means "not registered".
    enum Kind {
        None,
        Dataset,
        Compute
    }

    /// @notice One dataset in a batch (and the fields of a single registration).
    struct DatasetInput {
        bytes32 contentHash;
        uint64 size;
        uint32 licenseId;
        bytes32 metadataHash;
        string uri;
    }

    /// @notice Datasets registered together, sharing one licence, one metadata document and one location:
    /// the cheap batch (one event for the whole batch, ~1k gas per item above the fresh storage slot).
    /// `uri` is where the batch is fetched (an IPFS directory, an object-store prefix, an archive manifest); an
    /// item is found there by its content hash. `metadataHash` commits to the batch's metadata document.
    struct DatasetBatch {
        bytes32[] contentHashes;
        uint64[] sizes;
        uint32 licenseId;
        bytes32 metadataHash;
        string uri;
    }

    /// @notice One compute job in a batch (and the fields of a single registration).
    struct ComputeInput {
        bytes32 jobId;
        uint64 workUnits;
        bytes32 modelId;
        bytes32 resultHash;
    }

    /// @notice What the contract stores per contribution (one slot).
    struct Contribution {
        address owner;
        Kind kind;
        bool withdrawn;
        uint64 registeredAt;
        uint64 commitBlock;
    }

    /// @notice A dataset was registered; its contribution id is `contentHash`. `licenseId` is an off-chain
    /// licence table index, `metadataHash` commits to off-chain metadata, `uri` says where to fetch the data.
    event DatasetRegistered(
        bytes32 indexed contentHash, address indexed owner, uint64 size, uint32 licenseId, bytes32 metadataHash, string uri
    );
    /// @notice `owner` registered the datasets `contentHashes` (sizes `sizes`, same order) in one batch sharing
    /// `licenseId`, `metadataHash` and `uri`; each content hash is a contribution id, as with `DatasetRegistered`.
    event DatasetBatchRegistered(
        address indexed owner, uint32 licenseId, bytes32 metadataHash, string uri, bytes32[] contentHashes, uint64[] sizes
    );
    /// @notice A compute job was registered;
    /// `contributionId = keccak256(abi.encode(COMPUTE_DOMAIN, provider, jobId))`.
    /// `workUnits` is the job's measured work (e.g. GPU-seconds), `resultHash` commits to its output.
    event ComputeRegistered(
        bytes32 indexed contributionId,
        address indexed provider,
        bytes32 indexed modelId,
        bytes32 jobId,
        uint64 workUnits,
        bytes32 resultHash
    );
    /// @notice `newOwner`, whose commitment (block `newCommitBlock`) is older than `previousOwner`'s
    /// (`previousCommitBlock`), took the dataset over; the `DatasetRegistered` / `DatasetBatchRegistered` that
    /// follows in the same transaction carries its fields.
    event DatasetReclaimed(
        bytes32 indexed contentHash,
        address indexed previousOwner,
        address indexed newOwner,
        uint256 previousCommitBlock,
        uint256 newCommitBlock
    );
    /// @notice A dataset registered under a compute contribution id (not real content) was evicted by the
    /// compute registration of that id.
    event DatasetEvicted(bytes32 indexed contributionId, address indexed owner);
    /// @notice `score` in 0..10000; a later attestation by the same validator replaces the earlier one.
    event Attested(bytes32 indexed contributionId, address indexed validator, uint16 score);
    /// @notice The owner withdrew the contribution from future epochs' rewards (the id stays taken).
    event ContributionWithdrawn(bytes32 indexed contributionId, address indexed owner);

    /// @notice The content hash (or compute contribution id) is already registered (possibly withdrawn).
    error ContributionRegistryAlreadyRegistered(bytes32 contributionId);
    /// @notice No contribution with this id.
    error ContributionRegistryUnknownContribution(bytes32 contributionId);
    /// @notice The caller does not own the contribution.
    error ContributionRegistryNotOwner(bytes32 contributionId, address caller);
    /// @notice The contribution has already been withdrawn.
    error ContributionRegistryAlreadyWithdrawn(bytes32 contributionId);
    /// @notice Score above 10000.
    error ContributionRegistryInvalidScore(uint16 score);
    /// @notice The signed deadline has passed.
    error ContributionRegistryExpiredSignature(uint256 deadline);
    /// @notice The signature is not the owner's over this typed data (wrong signer, nonce, chain or contract).
    error ContributionRegistryInvalidSignature(address owner);
    /// @notice Zero content hash, zero owner, or an empty batch.
    error ContributionRegistryInvalidInput();
    /// @notice Arrays of different lengths.
    error ContributionRegistryLengthMismatch();
    /// @notice No live commitment with this value (never made, or already revealed).
    error ContributionRegistryUnknownCommitment(bytes32 commitment);
    /// @notice The commitment was made in this block (`committedAt`); reveal from the next block on.
    error ContributionRegistryCommitmentTooRecent(bytes32 commitment, uint256 committedAt);
    /// @notice The commitment (made at `committedAt`) is older than `MAX_COMMITMENT_AGE` blocks.
    error ContributionRegistryCommitmentExpired(bytes32 commitment, uint256 committedAt);

    /// @notice Record commitments (each `commitmentOf(owner, contentHash-or-batchDigest, salt)`) at this block;
    /// anyone may commit for anyone (a commitment only ever helps the owner it names). A live commitment keeps
    /// its earlier block; an expired one is renewed. No event: commitments are opaque until revealed.
    function commit(bytes32[] calldata commitments) external;

    /// @notice Register a dataset owned by the caller, revealing `commitmentOf(caller, contentHash, salt)`.
    function registerDataset(
        bytes32 contentHash,
        uint64 size,
        uint32 licenseId,
        bytes32 metadataHash,
        string calldata uri,
        bytes32 salt
    ) external;

    /// @notice Register a dataset for `owner`, who signed `RegisterDataset` typed data (anyone may relay it),
    /// revealing `commitmentOf(owner, dataset.contentHash, salt)` (the salt is the relayer's, not signed).
    function registerDatasetFor(
        DatasetInput calldata dataset,
        address owner,
        bytes32 salt,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Register many datasets owned by the caller, revealing
    /// `commitmentOf(caller, batchDigest(content hashes in order), salt)`.
    function registerDatasets(DatasetInput[] calldata datasets, bytes32 salt) external;

    /// @notice Register many datasets for `owner` with one `RegisterDatasets` signature over the whole batch,
    /// revealing `commitmentOf(owner, batchDigest(content hashes in order), salt)`.
    function registerDatasetsFor(
        DatasetInput[] calldata datasets,
        address owner,
        bytes32 salt,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Register a batch of datasets owned by the caller, sharing licence, metadata and location,
    /// revealing `commitmentOf(caller, batchDigest(batch.contentHashes), salt)`.
    function registerDatasetBatch(DatasetBatch calldata batch, bytes32 salt) external;

    /// @notice Register a batch of datasets for `owner`, who signed `RegisterDatasetBatch` typed data,
    /// revealing `commitmentOf(owner, batchDigest(batch.contentHashes), salt)`.
    function registerDatasetBatchFor(
        DatasetBatch calldata batch,
        address owner,
        bytes32 salt,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Register a compute contribution by the caller; returns its id `computeId(caller, jobId)`.
    /// A dataset squatting on that id is evicted (`DatasetEvicted`); an existing compute record reverts.
    function registerCompute(bytes32 jobId, uint64 workUnits, bytes32 modelId, bytes32 resultHash)
        external
        returns (bytes32 contributionId);

    /// @notice Register a compute contribution for `provider`, who signed `RegisterCompute` typed data.
    function registerComputeFor(
        ComputeInput calldata job,
        address provider,
        uint256 deadline,
        bytes calldata signature
    ) external returns (bytes32 contributionId);

    /// @notice Register many compute contributions by the caller.
    function registerComputes(ComputeInput[] calldata jobs) external;

    /// @notice Register many compute contributions for `provider` with one `RegisterComputes` signature.
    function registerComputesFor(
        ComputeInput[] calldata jobs,
        address provider,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Record the caller's score for a contribution (VALIDATOR_ROLE). Nothing is stored; see `Attested`.
    function attest(bytes32 contributionId, uint16 score) external;

    /// @notice Many attestations in one call (VALIDATOR_ROLE).
    function attestBatch(bytes32[] calldata contributionIds, uint16[] calldata scores) external;

    /// @notice Record `validator`'s score, relayed with the validator's EIP-712 `Attest` signature (its registry
    /// nonce and a deadline); the validator must hold VALIDATOR_ROLE. Emits the same `Attested` as `attest`.
    function attestFor(bytes32 contributionId, uint16 score, address validator, uint256 deadline, bytes calldata signature)
        external;

    /// @notice Many attestations by `validator` under one EIP-712 `AttestBatch` signature (one nonce).
    function attestBatchFor(
        bytes32[] calldata contributionIds,
        uint16[] calldata scores,
        address validator,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Withdraw the caller's contribution from future epochs (cannot be undone; the id stays taken).
    function withdraw(bytes32 contributionId) external;

    /// @notice Withdraw `owner`'s contribution, relayed with the owner's `Withdraw` signature (gasless owners).
    function withdrawFor(bytes32 contributionId, address owner, uint256 deadline, bytes calldata signature) external;

    /// @notice The stored record of a contribution (`kind == None` if unknown).
    function contributionOf(bytes32 contributionId) external view returns (Contribution memory);

    /// @notice Id of a compute contribution.
    function computeId(address provider, bytes32 jobId) external pure returns (bytes32);

    /// @notice `keccak256(abi.encode(owner, contentHashOrDigest, salt))`.
    function commitmentOf(address owner, bytes32 contentHashOrDigest, bytes32 salt) external pure returns (bytes32);

    /// @notice `keccak256(abi.encodePacked(contentHashes))`: what a batch's commitment hides.
    function batchDigest(bytes32[] calldata contentHashes) external pure returns (bytes32);

    /// @notice Block at which a live commitment was made (0: none, or already revealed).
    function commitmentBlock(bytes32 commitment) external view returns (uint256);

    /// @notice The next nonce `owner` must sign for a relayed call.
    function nonces(address owner) external view returns (uint256);
}
