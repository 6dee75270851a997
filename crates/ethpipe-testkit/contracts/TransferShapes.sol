// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

// Emits logs whose topic0 is the ERC-20/721 Transfer topic in every shape of
// docs/rpc-semantics.md rule 9 (topics + data words must be exactly 4 parts).
//
// detect: TransferShapes none

contract TransferShapes {
    bytes32 public constant TRANSFER_TOPIC =
        0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef;

    /// Same signature as ERC-20's Transfer, nothing indexed: 1 topic + 3 words
    /// (the CryptoKitties shape).
    event Transfer(address from, address to, uint256 value);

    function emitNonIndexed(address from, address to, uint256 value) external {
        emit Transfer(from, to, value);
    }

    /// Emits one raw log: log0 .. log4 after the number of topics (at most 4).
    function emitLog(bytes32[] calldata topics, bytes calldata data) external {
        _log(topics, data);
    }

    /// Emits, in this order (log indexes n .. n+9 of the transaction),
    /// with f = from, t = to, v = value as 32-byte words:
    ///  0. 3 topics + 1 word  [T, f, t] v                  -> row (standard ERC-20)
    ///  1. 4 topics + 0 words [T, f, t, v]                 -> row (standard ERC-721)
    ///  2. 2 topics + 2 words [T, f] t v                   -> row
    ///  3. 1 topic  + 3 words [T] f t v                    -> row
    ///  4. 3 topics + 0 words [T, f, t]                    -> skipped
    ///  5. 3 topics + 2 words [T, f, t] v v                -> skipped
    ///  6. 4 topics + 1 word  [T, f, t, v] v               -> skipped
    ///  7. 2 topics + 1 word  [T, f] t                     -> skipped
    ///  8. 3 topics + 40 bytes [T, f, t] v ++ 0102030405060708 -> skipped (2 words)
    ///  9. 3 topics + 20 bytes [T, f, t] (the low 20 bytes of v) -> row, value = v mod 2^160
    function emitAllShapes(address from, address to, uint256 value) external {
        bytes32 f = bytes32(uint256(uint160(from)));
        bytes32 t = bytes32(uint256(uint160(to)));
        bytes32 v = bytes32(value);
        bytes32 T = TRANSFER_TOPIC;

        _log(_topics3(T, f, t), abi.encodePacked(v));
        _log(_topics4(T, f, t, v), "");
        _log(_topics2(T, f), abi.encodePacked(t, v));
        _log(_topics1(T), abi.encodePacked(f, t, v));
        _log(_topics3(T, f, t), "");
        _log(_topics3(T, f, t), abi.encodePacked(v, v));
        _log(_topics4(T, f, t, v), abi.encodePacked(v));
        _log(_topics2(T, f), abi.encodePacked(t));
        _log(_topics3(T, f, t), abi.encodePacked(v, bytes8(0x0102030405060708)));
        _log(_topics3(T, f, t), abi.encodePacked(uint160(value)));
    }

    function _log(bytes32[] memory topics, bytes memory data) internal {
        uint256 n = topics.length;
        require(n <= 4, "at most 4 topics");
        assembly {
            let ptr := add(data, 0x20)
            let len := mload(data)
            let t := add(topics, 0x20)
            switch n
            case 0 { log0(ptr, len) }
            case 1 { log1(ptr, len, mload(t)) }
            case 2 { log2(ptr, len, mload(t), mload(add(t, 0x20))) }
            case 3 { log3(ptr, len, mload(t), mload(add(t, 0x20)), mload(add(t, 0x40))) }
            default {
                log4(ptr, len, mload(t), mload(add(t, 0x20)), mload(add(t, 0x40)), mload(add(t, 0x60)))
            }
        }
    }

    function _topics1(bytes32 a) private pure returns (bytes32[] memory r) {
        r = new bytes32[](1);
        r[0] = a;
    }

    function _topics2(bytes32 a, bytes32 b) private pure returns (bytes32[] memory r) {
        r = new bytes32[](2);
        r[0] = a;
        r[1] = b;
    }

    function _topics3(bytes32 a, bytes32 b, bytes32 c) private pure returns (bytes32[] memory r) {
        r = new bytes32[](3);
        r[0] = a;
        r[1] = b;
        r[2] = c;
    }

    function _topics4(bytes32 a, bytes32 b, bytes32 c, bytes32 d) private pure returns (bytes32[] memory r) {
        r = new bytes32[](4);
        r[0] = a;
        r[1] = b;
        r[2] = c;
        r[3] = d;
    }
}
