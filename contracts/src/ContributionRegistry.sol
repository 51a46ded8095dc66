// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {EpochClock} from "./EpochClock.sol";
import {IContributionRegistry} from "./interfaces/IContributionRegistry.sol";

/// @title ContributionRegistry
/// @notice Datasets (one owner per content hash: the earliest commitment) and compute jobs, validator
/// attestations and withdrawals.
/// @dev One storage slot per contribution, packed by hand as
/// `owner (bits 0..159) | kind (160..167) | withdrawn (168..175) | registeredAt (176..215) | commitBlock (216..255)`,
/// so a registration is one cold SLOAD (uniqueness) plus one SSTORE of a fresh slot; all other fields live in the
/// events. Dataset registrations are commit-reveal (see `commit`): a commitment hides the content hash, a reveal
/// needs a commitment at least one block old, and a reveal whose commitment is strictly older than the holder's
/// takes the dataset over (possible only while that older commitment is unexpired, so committedAt most
/// `MAX_COMMITMENT_AGE` blocks after the holder's commitment).
contract ContributionRegistry is IContributionRegistry, AccessControl, Pausable, Nonces, EIP712, EpochClock {
    /// @notice May attest scores.
    bytes32 public constant VALIDATOR_ROLE = keccak256("VALIDATOR_ROLE");
    /// @notice May pause and unpause registration.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    /// @notice EIP-712 type of one dataset.
    bytes32 public constant DATASET_TYPEHASH =
        keccak256("Dataset(bytes32 contentHash,uint64 size,uint32 licenseId,bytes32 metadataHash,string uri)");
    /// @notice EIP-712 type of a relayed single dataset registration.
    bytes32 public constant REGISTER_DATASET_TYPEHASH = keccak256(
        "RegisterDataset(address owner,Dataset dataset,uint256 nonce,uint256 deadline)"
        "Dataset(bytes32 contentHash,uint64 size,uint32 licenseId,bytes32 metadataHash,string uri)"
    );
    /// @notice EIP-712 type of a relayed batch of dataset registrations (one signature for the batch).
    bytes32 public constant REGISTER_DATASETS_TYPEHASH = keccak256(
        "RegisterDatasets(address owner,Dataset[] datasets,uint256 nonce,uint256 deadline)"
        "Dataset(bytes32 contentHash,uint64 size,uint32 licenseId,bytes32 metadataHash,string uri)"
    );
    /// @notice EIP-712 type of a batch sharing licence, metadata and location.
    bytes32 public constant DATASET_BATCH_TYPEHASH = keccak256(
        "DatasetBatch(bytes32[] contentHashes,uint64[] sizes,uint32 licenseId,bytes32 metadataHash,string uri)"
    );
    /// @notice EIP-712 type of a relayed `registerDatasetBatchFor`.
    bytes32 public constant REGISTER_DATASET_BATCH_TYPEHASH = keccak256(
        "RegisterDatasetBatch(address owner,DatasetBatch batch,uint256 nonce,uint256 deadline)"
        "DatasetBatch(bytes32[] contentHashes,uint64[] sizes,uint32 licenseId,bytes32 metadataHash,string uri)"
    );
    /// @notice EIP-712 type of one compute job.
    bytes32 public constant COMPUTE_TYPEHASH =
        keccak256("Compute(bytes32 jobId,uint64 workUnits,bytes32 modelId,bytes32 resultHash)");
    /// @notice EIP-712 type of a relayed compute registration.
    bytes32 public constant REGISTER_COMPUTE_TYPEHASH = keccak256(
        "RegisterCompute(address provider,Compute job,uint256 nonce,uint256 deadline)"
        "Compute(bytes32 jobId,uint64 workUnits,bytes32 modelId,bytes32 resultHash)"
    );

    /// @notice EIP-712 type of a relayed batch of compute registrations (one signature for the batch).
    bytes32 public constant REGISTER_COMPUTES_TYPEHASH = keccak256(
        "RegisterComputes(address provider,Compute[] jobs,uint256 nonce,uint256 deadline)"
        "Compute(bytes32 jobId,uint64 workUnits,bytes32 modelId,bytes32 resultHash)"
    );

    /// @notice EIP-712 type of a relayed withdrawal.
    bytes32 public constant WITHDRAW_TYPEHASH =
        keccak256("Withdraw(address owner,bytes32 contributionId,uint256 nonce,uint256 deadline)");

    /// @notice EIP-712 type of a relayed attestation (`attestFor`), signed by the validator.
    bytes32 public constant ATTEST_TYPEHASH = keccak256(
        "Attest(address validator,bytes32 contributionId,uint16 score,uint256 nonce,uint256 deadline)"
    );

    /// @notice EIP-712 type of a relayed batch of attestations (`attestBatchFor`, one signature for the batch).
    bytes32 public constant ATTEST_BATCH_TYPEHASH = keccak256(
        "AttestBatch(address validator,bytes32[] contributionIds,uint16[] scores,uint256 nonce,uint256 deadline)"
    );

    /// @notice Domain of compute contribution ids (`keccak256(abi.encode(COMPUTE_DOMAIN, provider, jobId))`).
    bytes32 public constant COMPUTE_DOMAIN = keccak256("Cairn.ComputeContribution");
    /// @notice Blocks after which an unrevealed commitment expires (and after which no older commitment can take
    /// over a dataset committed committedAt that block).
    uint256 public constant MAX_COMMITMENT_AGE = 7200;

    uint16 private constant _MAX_SCORE = 10_000;
    uint256 private constant _KIND_SHIFT = 160;
    uint256 private constant _WITHDRAWN_BIT = 1 << 168;
    uint256 private constant _TIME_SHIFT = 176;
    uint256 private constant _COMMIT_SHIFT = 216;
    uint256 private constant _MASK40 = (1 << 40) - 1;
    uint256 private constant _DATASET = uint256(uint8(Kind.Dataset)) << _KIND_SHIFT;
    uint256 private constant _COMPUTE = uint256(uint8(Kind.Compute)) << _KIND_SHIFT;

    mapping(bytes32 contributionId => uint256 packed) private _records;
    mapping(bytes32 commitment => uint256 blockNumber) private _commitments;

    /// @param admin Holder of DEFAULT_ADMIN_ROLE and PAUSER_ROLE.
    /// @param genesis_ Epoch clock genesis (unix seconds).
    /// @param epochLength_ Epoch clock length (seconds).
    constructor(address admin, uint64 genesis_, uint64 epochLength_)
        EIP712("Cairn ContributionRegistry", "1")
        EpochClock(genesis_, epochLength_)
    {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
    }

    // --- datasets -----------------------------------------------------------------------------------------

    /// @inheritdoc IContributionRegistry
    function commit(bytes32[] calldata commitments) external {
        uint256 n = commitments.length;
        if (n == 0) revert ContributionRegistryInvalidInput();
        for (uint256 i; i < n;) {
            bytes32 c = commitments[i];
            if (c == bytes32(0)) revert ContributionRegistryInvalidInput();
            uint256 committedAt = _commitments[c];
            // A copy of a pending commitment (it names its owner, so it can only help that owner) never moves an
            // earlier block forward; an expired one may be renewed.
            if (committedAt == 0 || block.number > committedAt + MAX_COMMITMENT_AGE) _commitments[c] = block.number;
            // i < n <= calldata length: cannot overflow.
            unchecked {
                ++i;
            }
        }
    }

    /// @inheritdoc IContributionRegistry
    function registerDataset(
        bytes32 contentHash,
        uint64 size,
        uint32 licenseId,
        bytes32 metadataHash,
        string calldata uri,
        bytes32 salt
    ) external whenNotPaused {
        address owner = _msgSender();
        uint256 committedAt = _useCommitment(commitmentOf(owner, contentHash, salt));
        _registerDataset(contentHash, size, licenseId, metadataHash, uri, owner, committedAt);
    }

    /// @inheritdoc IContributionRegistry
    function registerDatasetFor(
        DatasetInput calldata d,
        address owner,
        bytes32 salt,
        uint256 deadline,
        bytes calldata signature
    ) external whenNotPaused {
        bytes32 structHash = keccak256(
            abi.encode(REGISTER_DATASET_TYPEHASH, owner, _hashDataset(d), _useNonce(owner), deadline)
        );
        _verify(owner, structHash, deadline, signature);
        uint256 committedAt = _useCommitment(commitmentOf(owner, d.contentHash, salt));
        _registerDataset(d.contentHash, d.size, d.licenseId, d.metadataHash, d.uri, owner, committedAt);
    }

    /// @inheritdoc IContributionRegistry
    function registerDatasets(DatasetInput[] calldata datasets, bytes32 salt) external whenNotPaused {
        _registerDatasets(datasets, _msgSender(), salt);
    }

    /// @inheritdoc IContributionRegistry
    function registerDatasetsFor(
        DatasetInput[] calldata datasets,
        address owner,
        bytes32 salt,
        uint256 deadline,
        bytes calldata signature
    ) external whenNotPaused {
        uint256 n = datasets.length;
        if (n == 0) revert ContributionRegistryInvalidInput();
        bytes32[] memory hashes = new bytes32[](n);
        for (uint256 i; i < n;) {
            hashes[i] = _hashDataset(datasets[i]);
            // i < n <= calldata length: cannot overflow.
            unchecked {
                ++i;
            }
        }
        bytes32 structHash = keccak256(
            abi.encode(
                REGISTER_DATASETS_TYPEHASH, owner, keccak256(abi.encodePacked(hashes)), _useNonce(owner), deadline
            )
        );
        _verify(owner, structHash, deadline, signature);
        _registerDatasets(datasets, owner, salt);
    }

    /// @inheritdoc IContributionRegistry
    function registerDatasetBatch(DatasetBatch calldata batch, bytes32 salt) external whenNotPaused {
        _registerDatasetBatch(batch, _msgSender(), salt);
    }

    /// @inheritdoc IContributionRegistry
    function registerDatasetBatchFor(
        DatasetBatch calldata batch,
        address owner,
        bytes32 salt,
        uint256 deadline,
        bytes calldata signature
    ) external whenNotPaused {
        bytes32 structHash = keccak256(
            abi.encode(REGISTER_DATASET_BATCH_TYPEHASH, owner, _hashDatasetBatch(batch), _useNonce(owner), deadline)
        );
        _verify(owner, structHash, deadline, signature);
        _registerDatasetBatch(batch, owner, salt);
    }

    // --- compute ------------------------------------------------------------------------------------------

    /// @inheritdoc IContributionRegistry
    function registerCompute(bytes32 jobId, uint64 workUnits, bytes32 modelId, bytes32 resultHash)
        external
        whenNotPaused
        returns (bytes32)
    {
        return _registerCompute(jobId, workUnits, modelId, resultHash, _msgSender());
    }

    /// @inheritdoc IContributionRegistry
    function registerComputeFor(
        ComputeInput calldata job,
        address provider,
        uint256 deadline,
        bytes calldata signature
    ) external whenNotPaused returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(REGISTER_COMPUTE_TYPEHASH, provider, _hashCompute(job), _useNonce(provider), deadline)
        );
        _verify(provider, structHash, deadline, signature);
        return _registerCompute(job.jobId, job.workUnits, job.modelId, job.resultHash, provider);
    }

    /// @inheritdoc IContributionRegistry
    function registerComputes(ComputeInput[] calldata jobs) external whenNotPaused {
        uint256 n = jobs.length;
        if (n == 0) revert ContributionRegistryInvalidInput();
        address provider = _msgSender();
        for (uint256 i; i < n;) {
            ComputeInput calldata j = jobs[i];
            _registerCompute(j.jobId, j.workUnits, j.modelId, j.resultHash, provider);
            // i < n <= calldata length: cannot overflow.
            unchecked {
                ++i;
            }
        }
    }

    /// @inheritdoc IContributionRegistry
    function registerComputesFor(
        ComputeInput[] calldata jobs,
        address provider,
        uint256 deadline,
        bytes calldata signature
    ) external whenNotPaused {
        uint256 n = jobs.length;
        if (n == 0) revert ContributionRegistryInvalidInput();
        bytes32[] memory hashes = new bytes32[](n);
        for (uint256 i; i < n;) {
            hashes[i] = _hashCompute(jobs[i]);
            // i < n <= calldata length: cannot overflow.
            unchecked {
                ++i;
            }
        }
        bytes32 structHash = keccak256(
            abi.encode(
                REGISTER_COMPUTES_TYPEHASH, provider, keccak256(abi.encodePacked(hashes)), _useNonce(provider), deadline
            )
        );
        _verify(provider, structHash, deadline, signature);
        for (uint256 i; i < n;) {
            ComputeInput calldata j = jobs[i];
            _registerCompute(j.jobId, j.workUnits, j.modelId, j.resultHash, provider);
            // i < n <= calldata length: cannot overflow.
            unchecked {
                ++i;
            }
        }
    }

    // --- attestations and withdrawal ------------------------------------------------------------------------

    /// @inheritdoc IContributionRegistry
    function attest(bytes32 contributionId, uint16 score) external onlyRole(VALIDATOR_ROLE) {
        _attest(contributionId, score, _msgSender());
    }

    /// @inheritdoc IContributionRegistry
    function attestBatch(bytes32[] calldata contributionIds, uint16[] calldata scores)
        external
        onlyRole(VALIDATOR_ROLE)
    {
        uint256 n = contributionIds.length;
        if (n != scores.length) revert ContributionRegistryLengthMismatch();
        address validator = _msgSender();
        for (uint256 i; i < n;) {
            _attest(contributionIds[i], scores[i], validator);
            // i < n <= calldata length: cannot overflow.
            unchecked {
                ++i;
            }
        }
    }

    /// @inheritdoc IContributionRegistry
    function attestFor(bytes32 contributionId, uint16 score, address validator, uint256 deadline, bytes calldata signature)
        external
    {
        _checkRole(VALIDATOR_ROLE, validator);
        bytes32 structHash =
            keccak256(abi.encode(ATTEST_TYPEHASH, validator, contributionId, score, _useNonce(validator), deadline));
        _verify(validator, structHash, deadline, signature);
        _attest(contributionId, score, validator);
    }

    /// @inheritdoc IContributionRegistry
    function attestBatchFor(
        bytes32[] calldata contributionIds,
        uint16[] calldata scores,
        address validator,
        uint256 deadline,
        bytes calldata signature
    ) external {
        uint256 n = contributionIds.length;
        if (n == 0) revert ContributionRegistryInvalidInput();
        if (n != scores.length) revert ContributionRegistryLengthMismatch();
        _checkRole(VALIDATOR_ROLE, validator);
        // EIP-712 arrays of atomic values: keccak of their 32-byte words (abi.encodePacked pads array elements).
        bytes32 structHash = keccak256(
            abi.encode(
                ATTEST_BATCH_TYPEHASH,
                validator,
                keccak256(abi.encodePacked(contributionIds)),
                keccak256(abi.encodePacked(scores)),
                _useNonce(validator),
                deadline
            )
        );
        _verify(validator, structHash, deadline, signature);
        for (uint256 i; i < n;) {
            _attest(contributionIds[i], scores[i], validator);
            // i < n <= calldata length: cannot overflow.
            unchecked {
                ++i;
            }
        }
    }

    /// @inheritdoc IContributionRegistry
    function withdraw(bytes32 contributionId) external {
        _withdraw(contributionId, _msgSender());
    }

    /// @inheritdoc IContributionRegistry
    function withdrawFor(bytes32 contributionId, address owner, uint256 deadline, bytes calldata signature)
        external
    {
        bytes32 structHash =
            keccak256(abi.encode(WITHDRAW_TYPEHASH, owner, contributionId, _useNonce(owner), deadline));
        _verify(owner, structHash, deadline, signature);
        _withdraw(contributionId, owner);
    }

    /// @notice Stop registrations (PAUSER_ROLE). Attestations and withdrawals continue.
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @notice Resume registrations (PAUSER_ROLE).
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    // --- views --------------------------------------------------------------------------------------------

    /// @inheritdoc IContributionRegistry
    function contributionOf(bytes32 contributionId) external view returns (Contribution memory c) {
        uint256 rec = _records[contributionId];
        c.owner = address(uint160(rec));
        c.kind = Kind(uint8(rec >> _KIND_SHIFT));
        c.withdrawn = rec & _WITHDRAWN_BIT != 0;
        c.registeredAt = uint64((rec >> _TIME_SHIFT) & _MASK40);
        c.commitBlock = uint64(rec >> _COMMIT_SHIFT);
    }

    /// @inheritdoc IContributionRegistry
    function computeId(address provider, bytes32 jobId) public pure returns (bytes32) {
        return keccak256(abi.encode(COMPUTE_DOMAIN, provider, jobId));
    }

    /// @inheritdoc IContributionRegistry
    function commitmentOf(address owner, bytes32 contentHashOrDigest, bytes32 salt) public pure returns (bytes32 c) {
        assembly ("memory-safe") {
            // keccak256(abi.encode(owner, contentHashOrDigest, salt)) in scratch space plus the free-memory
            // pointer's slot, restored after (0x40 is the free-memory pointer).
            let fmp := mload(0x40)
            mstore(0x00, owner)
            mstore(0x20, contentHashOrDigest)
            mstore(0x40, salt)
            c := keccak256(0x00, 0x60)
            mstore(0x40, fmp)
        }
    }

    /// @inheritdoc IContributionRegistry
    function batchDigest(bytes32[] calldata contentHashes) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(contentHashes));
    }

    /// @inheritdoc IContributionRegistry
    function commitmentBlock(bytes32 commitment) external view returns (uint256) {
        return _commitments[commitment];
    }

    /// @inheritdoc IContributionRegistry
    function nonces(address owner) public view override(IContributionRegistry, Nonces) returns (uint256) {
        return super.nonces(owner);
    }

    /// @notice The EIP-712 domain separator of this chain.
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // --- internals ----------------------------------------------------------------------------------------

    /// @dev The block of an unexpired commitment at least one block old, which is cleared (gas refund).
    function _useCommitment(bytes32 commitment) private returns (uint256 committedAt) {
        committedAt = _commitments[commitment];
        if (committedAt == 0) revert ContributionRegistryUnknownCommitment(commitment);
        if (committedAt >= block.number) revert ContributionRegistryCommitmentTooRecent(commitment, committedAt);
        if (block.number > committedAt + MAX_COMMITMENT_AGE) revert ContributionRegistryCommitmentExpired(commitment, committedAt);
        delete _commitments[commitment];
    }

    /// @dev A fresh record for `owner` committed committedAt block `committedAt`.
    function _datasetRecord(address owner, uint256 committedAt) private view returns (uint256) {
        return uint256(uint160(owner)) | _DATASET | ((block.timestamp & _MASK40) << _TIME_SHIFT)
            | (committedAt << _COMMIT_SHIFT);
    }

    /// @dev Reverts unless `contentHash` is free or held by a dataset committed strictly after block `committedAt` (then
    /// emits `DatasetReclaimed`); a compute record is never taken.
    function _claimSlot(bytes32 contentHash, uint256 committedAt, address owner) private {
        if (contentHash == bytes32(0)) revert ContributionRegistryInvalidInput();
        uint256 rec = _records[contentHash];
        if (rec != 0) {
            if (rec & (0xff << _KIND_SHIFT) != _DATASET || committedAt >= rec >> _COMMIT_SHIFT) {
                revert ContributionRegistryAlreadyRegistered(contentHash);
            }
            emit DatasetReclaimed(contentHash, address(uint160(rec)), owner, rec >> _COMMIT_SHIFT, committedAt);
        }
    }

    function _registerDataset(
        bytes32 contentHash,
        uint64 size,
        uint32 licenseId,
        bytes32 metadataHash,
        string calldata uri,
        address owner,
        uint256 committedAt
    ) private {
        if (owner == address(0)) revert ContributionRegistryInvalidInput();
        _claimSlot(contentHash, committedAt, owner);
        _records[contentHash] = _datasetRecord(owner, committedAt);
        emit DatasetRegistered(contentHash, owner, size, licenseId, metadataHash, uri);
    }

    /// @dev `registerDatasets[For]`: one commitment over `batchDigest` of the items' content hashes.
    function _registerDatasets(DatasetInput[] calldata datasets, address owner, bytes32 salt) private {
        uint256 n = datasets.length;
        if (n == 0 || owner == address(0)) revert ContributionRegistryInvalidInput();
        bytes32[] memory contentHashes = new bytes32[](n);
        for (uint256 i; i < n;) {
            contentHashes[i] = datasets[i].contentHash;
            // i < n <= calldata length: cannot overflow.
            unchecked {
                ++i;
            }
        }
        uint256 committedAt = _useCommitment(commitmentOf(owner, keccak256(abi.encodePacked(contentHashes)), salt));
        for (uint256 i; i < n;) {
            DatasetInput calldata d = datasets[i];
            _registerDataset(d.contentHash, d.size, d.licenseId, d.metadataHash, d.uri, owner, committedAt);
            // i < n <= calldata length: cannot overflow.
            unchecked {
                ++i;
            }
        }
    }

    /// @dev One commitment for the batch, one fresh slot per content hash (the uniqueness check reads the same
    /// slot), one event per batch.
    function _registerDatasetBatch(DatasetBatch calldata batch, address owner, bytes32 salt) private {
        bytes32[] calldata hashes = batch.contentHashes;
        uint256 n = hashes.length;
        if (n == 0 || owner == address(0)) revert ContributionRegistryInvalidInput();
        if (batch.sizes.length != n) revert ContributionRegistryLengthMismatch();
        uint256 committedAt = _useCommitment(commitmentOf(owner, batchDigest(hashes), salt));
        uint256 record = _datasetRecord(owner, committedAt);
        for (uint256 i; i < n;) {
            bytes32 contentHash = hashes[i];
            _claimSlot(contentHash, committedAt, owner);
            _records[contentHash] = record;
            // i < n <= calldata length: cannot overflow.
            unchecked {
                ++i;
            }
        }
        emit DatasetBatchRegistered(owner, batch.licenseId, batch.metadataHash, batch.uri, hashes, batch.sizes);
    }

    function _registerCompute(bytes32 jobId, uint64 workUnits, bytes32 modelId, bytes32 resultHash, address provider)
        private
        returns (bytes32 id)
    {
        if (provider == address(0)) revert ContributionRegistryInvalidInput();
        id = computeId(provider, jobId);
        uint256 rec = _records[id];
        if (rec != 0) {
            // A dataset whose "content hash" is a compute id is not real content (that would need a preimage of
            // this domain-separated keccak): it never blocks the job; it is evicted.
            if (rec & (0xff << _KIND_SHIFT) != _DATASET) revert ContributionRegistryAlreadyRegistered(id);
            emit DatasetEvicted(id, address(uint160(rec)));
        }
        _records[id] = uint256(uint160(provider)) | _COMPUTE | ((block.timestamp & _MASK40) << _TIME_SHIFT);
        emit ComputeRegistered(id, provider, modelId, jobId, workUnits, resultHash);
    }

    function _withdraw(bytes32 contributionId, address caller) private {
        uint256 rec = _records[contributionId];
        if (rec == 0) revert ContributionRegistryUnknownContribution(contributionId);
        address owner = address(uint160(rec));
        if (owner != caller) revert ContributionRegistryNotOwner(contributionId, caller);
        if (rec & _WITHDRAWN_BIT != 0) revert ContributionRegistryAlreadyWithdrawn(contributionId);
        _records[contributionId] = rec | _WITHDRAWN_BIT;
        emit ContributionWithdrawn(contributionId, owner);
    }

    function _attest(bytes32 contributionId, uint16 score, address validator) private {
        if (score > _MAX_SCORE) revert ContributionRegistryInvalidScore(score);
        uint256 rec = _records[contributionId];
        if (rec == 0) revert ContributionRegistryUnknownContribution(contributionId);
        if (rec & _WITHDRAWN_BIT != 0) revert ContributionRegistryAlreadyWithdrawn(contributionId);
        emit Attested(contributionId, validator, score);
    }

    function _hashDataset(DatasetInput calldata d) private pure returns (bytes32) {
        return keccak256(
            abi.encode(DATASET_TYPEHASH, d.contentHash, d.size, d.licenseId, d.metadataHash, keccak256(bytes(d.uri)))
        );
    }

    /// @dev EIP-712 `hashStruct(DatasetBatch)`: arrays of atomic values hash as the keccak of their 32-byte
    /// words (abi.encodePacked pads array elements to 32 bytes), the string as its keccak.
    function _hashDatasetBatch(DatasetBatch calldata b) private pure returns (bytes32) {
        return keccak256(
            abi.encode(
                DATASET_BATCH_TYPEHASH,
                keccak256(abi.encodePacked(b.contentHashes)),
                keccak256(abi.encodePacked(b.sizes)),
                b.licenseId,
                b.metadataHash,
                keccak256(bytes(b.uri))
            )
        );
    }

    function _hashCompute(ComputeInput calldata j) private pure returns (bytes32) {
        return keccak256(abi.encode(COMPUTE_TYPEHASH, j.jobId, j.workUnits, j.modelId, j.resultHash));
    }

    /// @dev Deadline, then ECDSA (low-s) for EOAs or EIP-1271 for contracts, over this chain's domain.
    function _verify(address signer, bytes32 structHash, uint256 deadline, bytes calldata signature) private view {
        if (block.timestamp > deadline) revert ContributionRegistryExpiredSignature(deadline);
        if (signer == address(0)) revert ContributionRegistryInvalidInput();
        if (!SignatureChecker.isValidSignatureNowCalldata(signer, _hashTypedDataV4(structHash), signature)) {
            revert ContributionRegistryInvalidSignature(signer);
        }
    }
}
