// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ContributionRegistry} from "../src/ContributionRegistry.sol";
import {IContributionRegistry} from "../src/interfaces/IContributionRegistry.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Wallet1271} from "./handlers/Wallet1271.sol";
import {RegistryFixture} from "./ContributionRegistry.t.sol";

/// @notice Relayed attestations (`attestFor`, `attestBatchFor`) and their replay matrix: every replay is rejected.
contract ContributionRegistryAttestForTest is RegistryFixture {
    event Attested(bytes32 indexed contributionId, address indexed validator, uint16 score);

    address internal val;
    uint256 internal valKey;
    bytes32 internal id;
    bytes32 internal id2;
    uint256 internal deadline;

    function setUp() public override {
        super.setUp();
        (val, valKey) = makeAddrAndKey("signing-validator");
        bytes32 role = reg.VALIDATOR_ROLE();
        vm.prank(admin);
        reg.grantRole(role, val);
        id = keccak256("attest-me");
        id2 = keccak256("attest-me-too");
        _register(id);
        _register(id2);
        deadline = block.timestamp + 1 hours;
    }

    function _register(bytes32 h) internal {
        IContributionRegistry.DatasetInput memory d = _ds(h);
        _commitOne(alice, h);
        vm.prank(alice);
        reg.registerDataset(d.contentHash, d.size, d.licenseId, d.metadataHash, d.uri, SALT);
    }

    function _signAttest(ContributionRegistry r, uint256 key, address v, bytes32 c, uint16 score, uint256 nonce, uint256 dl)
        internal
        view
        returns (bytes memory)
    {
        bytes32 sh = keccak256(abi.encode(r.ATTEST_TYPEHASH(), v, c, score, nonce, dl));
        (uint8 vv, bytes32 rr, bytes32 s) = vm.sign(key, _digest(r, sh));
        return abi.encodePacked(rr, s, vv);
    }

    function _signAttestBatch(uint256 key, address v, bytes32[] memory ids, uint16[] memory scores, uint256 nonce)
        internal
        view
        returns (bytes memory)
    {
        bytes32 sh = keccak256(
            abi.encode(
                reg.ATTEST_BATCH_TYPEHASH(),
                v,
                keccak256(abi.encodePacked(ids)),
                keccak256(abi.encodePacked(scores)),
                nonce,
                deadline
            )
        );
        (uint8 vv, bytes32 rr, bytes32 s) = vm.sign(key, _digest(reg, sh));
        return abi.encodePacked(rr, s, vv);
    }

    function _pair() internal view returns (bytes32[] memory ids, uint16[] memory scores) {
        ids = new bytes32[](2);
        ids[0] = id;
        ids[1] = id2;
        scores = new uint16[](2);
        scores[0] = 8000;
        scores[1] = 300;
    }

    function _expectInvalid(address signer) internal {
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidSignature.selector, signer));
    }

    function test_typehashes_matchTheirTypeStrings() public view {
        assertEq(
            reg.ATTEST_TYPEHASH(),
            keccak256("Attest(address validator,bytes32 contributionId,uint16 score,uint256 nonce,uint256 deadline)")
        );
        assertEq(
            reg.ATTEST_BATCH_TYPEHASH(),
            keccak256(
                "AttestBatch(address validator,bytes32[] contributionIds,uint16[] scores,uint256 nonce,uint256 deadline)"
            )
        );
    }

    function test_attestFor_relayedBySignature_emitsAttestedForTheValidator() public {
        bytes memory sig = _signAttest(reg, valKey, val, id, 7000, 0, deadline);
        vm.expectEmit(true, true, false, true, address(reg));
        emit Attested(id, val, 7000);
        vm.prank(relayer);
        reg.attestFor(id, 7000, val, deadline, sig);
        assertEq(reg.nonces(val), 1);
    }

    function test_attestBatchFor_relayedBySignature_emitsOnePerItem() public {
        (bytes32[] memory ids, uint16[] memory scores) = _pair();
        bytes memory sig = _signAttestBatch(valKey, val, ids, scores, 0);
        vm.expectEmit(true, true, false, true, address(reg));
        emit Attested(id, val, 8000);
        vm.expectEmit(true, true, false, true, address(reg));
        emit Attested(id2, val, 300);
        vm.prank(relayer);
        reg.attestBatchFor(ids, scores, val, deadline, sig);
        assertEq(reg.nonces(val), 1);
    }

    function test_attestFor_acceptsEip1271Validator() public {
        Wallet1271 wallet = new Wallet1271(val);
        bytes32 role = reg.VALIDATOR_ROLE();
        vm.prank(admin);
        reg.grantRole(role, address(wallet));
        bytes memory sig = _signAttest(reg, valKey, address(wallet), id, 1, 0, deadline);
        vm.expectEmit(true, true, false, true, address(reg));
        emit Attested(id, address(wallet), 1);
        reg.attestFor(id, 1, address(wallet), deadline, sig);
    }

    function test_attestFor_revertsWhen_notValidator() public {
        bytes memory sig = _signAttest(reg, aliceKey, alice, id, 5, 0, deadline);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, alice, reg.VALIDATOR_ROLE())
        );
        reg.attestFor(id, 5, alice, deadline, sig);
    }

    function test_attestBatchFor_revertsWhen_notValidator() public {
        (bytes32[] memory ids, uint16[] memory scores) = _pair();
        bytes memory sig = _signAttestBatch(aliceKey, alice, ids, scores, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, alice, reg.VALIDATOR_ROLE())
        );
        reg.attestBatchFor(ids, scores, alice, deadline, sig);
    }

    function test_attestBatchFor_revertsWhen_lengthMismatchOrEmpty() public {
        (bytes32[] memory ids,) = _pair();
        uint16[] memory one = new uint16[](1);
        vm.expectRevert(IContributionRegistry.ContributionRegistryLengthMismatch.selector);
        reg.attestBatchFor(ids, one, val, deadline, "");
        vm.expectRevert(IContributionRegistry.ContributionRegistryInvalidInput.selector);
        reg.attestBatchFor(new bytes32[](0), new uint16[](0), val, deadline, "");
    }

    function test_attestFor_revertsWhen_scoreTooHighOrUnknown() public {
        bytes memory sig = _signAttest(reg, valKey, val, id, 10_001, 0, deadline);
        vm.expectRevert(abi.encodeWithSelector(IContributionRegistry.ContributionRegistryInvalidScore.selector, 10_001));
        reg.attestFor(id, 10_001, val, deadline, sig);
        bytes32 unknown = keccak256("nobody");
        sig = _signAttest(reg, valKey, val, unknown, 1, 0, deadline);
        vm.expectRevert(
            abi.encodeWithSelector(IContributionRegistry.ContributionRegistryUnknownContribution.selector, unknown)
        );
        reg.attestFor(unknown, 1, val, deadline, sig);
    }

    // --- replay matrix ----------------------------------------------------------------------------------------

    function test_attestFor_revertsWhen_reusedNonce() public {
        bytes memory sig = _signAttest(reg, valKey, val, id, 10, 0, deadline);
        reg.attestFor(id, 10, val, deadline, sig);
        // the identical call again: nonce 0 is spent
        _expectInvalid(val);
        reg.attestFor(id, 10, val, deadline, sig);
        // nonce 0 over another contribution
        bytes memory sig2 = _signAttest(reg, valKey, val, id2, 10, 0, deadline);
        _expectInvalid(val);
        reg.attestFor(id2, 10, val, deadline, sig2);
    }

    function test_attestBatchFor_revertsWhen_reusedNonce() public {
        (bytes32[] memory ids, uint16[] memory scores) = _pair();
        bytes memory sig = _signAttestBatch(valKey, val, ids, scores, 0);
        reg.attestBatchFor(ids, scores, val, deadline, sig);
        _expectInvalid(val);
        reg.attestBatchFor(ids, scores, val, deadline, sig);
    }

    function test_attestFor_revertsWhen_otherChainId() public {
        bytes memory sig = _signAttest(reg, valKey, val, id, 10, 0, deadline);
        vm.chainId(block.chainid + 1);
        _expectInvalid(val);
        reg.attestFor(id, 10, val, deadline, sig);
        assertEq(reg.DOMAIN_SEPARATOR(), _domain(address(reg), block.chainid));
    }

    function test_attestFor_revertsWhen_otherContract() public {
        ContributionRegistry other = new ContributionRegistry(admin, GENESIS, LENGTH);
        bytes memory sig = _signAttest(other, valKey, val, id, 10, 0, deadline);
        _expectInvalid(val);
        reg.attestFor(id, 10, val, deadline, sig);
    }

    function test_attestFor_revertsWhen_expiredDeadline() public {
        bytes memory sig = _signAttest(reg, valKey, val, id, 10, 0, deadline);
        vm.warp(deadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IContributionRegistry.ContributionRegistryExpiredSignature.selector, deadline)
        );
        reg.attestFor(id, 10, val, deadline, sig);
    }

    function test_attestFor_revertsWhen_highS() public {
        bytes32 sh = keccak256(abi.encode(reg.ATTEST_TYPEHASH(), val, id, uint16(10), 0, deadline));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(valKey, _digest(reg, sh));
        bytes32 highS = bytes32(N - uint256(s));
        uint8 flippedV = v == 27 ? 28 : 27;
        assertEq(ecrecover(_digest(reg, sh), flippedV, r, highS), val);
        _expectInvalid(val);
        reg.attestFor(id, 10, val, deadline, abi.encodePacked(r, highS, flippedV));
    }

    function test_attestFor_revertsWhen_wrongSigner() public {
        // validator (the fixture's) holds the role too, but its key does not speak for `val`
        bytes memory sig = _signAttest(reg, bobKey, val, id, 10, 0, deadline);
        _expectInvalid(val);
        reg.attestFor(id, 10, val, deadline, sig);
    }

    function test_attestFor_revertsWhen_tamperedScore() public {
        bytes memory sig = _signAttest(reg, valKey, val, id, 10, 0, deadline);
        _expectInvalid(val);
        reg.attestFor(id, 11, val, deadline, sig);
    }

    function test_attestBatchFor_revertsWhen_tamperedItem() public {
        (bytes32[] memory ids, uint16[] memory scores) = _pair();
        bytes memory sig = _signAttestBatch(valKey, val, ids, scores, 0);
        scores[1] += 1;
        _expectInvalid(val);
        reg.attestBatchFor(ids, scores, val, deadline, sig);
        scores[1] -= 1;
        (ids[0], ids[1]) = (ids[1], ids[0]); // same items, other order: another message
        _expectInvalid(val);
        reg.attestBatchFor(ids, scores, val, deadline, sig);
    }

    function test_attestFor_revertsWhen_deadlineChanged() public {
        bytes memory sig = _signAttest(reg, valKey, val, id, 10, 0, deadline);
        _expectInvalid(val);
        reg.attestFor(id, 10, val, deadline + 1, sig);
    }

    function test_attestFor_revertsWhen_singleSignatureUsedForBatch() public {
        // an `Attest` signature is not an `AttestBatch` one over the same single item (distinct typehashes)
        bytes memory sig = _signAttest(reg, valKey, val, id, 10, 0, deadline);
        bytes32[] memory ids = new bytes32[](1);
        ids[0] = id;
        uint16[] memory scores = new uint16[](1);
        scores[0] = 10;
        _expectInvalid(val);
        reg.attestBatchFor(ids, scores, val, deadline, sig);
    }

    function testFuzz_attestFor_onlyTheSignedScoreIsAccepted(uint16 signed, uint16 sent) public {
        signed = uint16(bound(signed, 0, 10_000));
        sent = uint16(bound(sent, 0, 10_000));
        bytes memory sig = _signAttest(reg, valKey, val, id, signed, 0, deadline);
        if (signed != sent) _expectInvalid(val);
        reg.attestFor(id, sent, val, deadline, sig);
    }
}
