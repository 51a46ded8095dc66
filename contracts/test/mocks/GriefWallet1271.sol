// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @notice Test-only hostile EIP-1271 wallet, for the relayer's gas-griefing tests (tests/integration/
/// test_relay_attacks.py). Its owner key signs, as with Wallet1271, but:
/// - mode 0 ("flip"): the signature is valid only where the gas price is zero (an eth_call or a gas estimate
///   without fees), so it passes every simulation and reverts on chain, after the registry used the nonce;
/// - mode 1 ("burn"): valid, but the check burns about 400k gas first;
/// - mode 2 ("burn when called by a contract"): valid; burns about 400k gas only when called through another
///   contract (the registry, in a gas estimate and on chain), not in a direct eth_call of the relayer's check.
contract GriefWallet1271 {
    address public immutable OWNER;
    uint8 public immutable MODE;

    constructor(address owner, uint8 mode) {
        OWNER = owner;
        MODE = mode;
    }

    function isValidSignature(bytes32 digest, bytes calldata signature) external view returns (bytes4) {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        bool ok = err == ECDSA.RecoverError.NoError && signer == OWNER;
        if (MODE == 0 && tx.gasprice != 0) ok = false;
        if (MODE == 1 || (MODE == 2 && msg.sender != tx.origin)) {
            uint256 start = gasleft();
            uint256 stop = start > 400_000 ? start - 400_000 : 0;
            while (gasleft() > stop) {}
        }
        return ok ? bytes4(0x1626ba7e) : bytes4(0xffffffff);
    }
}
