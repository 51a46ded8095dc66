// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";

/// @notice Checks that the cheatcodes the suite relies on behave as expected under Hardhat's EDR.
contract TestBaseTest is Test {
    error Boom(uint256 x);

    function _boom(uint256 x) external pure {
        revert Boom(x);
    }

    function test_cheatcodes_warpPrankSignExpectRevert() public {
        vm.warp(1000);
        assertEq(block.timestamp, 1000);
        (address alice, uint256 key) = makeAddrAndKey("alice");
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, keccak256("m"));
        assertEq(ecrecover(keccak256("m"), v, r, s), alice);
        vm.expectRevert(abi.encodeWithSelector(Boom.selector, 7));
        this._boom(7);
    }

    function testFuzz_bound_staysInRange(uint256 x, uint256 lo, uint256 hi) public pure {
        vm.assume(lo <= hi);
        uint256 y = bound(x, lo, hi);
        assertGe(y, lo);
        assertLe(y, hi);
    }
}
