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
/// @notice Datasets (one owner per content hash, ever) and compute jobs, validator attestations and withdrawals.
/// @dev One storage slot per contribution, packed by hand as
/// `owner (bits 0..159) | kind (160..167) | withdrawn (168..175) | registeredAt (176..239)`, so a registration is
/// one cold SLOAD (uniqueness) plus one SSTORE of a fresh slot; all other fields live in the events.
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

    uint16 private constant _MAX_SCORE = 10_000;
    uint256 private constant _KIND_SHIFT = 160;
    uint256 private constant _WITHDRAWN_BIT = 1 << 168;
    uint256 private constant _TIME_SHIFT = 176;
    uint256 private constant _DATASET = uint256(uint8(Kind.Dataset)) << _KIND_SHIFT;
    uint256 private constant _COMPUTE = uint256(uint8(Kind.Compute)) << _KIND_SHIFT;

    mapping(bytes32 contributionId => uint256 packed) private _records;

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
    function registerDataset(
        bytes32 contentHash,
        uint64 size,
        uint32 licenseId,
        bytes32 metadataHash,
        string calldata uri
    ) external whenNotPaused {
        _registerDataset(contentHash, size, licenseId, metadataHash, uri, _msgSender());
    }

    /// @inheritdoc IContributionRegistry
    function registerDatasetFor(DatasetInput calldata d, address owner, uint256 deadline, bytes calldata signature)
        external
        whenNotPaused
    {
        bytes32 structHash = keccak256(
            abi.encode(REGISTER_DATASET_TYPEHASH, owner, _hashDataset(d), _useNonce(owner), deadline)
        );
        _verify(owner, structHash, deadline, signature);
        _registerDataset(d.contentHash, d.size, d.licenseId, d.metadataHash, d.uri, owner);
    }

    /// @inheritdoc IContributionRegistry
    function registerDatasets(DatasetInput[] calldata datasets) external whenNotPaused {
        uint256 n = datasets.length;
        if (n == 0) revert ContributionRegistryInvalidInput();
        address owner = _msgSender();
        for (uint256 i; i < n;) {
            DatasetInput calldata d = datasets[i];
            _registerDataset(d.contentHash, d.size, d.licenseId, d.metadataHash, d.uri, owner);
            // i < n <= calldata length: cannot overflow.
            unchecked {
                ++i;
            }
        }
    }

    /// @inheritdoc IContributionRegistry
    function registerDatasetsFor(
        DatasetInput[] calldata datasets,
        address owner,
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
        for (uint256 i; i < n;) {
            DatasetInput calldata d = datasets[i];
            _registerDataset(d.contentHash, d.size, d.licenseId, d.metadataHash, d.uri, owner);
            // i < n <= calldata length: cannot overflow.
            unchecked {
                ++i;
            }
        }
    }

    /// @inheritdoc IContributionRegistry
    function registerDatasetBatch(DatasetBatch calldata batch) external whenNotPaused {
        _registerDatasetBatch(batch, _msgSender());
    }

    /// @inheritdoc IContributionRegistry
    function registerDatasetBatchFor(DatasetBatch calldata batch, address owner, uint256 deadline, bytes calldata signature)
        external
        whenNotPaused
    {
        bytes32 structHash = keccak256(
            abi.encode(REGISTER_DATASET_BATCH_TYPEHASH, owner, _hashDatasetBatch(batch), _useNonce(owner), deadline)
        );
        _verify(owner, structHash, deadline, signature);
        _registerDatasetBatch(batch, owner);
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
        c.registeredAt = uint64(rec >> _TIME_SHIFT);
    }

    /// @inheritdoc IContributionRegistry
    function computeId(address provider, bytes32 jobId) public pure returns (bytes32) {
        return keccak256(abi.encode(provider, jobId));
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

    function _registerDataset(
        bytes32 contentHash,
        uint64 size,
        uint32 licenseId,
        bytes32 metadataHash,
        string calldata uri,
        address owner
    ) private {
        if (contentHash == bytes32(0) || owner == address(0)) revert ContributionRegistryInvalidInput();
        if (_records[contentHash] != 0) revert ContributionRegistryAlreadyRegistered(contentHash);
        _records[contentHash] = uint256(uint160(owner)) | _DATASET | (block.timestamp << _TIME_SHIFT);
        emit DatasetRegistered(contentHash, owner, size, licenseId, metadataHash, uri);
    }

    /// @dev One fresh slot per content hash (the uniqueness check reads the same slot), one event per batch.
    function _registerDatasetBatch(DatasetBatch calldata batch, address owner) private {
        bytes32[] calldata hashes = batch.contentHashes;
        uint256 n = hashes.length;
        if (n == 0 || owner == address(0)) revert ContributionRegistryInvalidInput();
        if (batch.sizes.length != n) revert ContributionRegistryLengthMismatch();
        uint256 record = uint256(uint160(owner)) | _DATASET | (block.timestamp << _TIME_SHIFT);
        for (uint256 i; i < n;) {
            bytes32 contentHash = hashes[i];
            if (contentHash == bytes32(0)) revert ContributionRegistryInvalidInput();
            if (_records[contentHash] != 0) revert ContributionRegistryAlreadyRegistered(contentHash);
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
        if (_records[id] != 0) revert ContributionRegistryAlreadyRegistered(id);
        _records[id] = uint256(uint160(provider)) | _COMPUTE | (block.timestamp << _TIME_SHIFT);
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
