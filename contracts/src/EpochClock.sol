// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title EpochClock
/// @notice One clock shared by every Cairn contract: epoch `e` covers `[genesis + e*length, genesis + (e+1)*length)`
/// in unix seconds. `genesis` and `length` are immutable and passed identically to every contract's constructor.
/// @dev Inherit it (`contract X is EpochClock`) and call `EpochClock(genesis_, length_)` in the constructor.
/// Before genesis `currentEpoch()` is 0 and `hasStarted(0)` is false, so "epoch 0 has started" and
/// "it is epoch 0" are different questions: ask `hasStarted` when it matters.
abstract contract EpochClock {
    /// @notice The epoch length is zero.
    error EpochClockZeroLength();

    uint64 private immutable _GENESIS;
    uint64 private immutable _LENGTH;

    constructor(uint64 genesis_, uint64 length_) {
        if (length_ == 0) revert EpochClockZeroLength();
        _GENESIS = genesis_;
        _LENGTH = length_;
    }

    /// @notice Unix time (seconds) at which epoch 0 starts.
    function genesis() public view returns (uint64) {
        return _GENESIS;
    }

    /// @notice Epoch length in seconds.
    function epochLength() public view returns (uint64) {
        return _LENGTH;
    }

    /// @notice The epoch containing `block.timestamp` (0 before genesis).
    function currentEpoch() public view returns (uint64) {
        return _epochAt(block.timestamp);
    }

    /// @notice Unix time at which epoch `e` starts (inclusive).
    function epochStart(uint64 e) public view returns (uint256) {
        return uint256(_GENESIS) + uint256(e) * _LENGTH;
    }

    /// @notice Unix time at which epoch `e` ends (exclusive): the next epoch's start.
    function epochEnd(uint64 e) public view returns (uint256) {
        return uint256(_GENESIS) + (uint256(e) + 1) * _LENGTH;
    }

    /// @notice Whether epoch `e` has started (`block.timestamp >= epochStart(e)`).
    function hasStarted(uint64 e) public view returns (bool) {
        return block.timestamp >= epochStart(e);
    }

    /// @notice Whether epoch `e` is over (`block.timestamp >= epochEnd(e)`).
    function hasEnded(uint64 e) public view returns (bool) {
        return block.timestamp >= epochEnd(e);
    }

    function _epochAt(uint256 timestamp) internal view returns (uint64) {
        if (timestamp < _GENESIS) return 0;
        // Cannot overflow uint64 for any timestamp below 2^64 seconds with length >= 1.
        return uint64((timestamp - _GENESIS) / _LENGTH);
    }
}
