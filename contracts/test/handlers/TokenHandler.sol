// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Vm} from "../utils/Vm.sol";
import {RewardToken} from "../../src/RewardToken.sol";

/// @notice Invariant handler for the emission schedule: is the token's DISTRIBUTOR (its only minter) and tries to mint random amounts for
/// random epochs (started or not) while time moves forward; also moves tokens around.
contract TokenHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    RewardToken public immutable TOKEN;
    uint64 public constant MAX_EPOCH = 64;

    uint256 public mints;
    uint64[] public touched;

    constructor(RewardToken token) {
        TOKEN = token;
    }

    function mint(uint256 epochSeed, uint256 amount, address to) external {
        uint64 epoch = uint64(epochSeed % MAX_EPOCH);
        if (to == address(0)) to = address(1);
        // Ask for anything from dust to far more than any cap.
        amount = amount % (TOKEN.initialEpochCap() * 2 + 1);
        try TOKEN.mintEmission(epoch, to, amount) {
            mints++;
            touched.push(epoch);
        } catch {}
    }

    function mintRest(uint256 epochSeed) external {
        uint64 epoch = uint64(epochSeed % MAX_EPOCH);
        uint256 left = TOKEN.emissionCap(epoch) - TOKEN.mintedInEpoch(epoch);
        try TOKEN.mintEmission(epoch, address(this), left) {
            mints++;
            touched.push(epoch);
        } catch {}
        // One more wei must always fail.
        try TOKEN.mintEmission(epoch, address(this), 1) {
            mints++;
            touched.push(epoch);
        } catch {}
    }

    function transfer(address to, uint256 amount) external {
        if (to == address(0)) return;
        uint256 bal = TOKEN.balanceOf(address(this));
        if (bal == 0) return;
        TOKEN.transfer(to, amount % (bal + 1));
    }

    function warp(uint256 dt) external {
        vm.warp(block.timestamp + (dt % (3 * TOKEN.epochLength())));
    }

    function touchedCount() external view returns (uint256) {
        return touched.length;
    }
}
