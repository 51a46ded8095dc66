// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {RewardToken} from "../src/RewardToken.sol";
import {IRewardToken} from "../src/interfaces/IRewardToken.sol";
import {EpochClock} from "../src/EpochClock.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC3009} from "@openzeppelin/contracts/token/ERC20/extensions/draft-ERC3009.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC3009, IERC3009Cancel} from "@openzeppelin/contracts/interfaces/draft-IERC3009.sol";
import {Wallet1271} from "./handlers/Wallet1271.sol";
import {TokenHandler} from "./handlers/TokenHandler.sol";

abstract contract TokenFixture is Test {
    uint256 internal constant N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    uint64 internal constant GENESIS = 1_000_000;
    uint64 internal constant LENGTH = 3600;
    uint256 internal constant CAP0 = 1000e18;
    uint16 internal constant DECAY = 100; // 1% per epoch

    // Typehashes exactly as written in EIP-3009 and EIP-2612.
    bytes32 internal constant TRANSFER_TYPEHASH = keccak256(
        "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    bytes32 internal constant RECEIVE_TYPEHASH = keccak256(
        "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    bytes32 internal constant CANCEL_TYPEHASH = keccak256("CancelAuthorization(address authorizer,bytes32 nonce)");
    bytes32 internal constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    RewardToken internal token;
    address internal admin = makeAddr("admin");
    address internal distributor = makeAddr("distributor");
    /// @dev The only minter is the distributor.
    address internal minter = distributor;
    address internal alice;
    uint256 internal aliceKey;
    address internal bob;
    uint256 internal bobKey;

    function setUp() public virtual {
        vm.warp(GENESIS);
        (alice, aliceKey) = makeAddrAndKey("alice");
        (bob, bobKey) = makeAddrAndKey("bob");
        token = _deploy();
        _fund(token, alice, 100e18);
    }

    function _deploy() internal returns (RewardToken t) {
        t = new RewardToken("Cairn", "CAIRN", admin, GENESIS, LENGTH, CAP0, DECAY, distributor);
    }

    function _fund(RewardToken t, address to, uint256 amount) internal {
        vm.prank(minter);
        t.mintEmission(0, to, amount);
    }

    function _domain(address verifying, uint256 chainId) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("Cairn"),
                keccak256("1"),
                chainId,
                verifying
            )
        );
    }

    function _signAuth(
        RewardToken t,
        uint256 key,
        bytes32 typehash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce
    ) internal view returns (uint8 v, bytes32 r, bytes32 s) {
        bytes32 sh = keccak256(abi.encode(typehash, from, to, value, validAfter, validBefore, nonce));
        return vm.sign(key, keccak256(abi.encodePacked("\x19\x01", t.DOMAIN_SEPARATOR(), sh)));
    }

    function _signPermit(RewardToken t, uint256 key, address owner, address spender, uint256 value, uint256 nonce, uint256 deadline)
        internal
        view
        returns (uint8 v, bytes32 r, bytes32 s)
    {
        bytes32 sh = keccak256(abi.encode(PERMIT_TYPEHASH, owner, spender, value, nonce, deadline));
        return vm.sign(key, keccak256(abi.encodePacked("\x19\x01", t.DOMAIN_SEPARATOR(), sh)));
    }
}

contract RewardTokenTest is TokenFixture {
    // --- the claim ledger (payClaim / claimedOf on the packed account word) ---

    function test_constructor_revertsWhen_zeroDistributor() public {
        vm.expectRevert(IRewardToken.RewardTokenZeroDistributor.selector);
        new RewardToken("Cairn", "CAIRN", admin, GENESIS, LENGTH, CAP0, DECAY, address(0));
    }

    function test_payClaim_paysTheDifferenceAndRecordsCumulative() public {
        _fund(token, distributor, 50e18);
        vm.expectEmit(true, true, false, true, address(token));
        emit IERC20.Transfer(distributor, bob, 7e18);
        vm.prank(distributor);
        assertEq(token.payClaim(bob, 7e18), 0);
        assertEq(token.balanceOf(bob), 7e18);
        assertEq(token.claimedOf(bob), 7e18);
        vm.prank(distributor);
        assertEq(token.payClaim(bob, 10e18), 7e18);
        assertEq(token.balanceOf(bob), 10e18);
        assertEq(token.claimedOf(bob), 10e18);
        assertEq(token.balanceOf(distributor), 40e18);
        assertEq(token.totalSupply(), 150e18); // alice's 100 + the distributor's 50
    }

    function test_payClaim_changesNothingWhen_nothingOwed() public {
        _fund(token, distributor, 50e18);
        vm.prank(distributor);
        token.payClaim(bob, 7e18);
        vm.prank(distributor);
        assertEq(token.payClaim(bob, 7e18), 7e18);
        vm.prank(distributor);
        assertEq(token.payClaim(bob, 1e18), 7e18);
        assertEq(token.balanceOf(bob), 7e18);
        assertEq(token.claimedOf(bob), 7e18);
        assertEq(token.balanceOf(distributor), 43e18);
    }

    function test_payClaim_revertsWhen_notDistributor() public {
        _fund(token, distributor, 50e18);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IRewardToken.RewardTokenNotDistributor.selector, alice));
        token.payClaim(alice, 1e18);
    }

    function test_payClaim_revertsWhen_accountIsZeroOrTheDistributor() public {
        _fund(token, distributor, 50e18);
        vm.startPrank(distributor);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InvalidReceiver.selector, address(0)));
        token.payClaim(address(0), 1e18);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InvalidReceiver.selector, distributor));
        token.payClaim(distributor, 1e18);
        vm.stopPrank();
    }

    function test_payClaim_revertsWhen_distributorBalanceTooLow() public {
        _fund(token, distributor, 5e18);
        vm.prank(distributor);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, distributor, 5e18, 6e18)
        );
        token.payClaim(bob, 6e18);
    }

    function test_payClaim_revertsWhen_cumulativeAtLeast2pow128() public {
        _fund(token, distributor, 5e18);
        uint256 huge = uint256(type(uint128).max) + 1;
        vm.prank(distributor);
        vm.expectRevert(abi.encodeWithSelector(IRewardToken.RewardTokenClaimTooLarge.selector, huge));
        token.payClaim(bob, huge);
    }

    function test_mint_revertsWhen_supplyWouldReach2pow128() public {
        RewardToken t = new RewardToken("Cairn", "CAIRN", admin, GENESIS, LENGTH, type(uint128).max, 0, distributor);
        vm.startPrank(minter);
        t.mintEmission(0, bob, type(uint128).max);
        vm.warp(GENESIS + LENGTH);
        vm.expectRevert(
            abi.encodeWithSelector(IRewardToken.RewardTokenSupplyOverflow.selector, uint256(type(uint128).max) + 1)
        );
        t.mintEmission(1, bob, 1);
        vm.stopPrank();
    }

    /// Balances and claimed totals share one word per account: neither field ever leaks into the other, whatever
    /// the order of transfers and claims.
    function testFuzz_payClaimAndTransfers_keepFieldsApart(uint256 c1, uint256 c2, uint256 t1, uint256 t2) public {
        _fund(token, distributor, 800e18);
        uint256 cum1 = bound(c1, 1, 400e18);
        uint256 cum2 = cum1 + bound(c2, 0, 400e18);
        vm.prank(distributor);
        token.payClaim(bob, cum1);
        vm.prank(bob);
        token.transfer(alice, bound(t1, 0, cum1));
        vm.prank(distributor);
        token.payClaim(bob, cum2);
        uint256 aliceBalance = token.balanceOf(alice);
        vm.prank(alice);
        token.transfer(bob, bound(t2, 0, aliceBalance));
        assertEq(token.claimedOf(bob), cum2);
        assertEq(token.claimedOf(alice), 0);
        assertEq(token.balanceOf(distributor), 800e18 - cum2);
        assertEq(token.balanceOf(bob) + token.balanceOf(alice) + token.balanceOf(distributor), token.totalSupply());
        assertEq(token.totalSupply(), 900e18);
    }

    // --- emission ---

    function test_emissionCap_decaysPerEpoch() public view {
        assertEq(token.emissionCap(0), CAP0);
        assertEq(token.emissionCap(1), (CAP0 * 9900) / 10000);
        assertEq(token.emissionCap(2), (CAP0 * 9801) / 10000);
        assertEq(token.initialEpochCap(), CAP0);
        assertEq(token.decayBps(), DECAY);
        // far future: decayed to (almost) nothing, and never reverts
        assertLe(token.emissionCap(10_000), 1);
        assertEq(token.emissionCap(type(uint64).max), 0);
    }

    function test_emissionCap_fullDecayOnlyEpochZero() public {
        RewardToken t = new RewardToken("Cairn", "CAIRN", admin, GENESIS, LENGTH, CAP0, 10_000, distributor);
        assertEq(t.emissionCap(0), CAP0);
        assertEq(t.emissionCap(1), 0);
    }

    function test_mintEmission_mintsAndEmits() public {
        vm.warp(GENESIS + 3 * LENGTH);
        vm.expectEmit(true, true, false, true, address(token));
        emit IRewardToken.EmissionMinted(3, bob, 5e18);
        vm.prank(minter);
        token.mintEmission(3, bob, 5e18);
        assertEq(token.balanceOf(bob), 5e18);
        assertEq(token.mintedInEpoch(3), 5e18);
    }

    /// Finding 5: an epoch's unminted cap expires with the epoch, even for the distributor.
    function test_mintEmission_revertsWhen_epochEnded() public {
        vm.warp(GENESIS + 3 * LENGTH);
        uint256 cap1 = token.emissionCap(1);
        vm.prank(minter);
        vm.expectRevert(abi.encodeWithSelector(IRewardToken.RewardTokenEpochEnded.selector, 1));
        token.mintEmission(1, bob, cap1);
        assertEq(token.mintedInEpoch(1), 0);
    }

    /// Finding 5: the admin cannot make itself a minter: no role mints, only the immutable distributor.
    function test_mintEmission_revertsWhen_adminGrantsItselfARole() public {
        bytes32 anyRole = keccak256("MINTER_ROLE");
        vm.startPrank(admin);
        token.grantRole(anyRole, admin);
        vm.expectRevert(abi.encodeWithSelector(IRewardToken.RewardTokenNotDistributor.selector, admin));
        token.mintEmission(0, admin, 1);
        vm.stopPrank();
    }

    function test_constructor_revertsWhen_decayAbove10000() public {
        vm.expectRevert(IRewardToken.RewardTokenInvalidSchedule.selector);
        new RewardToken("Cairn", "CAIRN", admin, GENESIS, LENGTH, CAP0, 10_001, distributor);
    }

    function test_constructor_revertsWhen_capAbove2pow128() public {
        vm.expectRevert(IRewardToken.RewardTokenInvalidSchedule.selector);
        new RewardToken("Cairn", "CAIRN", admin, GENESIS, LENGTH, uint256(type(uint128).max) + 1, 0, distributor);
    }

    function test_constructor_revertsWhen_zeroEpochLength() public {
        vm.expectRevert(EpochClock.EpochClockZeroLength.selector);
        new RewardToken("Cairn", "CAIRN", admin, GENESIS, 0, CAP0, 0, distributor);
    }

    function test_mintEmission_revertsWhen_notDistributor() public {
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRewardToken.RewardTokenNotDistributor.selector, admin));
        token.mintEmission(0, admin, 1);
    }

    function test_mintEmission_revertsWhen_epochNotStarted() public {
        vm.prank(minter);
        vm.expectRevert(abi.encodeWithSelector(IRewardToken.RewardTokenEpochNotStarted.selector, 1));
        token.mintEmission(1, bob, 1);
        vm.warp(GENESIS - 1);
        vm.prank(minter);
        vm.expectRevert(abi.encodeWithSelector(IRewardToken.RewardTokenEpochNotStarted.selector, 0));
        token.mintEmission(0, bob, 1);
    }

    function test_mintEmission_revertsWhen_capExceeded() public {
        uint256 left = CAP0 - 100e18;
        vm.prank(minter);
        vm.expectRevert(abi.encodeWithSelector(IRewardToken.RewardTokenEmissionCapExceeded.selector, 0, left + 1, left));
        token.mintEmission(0, bob, left + 1);
        vm.prank(minter);
        token.mintEmission(0, bob, left);
        vm.prank(minter);
        vm.expectRevert(abi.encodeWithSelector(IRewardToken.RewardTokenEmissionCapExceeded.selector, 0, 1, 0));
        token.mintEmission(0, bob, 1);
    }

    function test_mintEmission_revertsWhen_zeroRecipient() public {
        vm.prank(minter);
        vm.expectRevert(IRewardToken.RewardTokenInvalidMint.selector);
        token.mintEmission(0, address(0), 1);
    }

    function test_mintEmission_revertsWhen_zeroAmount() public {
        vm.prank(minter);
        vm.expectRevert(IRewardToken.RewardTokenInvalidMint.selector);
        token.mintEmission(0, bob, 0);
    }

    function testFuzz_mintEmission_neverExceedsCap(uint64 epochSeed, uint256 a, uint256 b) public {
        uint64 epoch = uint64(bound(epochSeed, 0, 2000));
        vm.warp(GENESIS + uint256(epoch) * LENGTH);
        uint256 cap = token.emissionCap(epoch);
        uint256 already = token.mintedInEpoch(epoch);
        a = bound(a, 1, CAP0 * 2);
        b = bound(b, 1, CAP0 * 2);
        vm.startPrank(minter);
        try token.mintEmission(epoch, bob, a) {} catch {}
        try token.mintEmission(epoch, bob, b) {} catch {}
        vm.stopPrank();
        assertLe(token.mintedInEpoch(epoch), cap);
        assertEq(token.mintedInEpoch(epoch) - already, token.balanceOf(bob));
    }

    function testFuzz_emissionCap_nonIncreasing(uint64 e) public view {
        vm.assume(e < type(uint64).max);
        assertLe(token.emissionCap(e + 1), token.emissionCap(e));
    }

    function testFuzz_emissionCap_boundedByExactSchedule(uint8 e) public view {
        // The ray computation rounds down, so it never exceeds the exact CAP0 * 0.99^e.
        uint256 exact = CAP0;
        for (uint256 i; i < e; i++) {
            exact = (exact * 9900) / 10000;
        }
        // Iterative floor and ray floor differ by rounding only: within e wei + ray error.
        assertLe(token.emissionCap(e), CAP0);
        assertLe(token.emissionCap(e) > exact ? token.emissionCap(e) - exact : exact - token.emissionCap(e), uint256(e) + 1e3);
    }

    // --- EIP-3009 happy paths ---

    function test_transferWithAuthorization_vrs() public {
        bytes32 nonce = keccak256("n1");
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(token, aliceKey, TRANSFER_TYPEHASH, alice, bob, 1e18, 0, block.timestamp + 60, nonce);
        vm.expectEmit(true, true, false, false, address(token));
        emit IERC3009.AuthorizationUsed(alice, nonce);
        token.transferWithAuthorization(alice, bob, 1e18, 0, block.timestamp + 60, nonce, v, r, s);
        assertEq(token.balanceOf(bob), 1e18);
        assertTrue(token.authorizationState(alice, nonce));
    }

    function test_transferWithAuthorization_bytesSignature() public {
        bytes32 nonce = keccak256("n2");
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(token, aliceKey, TRANSFER_TYPEHASH, alice, bob, 2e18, 0, block.timestamp + 60, nonce);
        token.transferWithAuthorization(alice, bob, 2e18, 0, block.timestamp + 60, nonce, abi.encodePacked(r, s, v));
        assertEq(token.balanceOf(bob), 2e18);
    }

    function test_transferWithAuthorization_eip1271Wallet() public {
        Wallet1271 wallet = new Wallet1271(alice);
        _fund(token, address(wallet), 5e18);
        bytes32 nonce = keccak256("n3");
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(token, aliceKey, TRANSFER_TYPEHASH, address(wallet), bob, 5e18, 0, block.timestamp + 60, nonce);
        token.transferWithAuthorization(address(wallet), bob, 5e18, 0, block.timestamp + 60, nonce, abi.encodePacked(r, s, v));
        assertEq(token.balanceOf(bob), 5e18);
        // v, r, s form works for contract wallets too
        _fund(token, address(wallet), 1e18);
        bytes32 nonce2 = keccak256("n4");
        (v, r, s) = _signAuth(token, aliceKey, TRANSFER_TYPEHASH, address(wallet), bob, 1e18, 0, block.timestamp + 60, nonce2);
        token.transferWithAuthorization(address(wallet), bob, 1e18, 0, block.timestamp + 60, nonce2, v, r, s);
        assertEq(token.balanceOf(bob), 6e18);
    }

    function test_receiveWithAuthorization_byPayee() public {
        bytes32 nonce = keccak256("r1");
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(token, aliceKey, RECEIVE_TYPEHASH, alice, bob, 1e18, 0, block.timestamp + 60, nonce);
        vm.prank(bob);
        token.receiveWithAuthorization(alice, bob, 1e18, 0, block.timestamp + 60, nonce, v, r, s);
        bytes32 nonce2 = keccak256("r2");
        (v, r, s) = _signAuth(token, aliceKey, RECEIVE_TYPEHASH, alice, bob, 1e18, 0, block.timestamp + 60, nonce2);
        vm.prank(bob);
        token.receiveWithAuthorization(alice, bob, 1e18, 0, block.timestamp + 60, nonce2, abi.encodePacked(r, s, v));
        assertEq(token.balanceOf(bob), 2e18);
    }

    function test_cancelAuthorization_blocksLaterUse() public {
        bytes32 nonce = keccak256("c1");
        bytes32 digest = keccak256(
            abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), keccak256(abi.encode(CANCEL_TYPEHASH, alice, nonce)))
        );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(aliceKey, digest);
        vm.expectEmit(true, true, false, false, address(token));
        emit IERC3009Cancel.AuthorizationCanceled(alice, nonce);
        token.cancelAuthorization(alice, nonce, v, r, s);
        (v, r, s) = _signAuth(token, aliceKey, TRANSFER_TYPEHASH, alice, bob, 1, 0, block.timestamp + 60, nonce);
        vm.expectRevert(abi.encodeWithSelector(ERC3009.ERC3009UsedAuthorization.selector, alice, nonce));
        token.transferWithAuthorization(alice, bob, 1, 0, block.timestamp + 60, nonce, v, r, s);
        // bytes overload
        bytes32 nonce2 = keccak256("c2");
        digest = keccak256(
            abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), keccak256(abi.encode(CANCEL_TYPEHASH, alice, nonce2)))
        );
        (v, r, s) = vm.sign(aliceKey, digest);
        token.cancelAuthorization(alice, nonce2, abi.encodePacked(r, s, v));
        assertTrue(token.authorizationState(alice, nonce2));
    }

    function test_cancelAuthorization_revertsWhen_wrongSigner() public {
        bytes32 nonce = keccak256("c3");
        bytes32 digest = keccak256(
            abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), keccak256(abi.encode(CANCEL_TYPEHASH, alice, nonce)))
        );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(bobKey, digest);
        vm.expectRevert(ERC3009.ERC3009InvalidSignature.selector);
        token.cancelAuthorization(alice, nonce, v, r, s);
        vm.expectRevert(ERC3009.ERC3009InvalidSignature.selector);
        token.cancelAuthorization(alice, nonce, abi.encodePacked(r, s, v));
    }

    function test_cancelAuthorization_revertsWhen_alreadyUsed() public {
        bytes32 nonce = keccak256("c4");
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(token, aliceKey, TRANSFER_TYPEHASH, alice, bob, 1, 0, block.timestamp + 60, nonce);
        token.transferWithAuthorization(alice, bob, 1, 0, block.timestamp + 60, nonce, v, r, s);
        bytes32 digest = keccak256(
            abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), keccak256(abi.encode(CANCEL_TYPEHASH, alice, nonce)))
        );
        (v, r, s) = vm.sign(aliceKey, digest);
        vm.expectRevert(abi.encodeWithSelector(ERC3009.ERC3009UsedAuthorization.selector, alice, nonce));
        token.cancelAuthorization(alice, nonce, v, r, s);
    }

    function test_receiveWithAuthorization_revertsWhen_callerNotPayee() public {
        bytes32 nonce = keccak256("r3");
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(token, aliceKey, RECEIVE_TYPEHASH, alice, bob, 1, 0, block.timestamp + 60, nonce);
        // a front-runner who copies the authorization from the mempool cannot submit it
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InvalidReceiver.selector, bob));
        token.receiveWithAuthorization(alice, bob, 1, 0, block.timestamp + 60, nonce, v, r, s);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InvalidReceiver.selector, bob));
        token.receiveWithAuthorization(alice, bob, 1, 0, block.timestamp + 60, nonce, abi.encodePacked(r, s, v));
    }

    function test_receiveWithAuthorization_revertsWhen_transferTypehashUsed() public {
        bytes32 nonce = keccak256("r4");
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(token, aliceKey, TRANSFER_TYPEHASH, alice, bob, 1, 0, block.timestamp + 60, nonce);
        vm.prank(bob);
        vm.expectRevert(ERC3009.ERC3009InvalidSignature.selector);
        token.receiveWithAuthorization(alice, bob, 1, 0, block.timestamp + 60, nonce, v, r, s);
    }

    function test_transferWithAuthorization_revertsWhen_notYetValid() public {
        bytes32 nonce = keccak256("t1");
        uint256 validAfter = block.timestamp;
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(token, aliceKey, TRANSFER_TYPEHASH, alice, bob, 1, validAfter, validAfter + 60, nonce);
        vm.expectRevert(
            abi.encodeWithSelector(ERC3009.ERC3009InvalidAuthorizationTime.selector, validAfter, validAfter + 60)
        );
        token.transferWithAuthorization(alice, bob, 1, validAfter, validAfter + 60, nonce, v, r, s);
    }

    function test_transferWithAuthorization_revertsWhen_insufficientBalance() public {
        bytes32 nonce = keccak256("t2");
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(token, aliceKey, TRANSFER_TYPEHASH, alice, bob, 101e18, 0, block.timestamp + 60, nonce);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, alice, 100e18, 101e18)
        );
        token.transferWithAuthorization(alice, bob, 101e18, 0, block.timestamp + 60, nonce, v, r, s);
    }

    function test_permit_setsAllowance() public {
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(token, aliceKey, alice, bob, 7, 0, block.timestamp);
        token.permit(alice, bob, 7, block.timestamp, v, r, s);
        assertEq(token.allowance(alice, bob), 7);
        assertEq(token.nonces(alice), 1);
    }

    function testFuzz_transferWithAuthorization_onlyOnce(bytes32 nonce, uint256 value, uint256 window) public {
        value = bound(value, 0, 100e18);
        uint256 validBefore = block.timestamp + bound(window, 1, 365 days);
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(token, aliceKey, TRANSFER_TYPEHASH, alice, bob, value, 0, validBefore, nonce);
        token.transferWithAuthorization(alice, bob, value, 0, validBefore, nonce, v, r, s);
        assertEq(token.balanceOf(bob), value);
        vm.expectRevert(abi.encodeWithSelector(ERC3009.ERC3009UsedAuthorization.selector, alice, nonce));
        token.transferWithAuthorization(alice, bob, value, 0, validBefore, nonce, v, r, s);
    }
}

/// @notice Replay matrix for EIP-3009 and permit: every case must be rejected.
contract RewardTokenReplayTest is TokenFixture {
    bytes32 internal constant NONCE = keccak256("replay");
    uint256 internal validBefore;

    function setUp() public override {
        super.setUp();
        validBefore = block.timestamp + 1 hours;
    }

    // EIP-3009

    function test_transferWithAuthorization_revertsWhen_reusedNonce() public {
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(token, aliceKey, TRANSFER_TYPEHASH, alice, bob, 1, 0, validBefore, NONCE);
        token.transferWithAuthorization(alice, bob, 1, 0, validBefore, NONCE, v, r, s);
        vm.expectRevert(abi.encodeWithSelector(ERC3009.ERC3009UsedAuthorization.selector, alice, NONCE));
        token.transferWithAuthorization(alice, bob, 1, 0, validBefore, NONCE, v, r, s);
        // a different authorization with the same nonce is also spent
        (v, r, s) = _signAuth(token, aliceKey, TRANSFER_TYPEHASH, alice, bob, 2, 0, validBefore, NONCE);
        vm.expectRevert(abi.encodeWithSelector(ERC3009.ERC3009UsedAuthorization.selector, alice, NONCE));
        token.transferWithAuthorization(alice, bob, 2, 0, validBefore, NONCE, abi.encodePacked(r, s, v));
    }

    function test_transferWithAuthorization_revertsWhen_otherChainId() public {
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(token, aliceKey, TRANSFER_TYPEHASH, alice, bob, 1, 0, validBefore, NONCE);
        vm.chainId(block.chainid + 1);
        vm.expectRevert(ERC3009.ERC3009InvalidSignature.selector);
        token.transferWithAuthorization(alice, bob, 1, 0, validBefore, NONCE, v, r, s);
        assertEq(token.DOMAIN_SEPARATOR(), _domain(address(token), block.chainid));
    }

    function test_transferWithAuthorization_revertsWhen_otherContract() public {
        RewardToken other = _deploy();
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(other, aliceKey, TRANSFER_TYPEHASH, alice, bob, 1, 0, validBefore, NONCE);
        vm.expectRevert(ERC3009.ERC3009InvalidSignature.selector);
        token.transferWithAuthorization(alice, bob, 1, 0, validBefore, NONCE, v, r, s);
    }

    function test_transferWithAuthorization_revertsWhen_expired() public {
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(token, aliceKey, TRANSFER_TYPEHASH, alice, bob, 1, 0, validBefore, NONCE);
        vm.warp(validBefore);
        vm.expectRevert(abi.encodeWithSelector(ERC3009.ERC3009InvalidAuthorizationTime.selector, 0, validBefore));
        token.transferWithAuthorization(alice, bob, 1, 0, validBefore, NONCE, v, r, s);
    }

    function test_transferWithAuthorization_revertsWhen_highS() public {
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(token, aliceKey, TRANSFER_TYPEHASH, alice, bob, 1, 0, validBefore, NONCE);
        bytes32 highS = bytes32(N - uint256(s));
        uint8 flipped = v == 27 ? 28 : 27;
        vm.expectRevert(ERC3009.ERC3009InvalidSignature.selector);
        token.transferWithAuthorization(alice, bob, 1, 0, validBefore, NONCE, flipped, r, highS);
        vm.expectRevert(ERC3009.ERC3009InvalidSignature.selector);
        token.transferWithAuthorization(alice, bob, 1, 0, validBefore, NONCE, abi.encodePacked(r, highS, flipped));
    }

    function test_transferWithAuthorization_revertsWhen_wrongSigner() public {
        (uint8 v, bytes32 r, bytes32 s) =
            _signAuth(token, bobKey, TRANSFER_TYPEHASH, alice, bob, 1, 0, validBefore, NONCE);
        vm.expectRevert(ERC3009.ERC3009InvalidSignature.selector);
        token.transferWithAuthorization(alice, bob, 1, 0, validBefore, NONCE, v, r, s);
        vm.expectRevert(ERC3009.ERC3009InvalidSignature.selector);
        token.transferWithAuthorization(alice, bob, 1, 0, validBefore, NONCE, abi.encodePacked(r, s, v));
    }

    function test_receiveWithAuthorization_revertsWhen_reusedNonce() public {
        (uint8 v, bytes32 r, bytes32 s) = _signAuth(token, aliceKey, RECEIVE_TYPEHASH, alice, bob, 1, 0, validBefore, NONCE);
        vm.startPrank(bob);
        token.receiveWithAuthorization(alice, bob, 1, 0, validBefore, NONCE, v, r, s);
        vm.expectRevert(abi.encodeWithSelector(ERC3009.ERC3009UsedAuthorization.selector, alice, NONCE));
        token.receiveWithAuthorization(alice, bob, 1, 0, validBefore, NONCE, v, r, s);
        vm.stopPrank();
    }

    function test_receiveWithAuthorization_revertsWhen_otherChainId() public {
        (uint8 v, bytes32 r, bytes32 s) = _signAuth(token, aliceKey, RECEIVE_TYPEHASH, alice, bob, 1, 0, validBefore, NONCE);
        vm.chainId(block.chainid + 1);
        vm.prank(bob);
        vm.expectRevert(ERC3009.ERC3009InvalidSignature.selector);
        token.receiveWithAuthorization(alice, bob, 1, 0, validBefore, NONCE, v, r, s);
    }

    function test_receiveWithAuthorization_revertsWhen_expired() public {
        (uint8 v, bytes32 r, bytes32 s) = _signAuth(token, aliceKey, RECEIVE_TYPEHASH, alice, bob, 1, 0, validBefore, NONCE);
        vm.warp(validBefore + 1);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(ERC3009.ERC3009InvalidAuthorizationTime.selector, 0, validBefore));
        token.receiveWithAuthorization(alice, bob, 1, 0, validBefore, NONCE, v, r, s);
    }

    function test_receiveWithAuthorization_revertsWhen_highS() public {
        (uint8 v, bytes32 r, bytes32 s) = _signAuth(token, aliceKey, RECEIVE_TYPEHASH, alice, bob, 1, 0, validBefore, NONCE);
        vm.prank(bob);
        vm.expectRevert(ERC3009.ERC3009InvalidSignature.selector);
        token.receiveWithAuthorization(alice, bob, 1, 0, validBefore, NONCE, v == 27 ? 28 : 27, r, bytes32(N - uint256(s)));
    }

    function test_receiveWithAuthorization_revertsWhen_otherContract() public {
        RewardToken other = _deploy();
        (uint8 v, bytes32 r, bytes32 s) = _signAuth(other, aliceKey, RECEIVE_TYPEHASH, alice, bob, 1, 0, validBefore, NONCE);
        vm.prank(bob);
        vm.expectRevert(ERC3009.ERC3009InvalidSignature.selector);
        token.receiveWithAuthorization(alice, bob, 1, 0, validBefore, NONCE, v, r, s);
    }

    function test_receiveWithAuthorization_revertsWhen_wrongSigner() public {
        (uint8 v, bytes32 r, bytes32 s) = _signAuth(token, bobKey, RECEIVE_TYPEHASH, alice, bob, 1, 0, validBefore, NONCE);
        vm.prank(bob);
        vm.expectRevert(ERC3009.ERC3009InvalidSignature.selector);
        token.receiveWithAuthorization(alice, bob, 1, 0, validBefore, NONCE, v, r, s);
    }

    // permit

    function test_permit_revertsWhen_reusedNonce() public {
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(token, aliceKey, alice, bob, 7, 0, validBefore);
        token.permit(alice, bob, 7, validBefore, v, r, s);
        vm.expectRevert(); // nonce moved on: recovers another address
        token.permit(alice, bob, 7, validBefore, v, r, s);
    }

    function test_permit_revertsWhen_otherChainId() public {
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(token, aliceKey, alice, bob, 7, 0, validBefore);
        vm.chainId(block.chainid + 1);
        vm.expectRevert();
        token.permit(alice, bob, 7, validBefore, v, r, s);
        assertEq(token.allowance(alice, bob), 0);
    }

    function test_permit_revertsWhen_otherContract() public {
        RewardToken other = _deploy();
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(other, aliceKey, alice, bob, 7, 0, validBefore);
        vm.expectRevert();
        token.permit(alice, bob, 7, validBefore, v, r, s);
        assertEq(token.allowance(alice, bob), 0);
    }

    function test_permit_revertsWhen_expired() public {
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(token, aliceKey, alice, bob, 7, 0, validBefore);
        vm.warp(validBefore + 1);
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612ExpiredSignature.selector, validBefore));
        token.permit(alice, bob, 7, validBefore, v, r, s);
    }

    function test_permit_revertsWhen_highS() public {
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(token, aliceKey, alice, bob, 7, 0, validBefore);
        bytes32 highS = bytes32(N - uint256(s));
        vm.expectRevert(abi.encodeWithSelector(ECDSA.ECDSAInvalidSignatureS.selector, highS));
        token.permit(alice, bob, 7, validBefore, v == 27 ? 28 : 27, r, highS);
    }

    function test_permit_revertsWhen_wrongSigner() public {
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(token, bobKey, alice, bob, 7, 0, validBefore);
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612InvalidSigner.selector, bob, alice));
        token.permit(alice, bob, 7, validBefore, v, r, s);
    }
}

/// @notice Invariant: token supply never exceeds the schedule (sum of the caps of started epochs).
contract RewardTokenInvariantTest is Test {
    RewardToken internal token;
    TokenHandler internal handler;
    uint64 internal constant GENESIS = 1_000_000;

    function setUp() public {
        vm.warp(GENESIS);
        // The handler is the token's distributor (its only minter).
        token = new RewardToken("Cairn", "CAIRN", address(this), GENESIS, 3600, 1000e18, 500, predictCreate(1));
        handler = new TokenHandler(token);
        assertEq(token.DISTRIBUTOR(), address(handler));
        targetContract(address(handler));
    }

    function invariant_supplyNeverExceedsSchedule() public view {
        uint256 sum;
        for (uint64 e; e < handler.MAX_EPOCH() && token.hasStarted(e); e++) {
            uint256 minted = token.mintedInEpoch(e);
            assertLe(minted, token.emissionCap(e), "epoch over its cap");
            sum += token.emissionCap(e);
        }
        assertLe(token.totalSupply(), sum, "supply above the schedule");
    }
}
