// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

// Deploys contracts from creation code given by the caller (for example a
// StandardToken's bytecode followed by its ABI-encoded constructor arguments),
// covering the trace cases of docs/rpc-semantics.md rules 17 and 18:
// CREATE and CREATE2 children, a CREATE under a call that reverts, and a
// child that self-destructs in the transaction that created it.
//
// detect: TokenFactory none

contract TokenFactory {
    /// One per contract this factory created (and kept).
    event Deployed(address indexed token, bool viaCreate2);
    /// Outcome of createInFailedSubcall's inner call (always false).
    event SubcallResult(bool ok);

    function deployCreate(bytes memory initcode) public returns (address token) {
        assembly {
            token := create(0, add(initcode, 0x20), mload(initcode))
        }
        require(token != address(0), "create failed");
        emit Deployed(token, false);
    }

    function deployCreate2(bytes memory initcode, bytes32 salt) public returns (address token) {
        assembly {
            token := create2(0, add(initcode, 0x20), mload(initcode), salt)
        }
        require(token != address(0), "create2 failed");
        emit Deployed(token, true);
    }

    /// A CREATE child and a CREATE2 child in one transaction.
    function deployBoth(bytes memory initcode, bytes32 salt) external returns (address a, address b) {
        a = deployCreate(initcode);
        b = deployCreate2(initcode, salt);
    }

    /// Creates a contract, then reverts: sent as a transaction, the whole
    /// transaction fails (status 0) and its successful-looking create trace
    /// must not count as a contract.
    function createThenRevert(bytes memory initcode) public {
        deployCreate(initcode);
        revert("reverted after create");
    }

    /// The transaction succeeds, but the create happens inside an inner call
    /// that reverts: the create trace has no error of its own, only its
    /// parent has (trace status 0 through the ancestor rule).
    ///
    /// The inner call must have reverted with createThenRevert's own reason,
    /// i.e. after a successful create. Without this check a node's gas
    /// estimate would be just enough for the outer call, and the inner create
    /// would run out of gas (a create trace with an error of its own).
    function createInFailedSubcall(bytes memory initcode) external returns (bool ok) {
        bytes memory reason;
        (ok, reason) = address(this).call(abi.encodeCall(this.createThenRevert, (initcode)));
        require(
            !ok && keccak256(reason) == keccak256(abi.encodeWithSignature("Error(string)", "reverted after create")),
            "the inner create did not succeed"
        );
        emit SubcallResult(ok);
    }

    /// Creates a contract and calls its kill() in the same transaction, so
    /// even after Cancun (EIP-6780) its code is gone once the transaction ends;
    /// only the create trace's result.code still shows it.
    function deployAndDestroy(bytes memory initcode) external returns (address token) {
        token = deployCreate(initcode);
        (bool ok, ) = token.call(abi.encodeWithSignature("kill()"));
        require(ok, "kill failed");
    }

    /// The address deployCreate2 would give for this code and salt.
    function create2Address(bytes memory initcode, bytes32 salt) external view returns (address) {
        bytes32 h = keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, keccak256(initcode)));
        return address(uint160(uint256(h)));
    }
}
